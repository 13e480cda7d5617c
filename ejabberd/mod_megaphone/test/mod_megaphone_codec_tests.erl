%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_codec_tests.erl
%%% Purpose : The Erlang codec stays true to docs/protocol-vectors.txt.
%%%
%%% The vectors file is found through MEGAPHONE_VECTORS (set by the
%%% Makefile), else ../../docs/protocol-vectors.txt relative to this file.
%%%----------------------------------------------------------------------
-module(mod_megaphone_codec_tests).

-include_lib("eunit/include/eunit.hrl").

-define(SECRET, <<"megaphone-test-secret-0123456789abcdef">>).
-define(SERVER_NONCE, list_to_binary(lists:seq(16#00, 16#1f))).
-define(CLIENT_NONCE, list_to_binary(lists:seq(16#20, 16#3f))).

%%%===================================================================
%%% Every line of the vectors file
%%%===================================================================
every_valid_vector_round_trips_test_() ->
    %% Ensures every 'valid' line decodes, and encoding the result gives
    %% back the very same bytes.
    [{Name, fun() ->
                    {ok, Frame} = mod_megaphone_codec:decode_frame(Bytes),
                    ?assertEqual(Bytes, iolist_to_binary(
                                          mod_megaphone_codec:frame(Frame)))
            end}
     || {valid, Name, Bytes} <- vectors()].

every_malformed_vector_is_rejected_test_() ->
    %% Ensures every 'malformed' line is rejected with {error, _}, never
    %% decoded and never a crash.
    [{Name, ?_assertMatch({error, _}, mod_megaphone_codec:decode_frame(Bytes))}
     || {malformed, Name, Bytes} <- vectors()].

the_vectors_file_has_every_frame_type_test() ->
    %% Ensures the vectors file was found and covers all fifteen frame
    %% types (ten of version 1, five stream frames of version 2).
    Types = lists:usort(
              [maps:get(type, F) || {valid, _, B} <- vectors(),
                                    {ok, F} <- [mod_megaphone_codec:decode_frame(B)]]),
    ?assertEqual(lists:sort([hello, auth, welcome, request, response, cancel,
                             ping, pong, goaway, error,
                             stream_open, stream_opened, data, window,
                             stream_close]), Types).

%%%===================================================================
%%% Decoded fields are the documented values
%%%===================================================================
hello_fields_test() ->
    %% Ensures HELLO carries min 1, max 1 and the server nonce 00..1f.
    ?assertEqual(#{type => hello, min_version => 1, max_version => 1,
                   nonce => ?SERVER_NONCE}, decoded(<<"hello">>)).

auth_fields_test() ->
    %% Ensures AUTH carries version 1, the client nonce, the auth mac and
    %% the name "ecm-1".
    ?assertEqual(#{type => auth, version => 1, nonce => ?CLIENT_NONCE,
                   mac => hex(comment(<<"auth_mac">>)), name => <<"ecm-1">>},
                 decoded(<<"auth">>)).

welcome_fields_test() ->
    %% Ensures WELCOME carries the welcome mac and the default limits.
    #{type := welcome, mac := Mac, max_frame := 1048576,
      max_inflight := 10000, heartbeat_ms := 15000, node := Node}
        = decoded(<<"welcome">>),
    ?assertEqual(hex(comment(<<"welcome_mac">>)), Mac),
    ?assertEqual(<<"ejabberd@localhost">>, Node).

request_ipv4_fields_test() ->
    %% Ensures the worked REQUEST example: id 7, rid 1001, sid abc,
    %% 127.0.0.1:50000 and its 28-byte body.
    ?assertEqual(#{type => request, id => 7, rid => 1001, sid => <<"abc">>,
                   ip => {127, 0, 0, 1}, port => 50000,
                   body => <<"<body rid='1001' sid='abc'/>">>},
                 decoded(<<"request_ipv4">>)).

request_ipv6_fields_test() ->
    %% Ensures a session-creation REQUEST: no sid, rid 0, [::1]:443.
    ?assertEqual(#{type => request, id => 8, rid => 0, sid => <<>>,
                   ip => {0, 0, 0, 0, 0, 0, 0, 1}, port => 443,
                   body => <<"<body/>">>},
                 decoded(<<"request_ipv6_no_sid">>)).

response_fields_test() ->
    %% Ensures RESPONSE id 7, status 200, ejabberd's content type, <body/>.
    ?assertEqual(#{type => response, id => 7, status => 200,
                   content_type => <<"text/xml; charset=utf-8">>,
                   body => <<"<body/>">>}, decoded(<<"response">>)).

response_empty_fields_test() ->
    %% Ensures a 503 RESPONSE may have an empty content type and body.
    ?assertEqual(#{type => response, id => 9, status => 503,
                   content_type => <<>>, body => <<>>},
                 decoded(<<"response_empty">>)).

small_frames_fields_test() ->
    %% Ensures CANCEL, PING, PONG, GOAWAY and ERROR carry their values.
    Opaque = <<0, 0, 0, 0, 0, 0, 0, 42>>,
    ?assertEqual(#{type => cancel, id => 7}, decoded(<<"cancel">>)),
    ?assertEqual(#{type => ping, opaque => Opaque}, decoded(<<"ping">>)),
    ?assertEqual(#{type => pong, opaque => Opaque}, decoded(<<"pong">>)),
    ?assertEqual(#{type => goaway, code => 0, reason => <<"shutdown">>},
                 decoded(<<"goaway">>)),
    ?assertEqual(#{type => error, code => 3, reason => <<"auth_failed">>},
                 decoded(<<"error">>)),
    ?assertEqual(auth_failed, mod_megaphone_codec:error_name(3)).

hello_v2_and_auth_v2_fields_test() ->
    %% Ensures a version-2 server's HELLO says min 1, max 2, and a v2
    %% AUTH carries version 2 and the mac of version 2.
    ?assertMatch(#{type := hello, min_version := 1, max_version := 2},
                 decoded(<<"hello_v2">>)),
    ?assertEqual(#{type => auth, version => 2, nonce => ?CLIENT_NONCE,
                   mac => hex(comment(<<"auth_mac_v2">>)), name => <<"ecm-1">>},
                 decoded(<<"auth_v2">>)),
    ?assertEqual(hex(comment(<<"auth_mac_v2">>)),
                 mod_megaphone_codec:auth_mac(?SECRET, 2, ?SERVER_NONCE,
                                              ?CLIENT_NONCE, <<"ecm-1">>)).

welcome_v2_fields_test() ->
    %% Ensures WELCOME of version 2 carries the v1 fields, then
    %% max_streams 20000 and stream_window 262144, with the v2 mac.
    ?assertEqual(#{type => welcome, mac => hex(comment(<<"welcome_mac_v2">>)),
                   max_frame => 1048576, max_inflight => 10000,
                   heartbeat_ms => 15000, node => <<"ejabberd@localhost">>,
                   max_streams => 20000, stream_window => 262144},
                 decoded(<<"welcome_v2">>)),
    ?assertEqual(hex(comment(<<"welcome_mac_v2">>)),
                 mod_megaphone_codec:welcome_mac(?SECRET, 2, ?CLIENT_NONCE,
                                                 ?SERVER_NONCE)).

stream_frames_fields_test() ->
    %% Ensures the stream frames carry the documented values.
    ?assertEqual(#{type => stream_open, stream => 5, ip => {192, 0, 2, 7},
                   port => 50000, window => 262144},
                 decoded(<<"stream_open_v4">>)),
    ?assertEqual(#{type => stream_open, stream => 6,
                   ip => {0, 0, 0, 0, 0, 0, 0, 1}, port => 443, window => 65536},
                 decoded(<<"stream_open_v6">>)),
    ?assertEqual(#{type => stream_opened, stream => 5, window => 262144},
                 decoded(<<"stream_opened">>)),
    ?assertEqual(#{type => data, stream => 5,
                   data => <<"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' "
                             "to='localhost' version='1.0'/>">>},
                 decoded(<<"data">>)),
    ?assertEqual(#{type => data, stream => 5, data => <<>>}, decoded(<<"data_empty">>)),
    ?assertEqual(#{type => window, stream => 5, credit => 4096}, decoded(<<"window">>)),
    ?assertEqual(#{type => stream_close, stream => 5, code => 1000, reason => <<"bye">>},
                 decoded(<<"stream_close">>)),
    ?assertEqual(#{type => stream_close, stream => 6, code => 1013, reason => <<>>},
                 decoded(<<"stream_close_no_reason">>)).

a_welcome_without_stream_fields_encodes_as_version_1_test() ->
    %% Ensures a WELCOME map without max_streams/stream_window encodes the
    %% v1 shape (what a v1 link sends), byte for byte the 'welcome' vector.
    W = decoded(<<"welcome">>),
    ?assertNot(maps:is_key(max_streams, W)),
    [Bytes] = [B || {valid, <<"welcome">>, B} <- vectors()],
    ?assertEqual(Bytes, iolist_to_binary(mod_megaphone_codec:frame(W))).

%%%===================================================================
%%% HMAC
%%%===================================================================
auth_mac_matches_the_vectors_test() ->
    %% Ensures auth_mac/5 computes the auth_mac= value of the vectors file.
    ?assertEqual(hex(comment(<<"auth_mac">>)),
                 mod_megaphone_codec:auth_mac(?SECRET, 1, ?SERVER_NONCE,
                                              ?CLIENT_NONCE, <<"ecm-1">>)).

vectors_secret_is_one_the_module_accepts_test() ->
    %% Ensures the vectors are made with a secret of at least 32 bytes, the
    %% shortest mod_megaphone accepts.
    ?assert(byte_size(?SECRET) >= 32).

welcome_mac_matches_the_vectors_test() ->
    %% Ensures welcome_mac/4 computes the welcome_mac= value of the file.
    ?assertEqual(hex(comment(<<"welcome_mac">>)),
                 mod_megaphone_codec:welcome_mac(?SECRET, 1, ?CLIENT_NONCE,
                                                 ?SERVER_NONCE)).

verify_mac_rejects_wrong_and_short_macs_test() ->
    %% Ensures verify_mac/2 accepts only the identical mac, whatever the size.
    Mac = hex(comment(<<"auth_mac">>)),
    ?assert(mod_megaphone_codec:verify_mac(Mac, Mac)),
    <<First, Rest/binary>> = Mac,
    ?assertNot(mod_megaphone_codec:verify_mac(Mac, <<(First bxor 1), Rest/binary>>)),
    ?assertNot(mod_megaphone_codec:verify_mac(Mac, Rest)).

%%%===================================================================
%%% Edges the vectors do not cover
%%%===================================================================
hello_with_bad_magic_is_rejected_test() ->
    %% Ensures a HELLO-sized frame with another magic is an error.
    ?assertEqual({error, bad_magic},
                 mod_megaphone_codec:decode(<<1, "XXXX", 1, 1, 0:256>>)).

trailing_bytes_are_rejected_test() ->
    %% Ensures fixed-size frames with extra bytes are malformed (so encode
    %% of a decoded frame always gives the same bytes).
    ?assertMatch({error, _}, mod_megaphone_codec:decode(<<16#12, 7:32, 0>>)),
    ?assertMatch({error, _}, mod_megaphone_codec:decode(
                                <<16#3F, 3:16, 1:16, "ab">>)).

%%%===================================================================
%%% Internal functions
%%%===================================================================
decoded(Name) ->
    [Bytes] = [B || {valid, N, B} <- vectors(), N == Name],
    {ok, Frame} = mod_megaphone_codec:decode_frame(Bytes),
    Frame.

vectors() ->
    [case binary:split(Line, <<" ">>, [global, trim_all]) of
         [<<"valid">>, Name, Hex] -> {valid, Name, hex(Hex)};
         [<<"malformed">>, Name, Hex] -> {malformed, Name, hex(Hex)}
     end || Line <- lines(), Line /= <<>>, binary:first(Line) /= $#].

comment(Key) ->
    Prefix = <<"# ", Key/binary, "=">>,
    [Value] = [binary:part(L, byte_size(Prefix), byte_size(L) - byte_size(Prefix))
               || L <- lines(), binary:longest_common_prefix([L, Prefix])
                                    == byte_size(Prefix)],
    Value.

lines() ->
    {ok, Data} = file:read_file(vectors_file()),
    [string:trim(L) || L <- binary:split(Data, <<"\n">>, [global])].

vectors_file() ->
    case os:getenv("MEGAPHONE_VECTORS") of
        Path when is_list(Path), Path /= "" -> Path;
        _ ->
            Dir = filename:dirname(proplists:get_value(source, module_info(compile))),
            filename:join([Dir, "..", "..", "..", "docs", "protocol-vectors.txt"])
    end.

hex(Hex) -> binary:decode_hex(Hex).

fit_response_keeps_an_answer_that_fits_test() ->
    %% Ensures an answer whose frame is exactly max_frame goes out as is.
    Frame = #{type => response, id => 7, status => 200,
              content_type => <<"text/xml">>, body => binary:copy(<<"x">>, 100)},
    Length = 1 + 4 + 2 + 1 + 8 + 100,
    ?assertEqual(Frame, mod_megaphone_codec:fit_response(Frame, Length)).

fit_response_replaces_an_answer_over_max_frame_test() ->
    %% Ensures an answer one byte over max_frame becomes the "answer too
    %% large" RESPONSE for the same id: 502, no content type, empty body.
    Frame = #{type => response, id => 7, status => 200,
              content_type => <<"text/xml">>, body => binary:copy(<<"x">>, 101)},
    Length = 1 + 4 + 2 + 1 + 8 + 100,
    {too_large, TooLarge} = mod_megaphone_codec:fit_response(Frame, Length),
    ?assertEqual(#{type => response, id => 7, status => 502,
                   content_type => <<>>, body => <<>>}, TooLarge),
    ?assertEqual(<<16#11, 7:32, 502:16, 0>>,
                 iolist_to_binary(mod_megaphone_codec:encode(TooLarge))).
