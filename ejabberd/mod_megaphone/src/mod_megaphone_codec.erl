%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_codec.erl
%%% Purpose : Pure encoder/decoder of the megaphone link protocol, versions
%%%           1 and 2 (docs/protocol.md). No processes, no sockets.
%%%
%%% Version 2 adds a WELCOME with two more fields (max_streams,
%%% stream_window: decoded when present, encoded when the map has them)
%%% and the stream frames 0x40-0x44. The codec decodes them whatever the
%%% version; the link refuses them on a version-1 link.
%%%
%%% A frame on the wire is <<Length:32, Type:8, Payload/binary>>. On a
%%% socket in {packet, 4} mode the runtime strips and adds the length, so
%%% decode/1 and encode/1 work on <<Type:8, Payload/binary>>;
%%% decode_frame/1 and frame/1 include the length prefix (test vectors).
%%%
%%% Decoding keeps two outcomes apart: {ok, Frame} and {error, Reason} for
%%% a complete but malformed frame. "Need more bytes" and "too long" are
%%% the socket's business ({packet, 4} and packet_size), never this one's.
%%%----------------------------------------------------------------------
-module(mod_megaphone_codec).

-export([decode/1, decode_frame/1, encode/1, frame/1,
         auth_mac/5, welcome_mac/4, verify_mac/2,
         error_code/1, error_name/1, version/0, max_version/0, magic/0,
         fit_response/2, answer_too_large/1, answer_too_large_status/0]).

-define(HELLO, 16#01).
-define(AUTH, 16#02).
-define(WELCOME, 16#03).
-define(REQUEST, 16#10).
-define(RESPONSE, 16#11).
-define(CANCEL, 16#12).
-define(PING, 16#20).
-define(PONG, 16#21).
-define(GOAWAY, 16#30).
-define(ERROR, 16#3F).
-define(STREAM_OPEN, 16#40).
-define(STREAM_OPENED, 16#41).
-define(DATA, 16#42).
-define(WINDOW, 16#43).
-define(STREAM_CLOSE, 16#44).
%% RESPONSE status that stands for an answer too large for the link
%% (with no content type and an empty body; docs/protocol.md section 3).
-define(ANSWER_TOO_LARGE, 502).
-define(MAGIC, <<"MGPH">>).

-type ip() :: inet:ip4_address() | inet:ip6_address().
-type frame() ::
        #{type := hello, min_version := byte(), max_version := byte(),
          nonce := <<_:256>>} |
        #{type := auth, version := byte(), nonce := <<_:256>>,
          mac := <<_:256>>, name := binary()} |
        #{type := welcome, mac := <<_:256>>, max_frame := non_neg_integer(),
          max_inflight := non_neg_integer(), heartbeat_ms := non_neg_integer(),
          node := binary()} |
        #{type := welcome, mac := <<_:256>>, max_frame := non_neg_integer(),
          max_inflight := non_neg_integer(), heartbeat_ms := non_neg_integer(),
          node := binary(), max_streams := non_neg_integer(),
          stream_window := non_neg_integer()} |
        #{type := stream_open, stream := pos_integer(), ip := ip(),
          port := inet:port_number(), window := non_neg_integer()} |
        #{type := stream_opened, stream := pos_integer(), window := non_neg_integer()} |
        #{type := data, stream := pos_integer(), data := iodata()} |
        #{type := window, stream := pos_integer(), credit := non_neg_integer()} |
        #{type := stream_close, stream := pos_integer(), code := 0..65535,
          reason := binary()} |
        #{type := request, id := non_neg_integer(), rid := non_neg_integer(),
          sid := binary(), ip := ip(), port := inet:port_number(),
          body := binary()} |
        #{type := response, id := non_neg_integer(), status := 0..65535,
          content_type := binary(), body := iodata()} |
        #{type := cancel, id := non_neg_integer()} |
        #{type := ping | pong, opaque := <<_:64>>} |
        #{type := goaway | error, code := 0..65535, reason := binary()}.
-type error_name() :: protocol_error | unsupported_version | auth_failed |
                      frame_too_large | handshake_timeout | internal.
-export_type([frame/0, error_name/0, ip/0]).

%%%===================================================================
%%% API
%%%===================================================================
%% The lowest version this side speaks (HELLO's min_version).
-spec version() -> 1.
version() -> 1.

%% The highest version this side speaks (HELLO's max_version).
-spec max_version() -> 2.
max_version() -> 2.

-spec magic() -> binary().
magic() -> ?MAGIC.

%% Decodes one frame without its length prefix (what {packet, 4} delivers).
-spec decode(binary()) -> {ok, frame()} | {error, term()}.
decode(<<?HELLO, "MGPH", Min, Max, Nonce:32/binary>>) ->
    {ok, #{type => hello, min_version => Min, max_version => Max,
           nonce => Nonce}};
decode(<<?HELLO, Magic:4/binary, _:34/binary>>) when Magic =/= ?MAGIC ->
    {error, bad_magic};
decode(<<?AUTH, Version, Nonce:32/binary, Mac:32/binary,
         NameLen, Name:NameLen/binary>>) ->
    {ok, #{type => auth, version => Version, nonce => Nonce, mac => Mac,
           name => Name}};
decode(<<?WELCOME, Mac:32/binary, MaxFrame:32, MaxInflight:32, Heartbeat:32,
         NodeLen, Node:NodeLen/binary>>) ->
    {ok, #{type => welcome, mac => Mac, max_frame => MaxFrame,
           max_inflight => MaxInflight, heartbeat_ms => Heartbeat,
           node => Node}};
decode(<<?WELCOME, Mac:32/binary, MaxFrame:32, MaxInflight:32, Heartbeat:32,
         NodeLen, Node:NodeLen/binary, MaxStreams:32, Window:32>>) ->
    {ok, #{type => welcome, mac => Mac, max_frame => MaxFrame,
           max_inflight => MaxInflight, heartbeat_ms => Heartbeat,
           node => Node, max_streams => MaxStreams, stream_window => Window}};
decode(<<?STREAM_OPEN, Stream:32, IpLen, Rest/binary>>) when Stream > 0 ->
    case Rest of
        <<A, B, C, D, Port:16, Window:32>> when IpLen == 4 ->
            {ok, stream_open(Stream, {A, B, C, D}, Port, Window)};
        <<A:16, B:16, C:16, D:16, E:16, F:16, G:16, H:16, Port:16, Window:32>>
          when IpLen == 16 ->
            {ok, stream_open(Stream, {A, B, C, D, E, F, G, H}, Port, Window)};
        _ when IpLen /= 4, IpLen /= 16 ->
            {error, bad_ip_length};
        _ ->
            {error, {bad_payload, stream_open}}
    end;
decode(<<?STREAM_OPENED, Stream:32, Window:32>>) when Stream > 0 ->
    {ok, #{type => stream_opened, stream => Stream, window => Window}};
decode(<<?DATA, Stream:32, Data/binary>>) when Stream > 0 ->
    {ok, #{type => data, stream => Stream, data => Data}};
decode(<<?WINDOW, Stream:32, Credit:32>>) when Stream > 0 ->
    {ok, #{type => window, stream => Stream, credit => Credit}};
decode(<<?STREAM_CLOSE, Stream:32, Code:16, Len, Reason:Len/binary>>)
  when Stream > 0, Len =< 123 ->
    {ok, #{type => stream_close, stream => Stream, code => Code, reason => Reason}};
decode(<<?REQUEST, Id:32, Rid:64, SidLen, Sid:SidLen/binary,
         IpLen, Rest/binary>>) ->
    case Rest of
        <<A, B, C, D, Port:16, Body/binary>> when IpLen == 4 ->
            {ok, request(Id, Rid, Sid, {A, B, C, D}, Port, Body)};
        <<A:16, B:16, C:16, D:16, E:16, F:16, G:16, H:16, Port:16,
          Body/binary>> when IpLen == 16 ->
            {ok, request(Id, Rid, Sid, {A, B, C, D, E, F, G, H}, Port, Body)};
        _ when IpLen /= 4, IpLen /= 16 ->
            {error, bad_ip_length};
        _ ->
            {error, truncated}
    end;
decode(<<?RESPONSE, Id:32, Status:16, CtLen, Ct:CtLen/binary, Body/binary>>) ->
    {ok, #{type => response, id => Id, status => Status, content_type => Ct,
           body => Body}};
decode(<<?CANCEL, Id:32>>) ->
    {ok, #{type => cancel, id => Id}};
decode(<<?PING, Opaque:8/binary>>) ->
    {ok, #{type => ping, opaque => Opaque}};
decode(<<?PONG, Opaque:8/binary>>) ->
    {ok, #{type => pong, opaque => Opaque}};
decode(<<?GOAWAY, Code:16, Len:16, Reason:Len/binary>>) ->
    {ok, #{type => goaway, code => Code, reason => Reason}};
decode(<<?ERROR, Code:16, Len:16, Reason:Len/binary>>) ->
    {ok, #{type => error, code => Code, reason => Reason}};
decode(<<>>) ->
    {error, empty_frame};
decode(<<Type, _/binary>>) ->
    case lists:member(Type, [?HELLO, ?AUTH, ?WELCOME, ?REQUEST, ?RESPONSE,
                             ?CANCEL, ?PING, ?PONG, ?GOAWAY, ?ERROR,
                             ?STREAM_OPEN, ?STREAM_OPENED, ?DATA, ?WINDOW,
                             ?STREAM_CLOSE]) of
        %% Known type, but the payload is too short, too long, a length
        %% field runs past the end of the frame, or a stream id is 0.
        true -> {error, {bad_payload, type_name(Type)}};
        false -> {error, unknown_type}
    end.

%% Decodes one complete frame including its 4-byte length prefix.
-spec decode_frame(binary()) -> {ok, frame()} | {error, term()}.
decode_frame(<<Len:32, Frame:Len/binary>>) -> decode(Frame);
decode_frame(_) -> {error, bad_length}.

%% Encodes a frame without its length prefix (for a {packet, 4} socket).
-spec encode(frame()) -> iodata().
encode(#{type := hello, min_version := Min, max_version := Max,
         nonce := <<_:32/binary>> = Nonce}) ->
    [?HELLO, ?MAGIC, Min, Max, Nonce];
encode(#{type := auth, version := V, nonce := <<_:32/binary>> = Nonce,
         mac := <<_:32/binary>> = Mac, name := Name}) ->
    [?AUTH, V, Nonce, Mac, short(Name), Name];
encode(#{type := welcome, mac := <<_:32/binary>> = Mac, max_frame := MaxFrame,
         max_inflight := MaxInflight, heartbeat_ms := Heartbeat,
         node := Node, max_streams := MaxStreams, stream_window := Window}) ->
    [?WELCOME, Mac, <<MaxFrame:32, MaxInflight:32, Heartbeat:32>>,
     short(Node), Node, <<MaxStreams:32, Window:32>>];
encode(#{type := welcome, mac := <<_:32/binary>> = Mac, max_frame := MaxFrame,
         max_inflight := MaxInflight, heartbeat_ms := Heartbeat,
         node := Node}) ->
    [?WELCOME, Mac, <<MaxFrame:32, MaxInflight:32, Heartbeat:32>>,
     short(Node), Node];
encode(#{type := request, id := Id, rid := Rid, sid := Sid, ip := IP,
         port := Port, body := Body}) ->
    [<<?REQUEST, Id:32, Rid:64>>, short(Sid), Sid, encode_ip(IP),
     <<Port:16>>, Body];
encode(#{type := response, id := Id, status := Status, content_type := Ct,
         body := Body}) ->
    [<<?RESPONSE, Id:32, Status:16>>, short(Ct), Ct, Body];
encode(#{type := cancel, id := Id}) ->
    <<?CANCEL, Id:32>>;
encode(#{type := ping, opaque := <<_:8/binary>> = Opaque}) ->
    [?PING, Opaque];
encode(#{type := pong, opaque := <<_:8/binary>> = Opaque}) ->
    [?PONG, Opaque];
encode(#{type := goaway, code := Code, reason := Reason}) ->
    [<<?GOAWAY, Code:16, (byte_size(Reason)):16>>, Reason];
encode(#{type := error, code := Code, reason := Reason}) ->
    [<<?ERROR, Code:16, (byte_size(Reason)):16>>, Reason];
encode(#{type := stream_open, stream := Stream, ip := IP, port := Port,
         window := Window}) when Stream > 0 ->
    [<<?STREAM_OPEN, Stream:32>>, encode_ip(IP), <<Port:16, Window:32>>];
encode(#{type := stream_opened, stream := Stream, window := Window}) when Stream > 0 ->
    <<?STREAM_OPENED, Stream:32, Window:32>>;
encode(#{type := data, stream := Stream, data := Data}) when Stream > 0 ->
    [<<?DATA, Stream:32>>, Data];
encode(#{type := window, stream := Stream, credit := Credit}) when Stream > 0 ->
    <<?WINDOW, Stream:32, Credit:32>>;
encode(#{type := stream_close, stream := Stream, code := Code, reason := Reason})
  when Stream > 0, byte_size(Reason) =< 123 ->
    [<<?STREAM_CLOSE, Stream:32, Code:16, (byte_size(Reason))>>, Reason].

%% Encodes a frame with its length prefix.
-spec frame(frame()) -> iodata().
frame(Frame) ->
    Data = encode(Frame),
    [<<(iolist_size(Data)):32>>, Data].

%% mac = HMAC-SHA256(secret, "megaphone-auth" || version || server_nonce
%%                           || client_nonce || name)
-spec auth_mac(binary(), byte(), binary(), binary(), binary()) -> binary().
auth_mac(Secret, Version, ServerNonce, ClientNonce, Name) ->
    crypto:mac(hmac, sha256, Secret,
               [<<"megaphone-auth">>, Version, ServerNonce, ClientNonce, Name]).

%% mac = HMAC-SHA256(secret, "megaphone-welcome" || version || client_nonce
%%                           || server_nonce)
-spec welcome_mac(binary(), byte(), binary(), binary()) -> binary().
welcome_mac(Secret, Version, ClientNonce, ServerNonce) ->
    crypto:mac(hmac, sha256, Secret,
               [<<"megaphone-welcome">>, Version, ClientNonce, ServerNonce]).

%% Constant-time comparison; false for different sizes.
-spec verify_mac(binary(), binary()) -> boolean().
verify_mac(Expected, Got) when byte_size(Expected) == byte_size(Got) ->
    crypto:hash_equals(Expected, Got);
verify_mac(_, _) ->
    false.

-spec error_code(error_name()) -> 1..6.
error_code(protocol_error) -> 1;
error_code(unsupported_version) -> 2;
error_code(auth_failed) -> 3;
error_code(frame_too_large) -> 4;
error_code(handshake_timeout) -> 5;
error_code(internal) -> 6.

-spec error_name(non_neg_integer()) -> error_name() | unknown.
error_name(1) -> protocol_error;
error_name(2) -> unsupported_version;
error_name(3) -> auth_failed;
error_name(4) -> frame_too_large;
error_name(5) -> handshake_timeout;
error_name(6) -> internal;
error_name(_) -> unknown.

%%%===================================================================
%%% Internal functions
%%%===================================================================
request(Id, Rid, Sid, IP, Port, Body) ->
    #{type => request, id => Id, rid => Rid, sid => Sid, ip => IP,
      port => Port, body => Body}.

short(Bin) when byte_size(Bin) =< 255 -> byte_size(Bin).

encode_ip({A, B, C, D}) ->
    <<4, A, B, C, D>>;
encode_ip({A, B, C, D, E, F, G, H}) ->
    <<16, A:16, B:16, C:16, D:16, E:16, F:16, G:16, H:16>>.

stream_open(Stream, IP, Port, Window) ->
    #{type => stream_open, stream => Stream, ip => IP, port => Port,
      window => Window}.

type_name(?STREAM_OPEN) -> stream_open;
type_name(?STREAM_OPENED) -> stream_opened;
type_name(?DATA) -> data;
type_name(?WINDOW) -> window;
type_name(?STREAM_CLOSE) -> stream_close;
type_name(?HELLO) -> hello;
type_name(?AUTH) -> auth;
type_name(?WELCOME) -> welcome;
type_name(?REQUEST) -> request;
type_name(?RESPONSE) -> response;
type_name(?CANCEL) -> cancel;
type_name(?PING) -> ping;
type_name(?PONG) -> pong;
type_name(?GOAWAY) -> goaway;
type_name(?ERROR) -> error.

%% The RESPONSE Frame itself when its frame length (type byte and payload)
%% is at most MaxFrame; else {too_large, Substitute}: the "answer too
%% large" RESPONSE for its id, which fails that one request at the ECM
%% instead of a frame the ECM would refuse by closing the link.
-spec fit_response(frame(), pos_integer()) -> frame() | {too_large, frame()}.
fit_response(#{type := response, id := Id, content_type := Ct, body := Body} = Frame,
             MaxFrame) ->
    case 1 + 4 + 2 + 1 + iolist_size(Ct) + iolist_size(Body) of
        Length when Length =< MaxFrame -> Frame;
        _ -> {too_large, answer_too_large(Id)}
    end.

-spec answer_too_large(non_neg_integer()) -> frame().
answer_too_large(Id) ->
    #{type => response, id => Id, status => ?ANSWER_TOO_LARGE,
      content_type => <<>>, body => <<>>}.

-spec answer_too_large_status() -> pos_integer().
answer_too_large_status() ->
    ?ANSWER_TOO_LARGE.
