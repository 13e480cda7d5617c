%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_transport.erl
%%% Purpose : The socket calls of a link, over plain TCP (gen_tcp) or TLS
%%%           (ssl), so the link and the workers never care which.
%%%
%%% A socket is what gen_tcp or ssl returned: a port (TCP) or an
%%% #sslsocket{} (TLS). Framing is {packet, 4} on both, with one
%%% difference the link must know: over TCP the kernel driver splits
%%% frames ({packet, 4} + packet_size: one message per frame, emsgsize for
%%% a length above the limit, and the socket stays writable, so ERROR
%%% frame_too_large can still be sent). ssl's emulated {packet, 4} instead
%%% ends the whole connection on an oversize length (ssl_error
%%% invalid_packet), so a TLS socket runs {packet, raw} and the link
%%% splits frames itself with next_frame/2 (same limit, same errors); send/2
%%% writes the 4-byte length prefix for it. One send/2 call is one frame
%%% on either transport (one gen_tcp:send with {packet, 4}; one ssl:send
%%% of prefix + frame, which ssl's sender process writes as a whole), so
%%% frames written by several processes (link, workers) never interleave.
%%%
%%% Messages: {tcp | ssl, S, Data}, {tcp_closed | ssl_closed, S},
%%% {tcp_error | ssl_error, S, Why}, {tcp_passive | ssl_passive, S}.
%%%----------------------------------------------------------------------
-module(mod_megaphone_transport).

-export([kind/1, send/2, send_async/2, setopts/2, close/1, shutdown/2, peername/1,
         controlling_process/2, next_frame/2, tls_options/1]).

-type socket() :: inet:socket() | ssl:sslsocket().
-export_type([socket/0]).

-spec kind(socket()) -> tcp | tls.
kind(Socket) when is_port(Socket) -> tcp;
kind(_) -> tls.

%% Writes one frame (its encoding, without the length prefix).
-spec send(socket(), iodata()) -> ok | {error, term()}.
send(Socket, Frame) when is_port(Socket) ->
    gen_tcp:send(Socket, Frame);
send(Socket, Frame) ->
    ssl:send(Socket, [<<(iolist_size(Frame)):32>>, Frame]).

%% send/2 for a process whose mailbox may be long (a link with many
%% answers queued): gen_tcp:send/2 waits for the driver's
%% {inet_reply, S, Status} with a receive that scans the whole mailbox, so
%% a link sending N queued answers would scan N^2 messages. Over TCP this
%% hands the frame to the driver and returns; the caller gets
%% {inet_reply, S, ok | {error, Why}} later (the driver still blocks the
%% caller while the socket is busy: the same back-pressure). Over TLS,
%% ssl:send/2's call waits on a fresh reference (no scan).
%% Only on OTP 25 (Debian 12, ejabberd 23.01), where the driver takes the
%% frame as the command's data: later releases put more than the data in
%% the command (a raw frame closes the socket on OTP 27), so there this is
%% send/2, whose cost with a long mailbox was not measured there.
-spec send_async(socket(), iodata()) -> ok | {error, term()}.
send_async(Socket, Frame) when is_port(Socket) ->
    case persistent_term:get({?MODULE, raw_port_command}, undefined) of
        undefined ->
            Raw = erlang:system_info(otp_release) =< "25",
            persistent_term:put({?MODULE, raw_port_command}, Raw),
            send_async(Socket, Frame);
        true ->
            try erlang:port_command(Socket, Frame) of
                true -> ok
            catch error:badarg -> {error, closed}
            end;
        false ->
            send(Socket, Frame)
    end;
send_async(Socket, Frame) ->
    send(Socket, Frame).

%% inet options for TCP. For TLS, packet and packet_size are left to the
%% link (next_frame/2): the TLS socket stays {packet, raw}; exit_on_close is a
%% TCP driver detail ssl does not need.
-spec setopts(socket(), [gen_tcp:option()]) -> ok | {error, term()}.
setopts(Socket, Opts) when is_port(Socket) ->
    inet:setopts(Socket, Opts);
setopts(Socket, Opts) ->
    case [O || O <- Opts, not tcp_only(O)] of
        [] -> ok;
        SslOpts -> ssl:setopts(Socket, SslOpts)
    end.

tcp_only({packet, _}) -> true;
tcp_only({packet_size, _}) -> true;
tcp_only({exit_on_close, _}) -> true;
tcp_only(_) -> false.

-spec close(socket()) -> ok | {error, term()}.
close(Socket) when is_port(Socket) -> gen_tcp:close(Socket);
close(Socket) -> ssl:close(Socket).

-spec shutdown(socket(), read | write | read_write) -> ok | {error, term()}.
shutdown(Socket, How) when is_port(Socket) -> gen_tcp:shutdown(Socket, How);
shutdown(Socket, How) -> ssl:shutdown(Socket, How).

-spec peername(socket()) -> {ok, {inet:ip_address(), inet:port_number()}} | {error, term()}.
peername(Socket) when is_port(Socket) -> inet:peername(Socket);
peername(Socket) -> ssl:peername(Socket).

-spec controlling_process(socket(), pid()) -> ok | {error, term()}.
controlling_process(Socket, Pid) when is_port(Socket) -> gen_tcp:controlling_process(Socket, Pid);
controlling_process(Socket, Pid) -> ssl:controlling_process(Socket, Pid).

%% The first frame of the bytes received so far (TLS only), without its
%% length prefix, and the rest; more when it is not complete yet;
%% {error, frame_too_large} as soon as a length above MaxSize is seen, as
%% gen_tcp's packet_size gives emsgsize. One frame at a time, because the
%% limit grows after AUTH.
-spec next_frame(binary(), pos_integer()) ->
          {ok, binary(), binary()} | more | {error, frame_too_large}.
next_frame(<<Len:32, _/binary>>, MaxSize) when Len > MaxSize ->
    {error, frame_too_large};
next_frame(<<Len:32, Frame:Len/binary, Rest/binary>>, _MaxSize) ->
    {ok, Frame, Rest};
next_frame(_, _MaxSize) ->
    more.

%% The ssl server options of a config with tls = true: TLS 1.2 and 1.3
%% only; the client certificate is requested and required only with
%% verify_client (then checked against cafile).
-spec tls_options(mod_megaphone:config()) -> [ssl:tls_server_option()].
tls_options(#{certfile := Cert, keyfile := Key} = Config) ->
    CaOpts = case maps:get(cafile, Config, undefined) of
                 undefined -> [];
                 Ca -> [{cacertfile, to_list(Ca)}]
             end,
    VerifyOpts = case maps:get(verify_client, Config, false) of
                     true -> [{verify, verify_peer}, {fail_if_no_peer_cert, true}];
                     false -> [{verify, verify_none}]
                 end,
    [{certfile, to_list(Cert)}, {keyfile, to_list(Key)},
     {versions, ['tlsv1.3', 'tlsv1.2']}
     | CaOpts ++ VerifyOpts].

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) when is_list(L) -> L.
