%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_ws_tests.erl
%%% Purpose : Link protocol version 2 on a real link process and socket:
%%%           the negotiation (a v1 ECM unchanged, a v2 ECM welcomed with
%%%           the stream fields) and WebSocket streams, with a test double
%%%           of ejabberd_c2s (a process that reports what its sockmod
%%%           gives it and runs the sockmod calls the test asks for).
%%%
%%% The real path (the real ejabberd's c2s) is test/ws_link_client.escript.
%%%----------------------------------------------------------------------
-module(mod_megaphone_ws_tests).

-include_lib("eunit/include/eunit.hrl").

-define(SECRET, <<"eunit-secret-eunit-secret-eunit-secret">>).
-define(LISTEN, {?MODULE, listen}).
-define(REPORTER, mod_megaphone_ws_tests_reporter).
-define(LIMITS, mod_megaphone_ws_tests_limits).
-define(OPEN, <<"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>">>).

ws_test_() ->
    {foreach, fun setup/0, fun cleanup/1,
     [fun a_v1_ecm_gets_a_v1_welcome_and_stream_frames_are_a_protocol_error/0,
      fun a_v2_ecm_gets_max_streams_and_stream_window/0,
      fun a_version_above_2_is_refused/0,
      fun a_stream_opens_a_websocket_session_at_the_asserted_address/0,
      fun data_reaches_the_c2s_parsed_when_it_asks_and_the_credit_comes_back/0,
      fun a_message_over_max_stanza_size_is_a_too_big_error/0,
      fun pre_auth_limits_apply_until_the_c2s_sends_a_sasl_success/0,
      fun without_pre_auth_options_the_limits_are_max_stanza_size_before_and_after/0,
      fun the_c2s_output_is_framed_as_rfc7395_and_waits_for_credit/0,
      fun data_over_the_credit_closes_the_stream_1008_not_the_link/0,
      fun the_c2s_close_sends_close_then_stream_close_1000/0,
      fun the_ecm_stream_close_is_a_lost_socket_for_the_c2s/0,
      fun a_lost_link_is_a_lost_socket_for_every_stream/0,
      fun over_max_streams_is_refused_1013_and_a_live_id_is_a_protocol_error/0,
      fun an_element_larger_than_the_window_closes_the_stream_1009/0,
      fun after_goaway_no_new_stream_and_the_link_ends_with_its_last_stream/0,
      {timeout, 20, fun after_traffic_a_c2s_with_a_big_heap_is_collected/0},
      {timeout, 20, fun after_traffic_the_stream_process_hibernates_and_still_carries_the_next_message/0}]}.

%%%===================================================================
%%% Negotiation
%%%===================================================================
a_v1_ecm_gets_a_v1_welcome_and_stream_frames_are_a_protocol_error() ->
    %% Ensures a v1 ECM (AUTH version 1) is welcomed exactly as before
    %% (no stream fields) and a stream frame on its link is an ERROR.
    {C, Hello} = connect(1),
    ?assertMatch(#{min_version := 1, max_version := 2}, Hello),
    {ok, W} = recv(C),
    ?assertEqual(lists:sort([type, mac, max_frame, max_inflight, heartbeat_ms, node]),
                 lists:sort(maps:keys(W))),
    send(C, open_frame(1)),
    ?assertMatch({ok, #{type := error, code := 1}}, recv(C)).

a_v2_ecm_gets_max_streams_and_stream_window() ->
    %% Ensures AUTH version 2 gets a WELCOME of version 2 (mac of version
    %% 2) with the configured max_streams and stream_window.
    {C, #{nonce := ServerNonce}} = connect(2),
    {ok, #{type := welcome, mac := Mac, max_streams := 2, stream_window := 1000}} = recv(C),
    ClientNonce = get(client_nonce),
    ?assertEqual(mod_megaphone_codec:welcome_mac(?SECRET, 2, ClientNonce, ServerNonce), Mac).

a_version_above_2_is_refused() ->
    %% Ensures AUTH version 3 is refused with ERROR unsupported_version.
    {C, _} = connect(3),
    ?assertMatch({ok, #{type := error, code := 2}}, recv(C)).

%%%===================================================================
%%% Streams
%%%===================================================================
a_stream_opens_a_websocket_session_at_the_asserted_address() ->
    %% Ensures STREAM_OPEN starts a c2s whose sockmod says websocket and
    %% the ECM's address, and STREAM_OPENED grants stream_window.
    C = v2(),
    send(C, open_frame(7)),
    ?assertMatch({ok, #{type := stream_opened, stream := 7, window := 1000}}, recv(C)),
    {C2S, Mod, Sock} = c2s_started(),
    ?assertEqual(mod_megaphone_ws, Mod),
    ?assertEqual(websocket, Mod:get_transport(Sock)),
    ?assertEqual({ok, {{192, 0, 2, 7}, 50000}}, Mod:peername(Sock)),
    ?assert(is_pid(C2S)).

data_reaches_the_c2s_parsed_when_it_asks_and_the_credit_comes_back() ->
    %% Ensures DATA waits until the c2s asks ({active, once}), reaches it
    %% as stream start / elements / stream end, and its bytes come back
    %% in WINDOW once the c2s took them.
    C = opened(7),
    {C2S, Mod, Sock} = c2s_started(),
    Msg = <<"<message to='a@localhost'><body>hi</body></message>">>,
    send(C, data(7, ?OPEN)),
    send(C, data(7, Msg)),
    nothing_for_c2s(100),
    ?assertEqual({error, timeout}, gen_tcp:recv(C, 0, 100)),
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    {tcp, Sock, Items} = for_c2s(),
    ?assertMatch([{xmlstreamstart, <<"stream:stream">>, _},
                  {xmlel, <<"message">>, _, _}], Items),
    [{_, _, Attrs} | _] = Items,
    ?assertEqual(<<"jabber:client">>, proplists:get_value(<<"xmlns">>, Attrs)),
    ?assertEqual(<<"localhost">>, proplists:get_value(<<"to">>, Attrs)),
    Credit = byte_size(?OPEN) + byte_size(Msg),
    ?assertMatch({ok, #{type := window, stream := 7, credit := Credit}}, recv(C)),
    %% the c2s asks first this time: a <close/> goes to it at once
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    send(C, data(7, <<"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>">>)),
    ?assertEqual({tcp, Sock, [{xmlstreamend, <<"stream:stream">>}]}, for_c2s()).

a_message_over_max_stanza_size_is_a_too_big_error() ->
    %% Ensures a message over max_stanza_size (200 in the double's
    %% limits) reaches the c2s as "XML stanza is too big", unparsed, and
    %% a malformed one as a not-well-formed stream error.
    C = opened(7),
    {C2S, Mod, Sock} = c2s_started(),
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    send(C, data(7, <<"<message>", (binary:copy(<<"x">>, 200))/binary, "</message>">>)),
    ?assertEqual({tcp, Sock, [{xmlstreamerror, <<"XML stanza is too big">>}]}, for_c2s()),
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    send(C, data(7, <<"<message><body>">>)),
    ?assertMatch({tcp, Sock, [{xmlstreamerror, {_, _}}]}, for_c2s()).

pre_auth_limits_apply_until_the_c2s_sends_a_sasl_success() ->
    %% Ensures that with ejabberd 26.07's options (pre-auth 100 bytes and
    %% 3 elements, then 200 bytes and 5) a message over the pre-auth limits
    %% is "too big" until the c2s sends a SASL <success/>, and within the
    %% post-auth ones after it; and that 5 elements are over a limit of 5.
    persistent_term:put(?LIMITS, [{max_stanza_size, 200}, {max_stanza_elements, 5},
                                  {pre_auth_max_stanza_size, 100},
                                  {pre_auth_max_stanza_elements, 3}, {shaper, none}]),
    C = opened(7),
    {C2S, Mod, Sock} = c2s_started(),
    Long = <<"<message><body>", (binary:copy(<<"x">>, 120))/binary, "</body></message>">>,
    Three = <<"<message><body>a</body><thread>t</thread></message>">>,
    Five = <<"<message><body>a</body><thread>t</thread><x/><y/></message>">>,
    TooBig = [{xmlstreamerror, <<"XML stanza is too big">>}],
    ?assertEqual(TooBig, deliver(C, C2S, Mod, Sock, Long)),
    ?assertEqual(TooBig, deliver(C, C2S, Mod, Sock, Three)),
    ?assertMatch([{xmlel, <<"message">>, _, _}],
                 deliver(C, C2S, Mod, Sock, <<"<message><body>a</body></message>">>)),
    %% a <success/> of another namespace changes nothing
    ok = run(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamelement,
                                               {xmlel, <<"success">>, [{<<"xmlns">>, <<"urn:x">>}], []}}) end),
    {ok, #{type := data}} = recv(C),
    ?assertEqual(TooBig, deliver(C, C2S, Mod, Sock, Three)),
    ok = run(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamelement,
                                               {xmlel, <<"success">>,
                                                [{<<"xmlns">>, <<"urn:ietf:params:xml:ns:xmpp-sasl">>}],
                                                []}}) end),
    {ok, #{type := data}} = recv(C),
    ?assertMatch([{xmlel, <<"message">>, _, _}], deliver(C, C2S, Mod, Sock, Long)),
    ?assertMatch([{xmlel, <<"message">>, _, _}], deliver(C, C2S, Mod, Sock, Three)),
    ?assertEqual(TooBig, deliver(C, C2S, Mod, Sock, Five)).

without_pre_auth_options_the_limits_are_max_stanza_size_before_and_after() ->
    %% Ensures ejabberd 23.01's and 24.12's options (max_stanza_size only)
    %% give the same limits before and after authentication, and 26.07's
    %% give the pre-auth ones first.
    ?assertEqual({{262144, infinity}, {262144, infinity}},
                 mod_megaphone_ws:stanza_limits([{max_stanza_size, 262144}, {shaper, none}])),
    ?assertEqual({{infinity, infinity}, {infinity, infinity}}, mod_megaphone_ws:stanza_limits([])),
    ?assertEqual({{8192, 32}, {262144, infinity}},
                 mod_megaphone_ws:stanza_limits([{max_stanza_size, 262144},
                                                 {max_stanza_elements, infinity},
                                                 {pre_auth_max_stanza_size, 8192},
                                                 {pre_auth_max_stanza_elements, 32}])).

the_c2s_output_is_framed_as_rfc7395_and_waits_for_credit() ->
    %% Ensures the stream header goes out as <open xmlns=framing/>, an
    %% element as itself with jabber:client, and that a send over the
    %% ECM's credit (300 bytes here) waits for its WINDOW.
    C = opened(7, 300),
    {C2S, Mod, Sock} = c2s_started(),
    ok = run(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamstart, <<"stream:stream">>,
                                                [{<<"xmlns">>, <<"jabber:client">>},
                                                 {<<"xmlns:stream">>, <<"http://etherx.jabber.org/streams">>},
                                                 {<<"from">>, <<"localhost">>}, {<<"id">>, <<"s1">>},
                                                 {<<"version">>, <<"1.0">>}]}) end),
    {ok, #{type := data, stream := 7, data := Open}} = recv(C),
    ?assertEqual({xmlel, <<"open">>, [{<<"xmlns">>, <<"urn:ietf:params:xml:ns:xmpp-framing">>},
                                      {<<"from">>, <<"localhost">>}, {<<"id">>, <<"s1">>},
                                      {<<"version">>, <<"1.0">>}], []},
                 fxml_stream:parse_element(Open)),
    Body = binary:copy(<<"y">>, 200),
    El = {xmlel, <<"message">>, [], [{xmlel, <<"body">>, [], [{xmlcdata, Body}]}]},
    Ref = run_async(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamelement, El}) end),
    ?assertEqual({error, timeout}, gen_tcp:recv(C, 0, 200)),
    receive {Ref, _} -> error(sent_without_credit) after 0 -> ok end,
    send(C, mod_megaphone_codec:encode(#{type => window, stream => 7, credit => 1000})),
    {ok, #{type := data, data := Msg}} = recv(C),
    ?assertEqual(<<"<message xmlns='jabber:client'><body>", Body/binary, "</body></message>">>, Msg),
    receive {Ref, ok} -> ok after 2000 -> error(no_reply) end.

data_over_the_credit_closes_the_stream_1008_not_the_link() ->
    %% Ensures DATA beyond the granted credit (1000 bytes) closes that
    %% stream with 1008 and its c2s loses its socket; the link goes on.
    C = opened(7),
    {_C2S, _Mod, Sock} = c2s_started(),
    send(C, data(7, binary:copy(<<" ">>, 600))),
    send(C, data(7, binary:copy(<<" ">>, 600))),
    ?assertMatch({ok, #{type := stream_close, stream := 7, code := 1008}}, recv(C)),
    ?assertEqual({tcp_closed, Sock}, for_c2s()),
    send(C, open_frame(7)),
    ?assertMatch({ok, #{type := stream_opened, stream := 7}}, recv(C)).

the_c2s_close_sends_close_then_stream_close_1000() ->
    %% Ensures the c2s's stream end goes out as <close/> and its close/1
    %% as STREAM_CLOSE 1000, after which the id is free again.
    C = opened(7),
    {C2S, Mod, Sock} = c2s_started(),
    ok = run(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamend, <<"stream:stream">>}) end),
    {ok, #{type := data, data := Close}} = recv(C),
    ?assertEqual({xmlel, <<"close">>, [{<<"xmlns">>, <<"urn:ietf:params:xml:ns:xmpp-framing">>}], []},
                 fxml_stream:parse_element(Close)),
    ok = run(C2S, fun() -> Mod:close(Sock) end),
    ?assertMatch({ok, #{type := stream_close, stream := 7, code := 1000}}, recv(C)),
    send(C, open_frame(7)),
    ?assertMatch({ok, #{type := stream_opened, stream := 7}}, recv(C)).

the_ecm_stream_close_is_a_lost_socket_for_the_c2s() ->
    %% Ensures the ECM's STREAM_CLOSE gives the c2s tcp_closed, and is not
    %% answered with another STREAM_CLOSE.
    C = opened(7),
    {_C2S, _Mod, Sock} = c2s_started(),
    send(C, mod_megaphone_codec:encode(#{type => stream_close, stream => 7, code => 1000,
                                         reason => <<>>})),
    ?assertEqual({tcp_closed, Sock}, for_c2s()),
    ?assertEqual({error, timeout}, gen_tcp:recv(C, 0, 200)).

a_lost_link_is_a_lost_socket_for_every_stream() ->
    %% Ensures a link that closes sends each of its streams' c2s
    %% tcp_closed (mod_stream_mgmt then holds sessions with SM).
    C = opened(7),
    {_, _, Sock7} = c2s_started(),
    send(C, open_frame(8)),
    {ok, #{type := stream_opened, stream := 8}} = recv(C),
    {_, _, Sock8} = c2s_started(),
    gen_tcp:close(C),
    Closed = lists:sort([for_c2s(), for_c2s()]),
    ?assertEqual(lists:sort([{tcp_closed, Sock7}, {tcp_closed, Sock8}]), Closed).

over_max_streams_is_refused_1013_and_a_live_id_is_a_protocol_error() ->
    %% Ensures a third stream over max_streams (2) is refused with 1013,
    %% and reusing a live stream id is a protocol error of the link.
    C = opened(1),
    send(C, open_frame(2)),
    {ok, #{type := stream_opened, stream := 2}} = recv(C),
    send(C, open_frame(3)),
    ?assertMatch({ok, #{type := stream_close, stream := 3, code := 1013}}, recv(C)),
    send(C, open_frame(2)),
    ?assertMatch({ok, #{type := error, code := 1}}, recv(C)).

an_element_larger_than_the_window_closes_the_stream_1009() ->
    %% Ensures an element the ECM's initial credit (300) could never
    %% carry closes the stream with 1009 instead of waiting forever.
    C = opened(7, 300),
    {C2S, Mod, Sock} = c2s_started(),
    El = {xmlel, <<"message">>, [], [{xmlcdata, binary:copy(<<"z">>, 400)}]},
    ?assertEqual({error, einval},
                 run(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamelement, El}) end)),
    ?assertMatch({ok, #{type := stream_close, stream := 7, code := 1009}}, recv(C)).

after_goaway_no_new_stream_and_the_link_ends_with_its_last_stream() ->
    %% Ensures that after the ECM's GOAWAY a STREAM_OPEN is refused with
    %% 1013, the open stream goes on, and the link closes once that last
    %% stream is closed.
    C = opened(7),
    {C2S, Mod, Sock} = c2s_started(),
    send(C, mod_megaphone_codec:encode(#{type => goaway, code => 0, reason => <<"drain">>})),
    send(C, open_frame(8)),
    ?assertMatch({ok, #{type := stream_close, stream := 8, code := 1013}}, recv(C)),
    ok = run(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamelement, {xmlel, <<"a">>, [], []}}) end),
    ?assertMatch({ok, #{type := data, stream := 7}}, recv(C)),
    send(C, mod_megaphone_codec:encode(#{type => stream_close, stream => 7, code => 1001,
                                         reason => <<>>})),
    ?assertEqual({error, closed}, recv(C)).

after_traffic_a_c2s_with_a_big_heap_is_collected() ->
    %% Ensures that a while after traffic, a c2s whose heap is above
    %% gc_heap_threshold (4096 words here) is garbage-collected.
    C = opened(7),
    {C2S, Mod, Sock} = c2s_started(),
    ok = run(C2S, fun() -> _ = length(lists:seq(1, 100000)), ok end),
    {total_heap_size, Big} = process_info(C2S, total_heap_size),
    ?assert(Big > 100000),
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    send(C, data(7, <<"<iq type='get' id='1'/>">>)),
    {tcp, Sock, _} = for_c2s(),
    mod_megaphone_test_util:wait_until(
      fun() -> element(2, process_info(C2S, total_heap_size)) < 4096 end, 500),
    %% the collection's answer woke the stream process: it hibernates again
    Pid = Mod:get_owner(Sock),
    mod_megaphone_test_util:wait_until(fun() -> hibernating(Pid) end, 100).

after_traffic_the_stream_process_hibernates_and_still_carries_the_next_message() ->
    %% Ensures that a while after traffic the stream's own process
    %% hibernates (only its live words: under 2,000 bytes in all, where a
    %% process with the minimum heap takes about 3,000), stays so under a
    %% forced collection, and wakes for the next message both ways.
    C = opened(7),
    {C2S, Mod, Sock} = c2s_started(),
    Pid = Mod:get_owner(Sock),
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    send(C, data(7, <<"<iq type='get' id='1'/>">>)),
    {tcp, Sock, _} = for_c2s(),
    ?assertMatch({ok, #{type := window, stream := 7}}, recv(C)),
    ?assertNot(hibernating(Pid)),
    mod_megaphone_test_util:wait_until(fun() -> hibernating(Pid) end, 500),
    true = erlang:garbage_collect(Pid),
    {memory, Mem} = process_info(Pid, memory),
    ?assert(Mem < 2000),
    ok = run(C2S, fun() -> Mod:send_xml(Sock, {xmlstreamelement, {xmlel, <<"a">>, [], []}}) end),
    ?assertMatch({ok, #{type := data, stream := 7, data := <<"<a xmlns='jabber:client'/>">>}}, recv(C)),
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    send(C, data(7, <<"<iq type='get' id='2'/>">>)),
    ?assertMatch({tcp, Sock, [{xmlel, <<"iq">>, _, _}]}, for_c2s()).

hibernating(Pid) ->
    process_info(Pid, current_function) == {current_function, {erlang, hibernate, 3}}.

%%%===================================================================
%%% Stream counters (megaphone_stats, the Prometheus scrape)
%%%===================================================================
ws_stats_test_() ->
    {foreach, fun setup/0, fun cleanup/1,
     [fun an_opened_stream_counts_once_and_the_ecm_close_is_reason_client/0,
      fun the_c2s_close_credit_and_too_big_count_their_reason/0,
      fun a_lost_link_counts_each_stream_as_link_lost/0,
      fun refusals_count_as_max_streams_and_draining/0]}.

an_opened_stream_counts_once_and_the_ecm_close_is_reason_client() ->
    %% Ensures STREAM_OPENED counts one opened stream in the streams gauge,
    %% and the ECM's STREAM_CLOSE takes it back as a close of reason client.
    C = opened(7),
    _ = c2s_started(),
    wait_stat(streams_active, 1),
    ?assertEqual(1, stat(streams_opened_total)),
    send(C, mod_megaphone_codec:encode(#{type => stream_close, stream => 7, code => 1000,
                                         reason => <<>>})),
    {tcp_closed, _} = for_c2s(),
    wait_stat(streams_active, 0),
    ?assertEqual(1, stat(streams_closed_client_total)),
    ?assertEqual(#{streams_opened_total => 1, streams_closed_client_total => 1}, stream_stats()).

the_c2s_close_credit_and_too_big_count_their_reason() ->
    %% Ensures a close by the c2s (1000) is reason server, DATA over the
    %% credit (1008) reason credit, an element over the window (1009)
    %% reason too_big; the gauge is back at 0.
    C = opened(7, 300),
    {C2S, Mod, Sock} = c2s_started(),
    ok = run(C2S, fun() -> Mod:close(Sock) end),
    {ok, #{code := 1000}} = recv_close(C),
    send(C, open_frame(8)),
    {ok, #{type := stream_opened}} = recv(C),
    _ = c2s_started(),
    send(C, data(8, binary:copy(<<" ">>, 1001))),
    ?assertMatch({ok, #{code := 1008}}, recv_close(C)),
    send(C, open_frame(9, 300)),
    {ok, #{type := stream_opened}} = recv(C),
    {C2S9, _, Sock9} = c2s_started(),
    {error, einval} = run(C2S9, fun() -> Mod:send_xml(Sock9, {xmlstreamelement,
                                                       {xmlel, <<"a">>, [], [{xmlcdata, binary:copy(<<"z">>, 400)}]}}) end),
    ?assertMatch({ok, #{code := 1009}}, recv_close(C)),
    wait_stat(streams_active, 0),
    ?assertEqual(#{streams_opened_total => 3, streams_closed_server_total => 1,
                   streams_closed_credit_total => 1, streams_closed_too_big_total => 1},
                 stream_stats()).

a_lost_link_counts_each_stream_as_link_lost() ->
    %% Ensures a link that closes counts each of its streams once, as
    %% link_lost, and the gauge goes back to 0.
    C = opened(7),
    send(C, open_frame(8)),
    {ok, #{type := stream_opened, stream := 8}} = recv(C),
    wait_stat(streams_active, 2), % counted just after STREAM_OPENED is sent
    gen_tcp:close(C),
    wait_stat(streams_active, 0),
    ?assertEqual(#{streams_opened_total => 2, streams_closed_link_lost_total => 2}, stream_stats()).

refusals_count_as_max_streams_and_draining() ->
    %% Ensures a STREAM_OPEN over max_streams (2) counts as max_streams and
    %% one after GOAWAY as draining, neither as opened.
    C = opened(1),
    send(C, open_frame(2)),
    {ok, #{type := stream_opened}} = recv(C),
    send(C, open_frame(3)),
    {ok, #{code := 1013}} = recv(C),
    send(C, mod_megaphone_codec:encode(#{type => goaway, code => 0, reason => <<"drain">>})),
    send(C, open_frame(4)),
    {ok, #{code := 1013}} = recv(C),
    ?assertEqual(#{streams_opened_total => 2, streams_active => 2,
                   streams_refused_max_streams_total => 1, streams_refused_draining_total => 1},
                 stream_stats()).

stat(Name) -> mod_megaphone_stats:value(Name).

wait_stat(Name, Value) ->
    mod_megaphone_test_util:wait_until(fun() -> stat(Name) == Value end).

%% The stream stats that are not zero.
stream_stats() ->
    maps:from_list([{binary_to_atom(N, utf8), V} || {<<"streams_", _/binary>> = N, V} <- mod_megaphone_stats:get(),
                                                     V /= 0]).

%% The next STREAM_CLOSE (DATA before it, such as a <close/>, skipped).
recv_close(C) ->
    case recv(C) of
        {ok, #{type := data}} -> recv_close(C);
        Other -> Other
    end.

%%%===================================================================
%%% Fixture
%%%===================================================================
setup() ->
    load_doubles(),
    {ok, Registry} = mod_megaphone_registry:start_link(),
    unlink(Registry),
    mod_megaphone_stats:new(),
    persistent_term:put({mod_megaphone, config},
                        #{host => <<"localhost">>, ip => {127, 0, 0, 1}, port => 0,
                          secret => ?SECRET, secrets => [?SECRET],
                          max_pending_links => 64, max_frame_size => 65536,
                          max_inflight => 2, heartbeat_interval => 60000,
                          handshake_timeout => 5000, order_timeout => 300,
                          max_streams => 2, stream_window => 1000,
                          gc_heap_threshold => 4096}),
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    persistent_term:put(?LISTEN, L),
    {Registry, L}.

cleanup({Registry, L}) ->
    gen_tcp:close(L),
    _ = persistent_term:erase(?LISTEN),
    mod_megaphone_test_util:kill([Registry]),
    mod_megaphone_stats:delete(),
    _ = persistent_term:erase({mod_megaphone, config}),
    _ = persistent_term:erase(?LIMITS),
    try unregister(?REPORTER) catch error:badarg -> ok end, % OTP 29 deprecates 'catch Expr'
    [begin code:purge(M), code:delete(M), code:purge(M) end
     || M <- [ejabberd_c2s, ejabberd_c2s_config]].

%% ejabberd_c2s: start/3 spawns a process that reports itself, forwards
%% every message it gets, and runs {run, Fun, From}; accept/1 is a no-op.
%% ejabberd_c2s_config: max_stanza_size 200, or the options a test put in
%% ?LIMITS.
load_doubles() ->
    R = atom_to_list(?REPORTER),
    mod_megaphone_test_util:load_double(
      ejabberd_c2s,
      ["-module(ejabberd_c2s).",
       "-export([start/3, accept/1, loop/0]).",
       "start(Mod, Sock, _Opts) ->"
       "    P = spawn(ejabberd_c2s, loop, []),"
       "    " ++ R ++ " ! {c2s_started, P, Mod, Sock},"
       "    {ok, P}.",
       "accept(_) -> ok.",
       "loop() ->"
       "    receive"
       "        {run, F, From} -> From ! {self(), F()}, loop();"
       "        Msg -> (try " ++ R ++ " ! {c2s_got, Msg} catch error:badarg -> ok end), loop()"
       "    end."]),
    mod_megaphone_test_util:load_double(
      ejabberd_c2s_config,
      ["-module(ejabberd_c2s_config).",
       "-export([get_c2s_limits/0]).",
       "get_c2s_limits() -> persistent_term:get(" ++ atom_to_list(?LIMITS) ++ ","
       "    [{max_stanza_size, 200}, {shaper, none}])."]).

%%%===================================================================
%%% A minimal v2 ECM
%%%===================================================================
%% A link with AUTH of Version sent; returns the socket and the HELLO.
connect(Version) ->
    %% eunit runs each case in a process of its own: the double reports to it
    case whereis(?REPORTER) of
        Me when Me == self() -> ok;
        undefined -> register(?REPORTER, self());
        _ -> unregister(?REPORTER), register(?REPORTER, self())
    end,
    L = persistent_term:get(?LISTEN),
    {ok, Port} = inet:port(L),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {packet, 4}, {active, false}]),
    {ok, S} = gen_tcp:accept(L),
    {ok, Link} = mod_megaphone_link:start_link(S),
    unlink(Link),
    ok = gen_tcp:controlling_process(S, Link),
    ok = mod_megaphone_link:take_socket(Link, S),
    {ok, #{type := hello, nonce := ServerNonce} = Hello} = recv(C),
    ClientNonce = crypto:strong_rand_bytes(32),
    put(client_nonce, ClientNonce),
    Mac = mod_megaphone_codec:auth_mac(?SECRET, Version, ServerNonce, ClientNonce, <<"eunit">>),
    send(C, mod_megaphone_codec:encode(#{type => auth, version => Version, nonce => ClientNonce,
                                         mac => Mac, name => <<"eunit">>})),
    {C, Hello}.

v2() ->
    {C, _} = connect(2),
    {ok, #{type := welcome, max_streams := _}} = recv(C),
    C.

opened(Stream) -> opened(Stream, 100000).

opened(Stream, ClientWindow) ->
    C = v2(),
    send(C, open_frame(Stream, ClientWindow)),
    {ok, #{type := stream_opened, stream := Stream}} = recv(C),
    C.

open_frame(Stream) -> open_frame(Stream, 100000).

open_frame(Stream, Window) ->
    mod_megaphone_codec:encode(#{type => stream_open, stream => Stream, ip => {192, 0, 2, 7},
                                 port => 50000, window => Window}).

data(Stream, Bin) ->
    mod_megaphone_codec:encode(#{type => data, stream => Stream, data => Bin}).

send(C, Frame) -> ok = gen_tcp:send(C, Frame).

recv(C) ->
    case gen_tcp:recv(C, 0, 2000) of
        {ok, Data} -> mod_megaphone_codec:decode(Data);
        {error, _} = Err -> Err
    end.

c2s_started() ->
    receive {c2s_started, P, Mod, Sock} -> {P, Mod, Sock}
    after 2000 -> error(no_c2s)
    end.

for_c2s() ->
    receive {c2s_got, Msg} -> Msg after 2000 -> error(nothing_for_c2s) end.

nothing_for_c2s(Ms) ->
    receive {c2s_got, Msg} -> error({unexpected, Msg}) after Ms -> ok end.

%% Sends Bin as DATA once the c2s asked for input; what the c2s got (and
%% the credit back).
deliver(C, C2S, Mod, Sock, Bin) ->
    run(C2S, fun() -> Mod:setopts(Sock, [{active, once}]) end),
    send(C, data(7, Bin)),
    {tcp, Sock, Items} = for_c2s(),
    {ok, #{type := window}} = recv(C),
    Items.

%% Runs F in the c2s double (the sockmod's calls come from the c2s).
run(C2S, F) ->
    C2S ! {run, F, self()},
    receive {C2S, Result} -> Result after 3000 -> error(run_timeout) end.

run_async(C2S, F) ->
    Ref = make_ref(),
    Me = self(),
    spawn(fun() -> Me ! {Ref, run(C2S, F)} end),
    Ref.
