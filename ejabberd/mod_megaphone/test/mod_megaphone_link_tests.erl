%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_link_tests.erl
%%% Purpose : A real link process on a real loopback socket, with a test
%%%           double of ejabberd_bosh: workers that die, CANCEL, copies
%%%           of one (sid, rid) on two links, and what the counters saw.
%%%
%%% The double (loaded over ejabberd's module for these tests only)
%%% tells the test process (the one that opened a link: eunit runs each
%%% case in its own process, not in the fixture's) which worker called it
%%% and blocks until the test answers, so a test can kill a worker in the
%%% middle of the call.
%%% The real path (the real ejabberd) is test/link_client.py.
%%%----------------------------------------------------------------------
-module(mod_megaphone_link_tests).

-include_lib("eunit/include/eunit.hrl").

-define(SECRET, <<"eunit-secret-eunit-secret-eunit-secret">>).
%% The secret before a rotation: still accepted, no longer the first.
-define(PREVIOUS, <<"eunit-previous-secret-eunit-previous">>).
-define(REPORTER, mod_megaphone_fake_bosh).
-define(LISTEN, {?MODULE, listen}).
-define(TERMINATE, <<"<body type='terminate' condition='internal-server-error' "
                     "xmlns='http://jabber.org/protocol/httpbind'/>">>).

link_test_() ->
    {foreach, fun setup/0, fun cleanup/1,
     [fun a_killed_worker_is_answered_500_and_its_id_and_row_are_freed/0,
      fun a_killed_worker_answers_500_to_every_copy/0,
      fun cancel_answers_nothing_and_lets_a_call_inside_ejabberd_finish/0,
      fun a_finished_request_is_counted_once_per_call_into_ejabberd/0,
      fun refused_handshakes_and_errors_after_it_are_counted/0,
      fun over_max_inflight_is_503_and_counted/0,
      fun an_ecm_proving_any_secret_of_the_list_is_welcomed/0]}.

%%%===================================================================
%%% Cases
%%%===================================================================
a_killed_worker_is_answered_500_and_its_id_and_row_are_freed() ->
    %% Ensures a worker killed in ejabberd's call gets its id a 500 BOSH
    %% terminate, frees the id (reusing it is no protocol error) and its
    %% (sid, rid) row (the re-sent copy calls ejabberd again).
    C = connect(),
    ok = request(C, 1, <<"s1">>, 10),
    W = called(),
    exit(W, kill),
    ?assertEqual({500, <<"text/xml; charset=utf-8">>, ?TERMINATE}, response(C, 1)),
    ?assertEqual(0, stat(requests_inflight)),
    ok = request(C, 1, <<"s1">>, 10),
    W2 = called(),
    ?assertNotEqual(W, W2),
    answer(W2),
    ?assertEqual({200, <<"text/xml">>, <<"<body/>">>}, response(C, 1)),
    ?assertEqual(2, stat(requests_total)).

a_killed_worker_answers_500_to_every_copy() ->
    %% Ensures a copy attached from another link is not left waiting: each
    %% link answers its own id when the shared worker dies.
    A = connect(), B = connect(),
    ok = request(A, 7, <<"s2">>, 20),
    W = called(),
    ok = request(B, 8, <<"s2">>, 20),
    wait_until(fun() -> stat(requests_deduplicated_total) == 1 end),
    exit(W, kill),
    ?assertMatch({500, _, ?TERMINATE}, response(A, 7)),
    ?assertMatch({500, _, ?TERMINATE}, response(B, 8)),
    ?assertEqual(1, stat(requests_total)),
    ?assertEqual(0, stat(requests_inflight)).

cancel_answers_nothing_and_lets_a_call_inside_ejabberd_finish() ->
    %% Ensures CANCEL of the only copy sends no RESPONSE, frees its row and
    %% is counted, and that a worker already inside ejabberd's call is not
    %% killed (ejabberd would still hold that copy): it ends once answered.
    C = connect(),
    ok = request(C, 3, <<>>, 0), % a session creation: no (sid, rid)
    W = called(),
    Mon = monitor(process, W),
    ok = gen_tcp:send(C, mod_megaphone_codec:encode(#{type => cancel, id => 3})),
    ?assertEqual({error, timeout}, gen_tcp:recv(C, 0, 300)),
    ?assert(is_process_alive(W)),
    ?assertEqual(1, stat(cancels_total)),
    ?assertEqual(0, stat(requests_inflight)),
    answer(W),
    receive {'DOWN', Mon, process, W, normal} -> ok after 2000 -> error(not_ended) end,
    ?assertEqual({error, timeout}, gen_tcp:recv(C, 0, 100)).

a_finished_request_is_counted_once_per_call_into_ejabberd() ->
    %% Ensures requests_total counts calls into ejabberd and the gauges go
    %% back to zero when the request and then the link end.
    C = connect(),
    ?assertEqual(1, stat(links_active)),
    ok = request(C, 5, <<"s3">>, 30),
    answer(called()),
    {200, _, _} = response(C, 5),
    ?assertEqual(1, stat(requests_total)),
    ?assertEqual(0, stat(requests_inflight)),
    ok = gen_tcp:close(C),
    wait_until(fun() -> stat(links_active) == 0 end),
    ?assertEqual(1, stat(links_accepted_total)).

refused_handshakes_and_errors_after_it_are_counted() ->
    %% Ensures a wrong mac is a refused link (never active), and an ERROR
    %% after the handshake a protocol error.
    Bad = connect(<<"wrong-secret-wrong-secret-wrong-secret">>),
    ?assertMatch({ok, #{type := error, reason := <<"auth_failed">>}}, recv(Bad)),
    C = connect(),
    ok = gen_tcp:send(C, <<16#7E, 0>>),
    ?assertMatch({ok, #{type := error, reason := <<"protocol_error">>}}, recv(C)),
    ?assertEqual(1, stat(links_refused_total)),
    ?assertEqual(1, stat(protocol_errors_total)),
    ?assertEqual(1, stat(links_accepted_total)),
    ?assertEqual(0, stat(requests_total)).

an_ecm_proving_any_secret_of_the_list_is_welcomed() ->
    %% Ensures a rotation: an ECM that still proves the previous secret
    %% (second in the list) is welcomed, and one with neither is refused.
    Old = connect(?PREVIOUS),
    ?assertMatch({ok, #{type := welcome}}, recv(Old)),
    Bad = connect(<<"neither-secret-neither-secret-neither">>),
    ?assertMatch({ok, #{type := error, reason := <<"auth_failed">>}}, recv(Bad)),
    ?assertEqual(1, stat(links_accepted_total)),
    ?assertEqual(1, stat(links_refused_total)).

over_max_inflight_is_503_and_counted() ->
    %% Ensures a REQUEST above max_inflight (2 here) gets 503 and is
    %% counted as rejected, never as a call into ejabberd.
    C = connect(),
    ok = request(C, 1, <<"s4">>, 1), W1 = called(),
    ok = request(C, 2, <<"s4">>, 2), W2 = called(),
    ok = request(C, 3, <<"s4">>, 3),
    ?assertEqual({503, <<>>, <<>>}, response(C, 3)),
    ?assertEqual(1, stat(requests_rejected_total)),
    ?assertEqual(2, stat(requests_total)),
    answer(W1), answer(W2).

%%%===================================================================
%%% Fixture: registry, counters, config, a listen socket, the double
%%%===================================================================
setup() ->
    load_fake_bosh(),
    {ok, Registry} = mod_megaphone_registry:start_link(),
    unlink(Registry),
    mod_megaphone_stats:new(),
    persistent_term:put({mod_megaphone, config},
                        #{host => <<"localhost">>, ip => {127, 0, 0, 1}, port => 0,
                          secret => ?SECRET, secrets => [?SECRET, ?PREVIOUS],
                          max_pending_links => 64, max_frame_size => 65536,
                          max_inflight => 2, heartbeat_interval => 60000,
                          handshake_timeout => 5000}),
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    persistent_term:put(?LISTEN, L),
    {Registry, L}.

cleanup({Registry, L}) ->
    gen_tcp:close(L),
    _ = persistent_term:erase(?LISTEN),
    Mon = monitor(process, Registry),
    exit(Registry, kill),
    receive {'DOWN', Mon, process, Registry, _} -> ok end,
    mod_megaphone_stats:delete(),
    _ = persistent_term:erase({mod_megaphone, config}),
    code:purge(ejabberd_bosh),
    code:delete(ejabberd_bosh).

%% The double: reports {bosh_called, Worker} and waits for the answer.
load_fake_bosh() ->
    Src = ["-module(ejabberd_bosh).",
           "-export([process_request/3]).",
           "process_request(_Body, {_IP, _Port}, xml) ->"
           "    mod_megaphone_fake_bosh ! {bosh_called, self()},"
           "    receive {bosh_answer, Reply} -> Reply end."],
    Forms = [begin
                 {ok, Tokens, _} = erl_scan:string(S),
                 {ok, Form} = erl_parse:parse_form(Tokens),
                 Form
             end || S <- Src],
    {ok, Mod, Bin} = compile:forms(Forms),
    {module, Mod} = code:load_binary(Mod, "fake_ejabberd_bosh.erl", Bin).

%%%===================================================================
%%% A minimal ECM side
%%%===================================================================
connect() ->
    C = connect(?SECRET),
    {ok, #{type := welcome}} = recv(C),
    C.

%% Connects a client socket to a new link process and sends AUTH.
connect(Secret) ->
    case whereis(?REPORTER) of
        Me when Me == self() -> ok;
        _ -> register(?REPORTER, self())
    end,
    L = persistent_term:get(?LISTEN),
    {ok, Port} = inet:port(L),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {packet, 4}, {active, false}]),
    {ok, S} = gen_tcp:accept(L),
    {ok, Link} = mod_megaphone_link:start_link(S),
    unlink(Link),
    ok = gen_tcp:controlling_process(S, Link),
    ok = mod_megaphone_link:take_socket(Link, S),
    {ok, #{type := hello, nonce := ServerNonce}} = recv(C),
    ClientNonce = crypto:strong_rand_bytes(32),
    Mac = mod_megaphone_codec:auth_mac(Secret, 1, ServerNonce, ClientNonce, <<"eunit">>),
    ok = gen_tcp:send(C, mod_megaphone_codec:encode(
                           #{type => auth, version => 1, nonce => ClientNonce,
                             mac => Mac, name => <<"eunit">>})),
    C.

request(C, Id, Sid, Rid) ->
    gen_tcp:send(C, mod_megaphone_codec:encode(
                      #{type => request, id => Id, rid => Rid, sid => Sid,
                        ip => {127, 0, 0, 1}, port => 4000,
                        body => <<"<body xmlns='http://jabber.org/protocol/httpbind'/>">>})).

recv(C) ->
    case gen_tcp:recv(C, 0, 2000) of
        {ok, Data} -> mod_megaphone_codec:decode(Data);
        {error, _} = Err -> Err
    end.

response(C, Id) ->
    {ok, #{type := response, id := Id, status := Status, content_type := Ct,
           body := Body}} = recv(C),
    {Status, Ct, iolist_to_binary(Body)}.

called() ->
    receive {bosh_called, W} -> W after 2000 -> error(ejabberd_not_called) end.

answer(W) ->
    W ! {bosh_answer, {200, <<"OK">>, [{<<"Content-Type">>, <<"text/xml">>}], <<"<body/>">>}}.

stat(Name) -> mod_megaphone_test_util:stat(Name).

wait_until(Cond) -> mod_megaphone_test_util:wait_until(Cond, 200).
