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

-export([bench/1]).

-include_lib("eunit/include/eunit.hrl").
-include("mod_megaphone_bosh.hrl").

-define(SECRET, <<"eunit-secret-eunit-secret-eunit-secret">>).
%% The secret before a rotation: still accepted, no longer the first.
-define(PREVIOUS, <<"eunit-previous-secret-eunit-previous">>).
-define(REPORTER, mod_megaphone_fake_bosh).
-define(LISTEN, {?MODULE, listen}).
-define(CT, <<"text/xml; charset=utf-8">>).
-define(TERMINATE, <<"<body type='terminate' condition='internal-server-error' "
                     "xmlns='http://jabber.org/protocol/httpbind'/>">>).

link_test_() ->
    {foreach, fun setup/0, fun cleanup/1,
     [fun a_killed_creation_worker_is_answered_500_and_its_id_and_row_are_freed/0,
      fun a_re_sent_session_creation_is_answered_once_with_the_same_session/0,
      fun a_copy_on_another_link_gets_the_same_answer_from_one_call/0,
      fun cancel_answers_nothing_and_a_held_request_stays_for_its_copies/0,
      fun a_finished_request_is_counted_once_per_call_into_ejabberd/0,
      fun refused_handshakes_and_errors_after_it_are_counted/0,
      fun over_max_inflight_is_503_and_counted/0,
      fun a_shard_that_ends_answers_its_ids_503_and_the_next_request_goes_through/0,
      {timeout, 60, fun held_requests_cost_the_link_no_process_and_no_heap/0},
      fun an_ecm_proving_any_secret_of_the_list_is_welcomed/0,
      fun an_answer_too_large_for_a_frame_closes_its_session/0,
      fun a_creation_answer_over_plain_tcp_says_it_is_not_secure/0]}.

%%%===================================================================
%%% Cases
%%%===================================================================
a_killed_creation_worker_is_answered_500_and_its_id_and_row_are_freed() ->
    %% Ensures a session creation's worker killed in ejabberd's call gets
    %% its id a 500 BOSH terminate and frees the id (reusing it is no
    %% protocol error) and its registry row.
    C = connect(),
    ok = create(C, 1, 10),
    W = created(),
    exit(W, kill),
    ?assertEqual({500, <<"text/xml; charset=utf-8">>, ?TERMINATE}, response(C, 1)),
    ?assertEqual(0, stat(requests_inflight)),
    ok = create(C, 1, 10),
    W2 = created(),
    ?assertNotEqual(W, W2),
    W2 ! {bosh_answer, {200, <<"OK">>, [{<<"Content-Type">>, <<"text/xml">>}], <<"<body/>">>}},
    ?assertEqual({200, <<"text/xml">>, <<"<body/>">>}, response(C, 1)),
    ?assertEqual(2, stat(requests_total)).

a_re_sent_session_creation_is_answered_once_with_the_same_session() ->
    %% Ensures a copy of a session creation re-sent by an ECM (its answer
    %% lost with a link) does not create a second session: while the first
    %% runs it joins it, and afterwards it gets the same answer again.
    A = connect(), B = connect(),
    ok = create(A, 1, 77),
    W = created(),
    ok = create(B, 2, 77),
    wait_until(fun() -> stat(requests_deduplicated_total) == 1 end),
    Answer = <<"<body sid='one-session'/>">>,
    W ! {bosh_answer, {200, <<"OK">>, [{<<"Content-Type">>, <<"text/xml">>}], Answer}},
    ?assertEqual({200, <<"text/xml">>, Answer}, response(A, 1)),
    ?assertEqual({200, <<"text/xml">>, Answer}, response(B, 2)),
    ok = create(B, 3, 77),
    ?assertEqual({200, <<"text/xml">>, Answer}, response(B, 3)),
    receive {create_called, _} -> error(created_twice) after 100 -> ok end,
    ?assertEqual(1, stat(requests_total)),
    %% another creation (another rid) is a session of its own
    ok = create(B, 4, 78),
    W2 = created(),
    W2 ! {bosh_answer, {200, <<"OK">>, [], <<"<body sid='two'/>">>}},
    ?assertMatch({200, _, <<"<body sid='two'/>">>}, response(B, 4)).

a_copy_on_another_link_gets_the_same_answer_from_one_call() ->
    %% Ensures a re-sent copy of a held request, on another link, joins it:
    %% ejabberd is called once, both ids get its answer, and no process
    %% ran either request.
    session(<<"s2">>),
    A = connect(), B = connect(),
    Procs = erlang:system_info(process_count),
    ok = request(A, 7, <<"s2">>, 20),
    {From, 20} = called(),
    ok = request(B, 8, <<"s2">>, 20),
    wait_until(fun() -> stat(requests_deduplicated_total) == 1 end),
    ?assertEqual(Procs, erlang:system_info(process_count)),
    reply(From, ok_body(20)),
    ?assertEqual({200, ?CT, ok_xml(20)}, response(A, 7)),
    ?assertEqual({200, ?CT, ok_xml(20)}, response(B, 8)),
    ?assertEqual(1, stat(requests_total)),
    wait_until(fun() -> stat(requests_inflight) == 0 end).

cancel_answers_nothing_and_a_held_request_stays_for_its_copies() ->
    %% Ensures CANCEL of the only copy sends no RESPONSE and is counted,
    %% and that a request ejabberd holds is not forgotten: a re-sent copy
    %% joins it and gets ejabberd's answer, the cancelled id none.
    session(<<"s3">>),
    C = connect(),
    ok = request(C, 3, <<"s3">>, 30),
    {From, 30} = called(),
    ok = gen_tcp:send(C, mod_megaphone_codec:encode(#{type => cancel, id => 3})),
    ?assertEqual({error, timeout}, gen_tcp:recv(C, 0, 300)),
    ?assertEqual(1, stat(cancels_total)),
    ok = request(C, 4, <<"s3">>, 30),
    nothing_called(100),
    reply(From, ok_body(30)),
    ?assertEqual({200, ?CT, ok_xml(30)}, response(C, 4)),
    ?assertEqual({error, timeout}, gen_tcp:recv(C, 0, 100)).

a_finished_request_is_counted_once_per_call_into_ejabberd() ->
    %% Ensures requests_total counts calls into ejabberd and the gauges go
    %% back to zero when the request and then the link end.
    session(<<"s5">>),
    C = connect(),
    ?assertEqual(1, stat(links_active)),
    ok = request(C, 5, <<"s5">>, 30),
    {From, 30} = called(),
    reply(From, ok_body(30)),
    {200, _, _} = response(C, 5),
    ?assertEqual(1, stat(requests_total)),
    wait_until(fun() -> stat(requests_inflight) == 0 end),
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
    session(<<"s4">>),
    C = connect(),
    ok = request(C, 1, <<"s4">>, 1), {F1, 1} = called(),
    ok = request(C, 2, <<"s4">>, 2), {F2, 2} = called(),
    ok = request(C, 3, <<"s4">>, 3),
    ?assertEqual({503, <<>>, <<>>}, response(C, 3)),
    ?assertEqual(1, stat(requests_rejected_total)),
    ?assertEqual(2, stat(requests_total)),
    reply(F1, ok_body(1)), reply(F2, ok_body(2)).

a_shard_that_ends_answers_its_ids_503_and_the_next_request_goes_through() ->
    %% Ensures an id whose shard died (its answer would go nowhere) is
    %% answered 503 (the ECM re-sends it), and a restarted shard takes the
    %% next request.
    session(<<"s6">>),
    C = connect(),
    ok = request(C, 1, <<"s6">>, 60),
    {_, 60} = called(),
    {Shard, I} = mod_megaphone_sequencer:shard_of(<<"s6">>),
    Old = whereis(Shard),
    exit(Old, kill),
    ?assertEqual({503, <<>>, <<>>}, response(C, 1)),
    {ok, New} = mod_megaphone_sequencer:start_link(I),
    unlink(New),
    ok = request(C, 2, <<"s6">>, 60),
    {From, 60} = called(),
    reply(From, ok_body(60)),
    ?assertEqual({200, ?CT, ok_xml(60)}, response(C, 2)).

held_requests_cost_the_link_no_process_and_no_heap() ->
    %% Ensures requests held by ejabberd cost no process each, and that the
    %% link keeps its ids in an ETS table, not on its heap: 10,000 held
    %% requests (one per session) grow the link process by less than
    %% 64 KB and the node by no process.
    #{link_growth := Growth, processes_added := Added} = held_requests(10000),
    ?assert(Growth < 64 * 1024),
    ?assertEqual(0, Added).

%% N requests held by ejabberd on one link (one per stand-in session),
%% then answered; what they cost while held (bench/link-inflight.sh runs
%% it at 250,000). Beside it, for comparison, a process holding the same
%% number of entries in a map on its heap, as the link did before.
held_requests(N) ->
    persistent_term:put({mod_megaphone, config},
                        (persistent_term:get({mod_megaphone, config}))#{max_inflight => N}),
    Sids = [<<"h", (integer_to_binary(I))/binary>> || I <- lists:seq(1, N)],
    [session(Sid) || Sid <- Sids],
    C = connect(),
    Link = get(link),
    garbage_collect(Link),
    {memory, Before} = process_info(Link, memory),
    Procs = erlang:system_info(process_count),
    %% sent from another process: gen_tcp:send/2 waits for its inet_reply
    %% with a receive that scans this process's mailbox, which fills with
    %% the sessions' reports meanwhile
    spawn_link(fun() -> [ok = request(C, I, Sid, 1) || {I, Sid} <- lists:zip(lists:seq(1, N), Sids)] end),
    Froms = [begin {F, 1} = called(), F end || _ <- Sids],
    wait_until(fun() -> stat(requests_inflight) == N end),
    garbage_collect(Link),
    {memory, After} = process_info(Link, memory),
    [Table] = [T || T <- ets:all(), ets:info(T, owner) == Link, ets:info(T, name) == mod_megaphone_link],
    TableBytes = ets:info(Table, memory) * erlang:system_info(wordsize),
    {GcUs, _} = timer:tc(fun() -> garbage_collect(Link) end),
    ShardBytes = lists:sum([ets:info(S, memory) || S <- mod_megaphone_sequencer:shard_names()])
        * erlang:system_info(wordsize),
    Added = erlang:system_info(process_count) - Procs,
    {MapBytes, MapGcUs} = heap_map(N),
    [reply(F, ok_body(1)) || F <- Froms],
    Answered = [begin {ok, #{type := response, id := Id, status := 200}} = recv(C), Id end
                || _ <- Sids],
    ?assertEqual(lists:seq(1, N), lists:sort(Answered)),
    wait_until(fun() -> stat(requests_inflight) == 0 end),
    #{held => N, link_before => Before, link_after => After, link_growth => After - Before,
      link_table_bytes => TableBytes, link_gc_us => GcUs, shard_tables_bytes => ShardBytes,
      processes_added => Added, heap_map_bytes => MapBytes, heap_map_gc_us => MapGcUs}.

%% A process with N in-flight entries of the old shape ({Ref, Key, Worker,
%% Monitor} per id) in a map on its heap: its memory and one GC's time.
heap_map(N) ->
    Me = self(),
    P = spawn(fun() ->
                      Map = maps:from_list([{I, {make_ref(), {<<"0123456789abcdef0123456789abcdef01234567">>, I},
                                                 self(), make_ref()}} || I <- lists:seq(1, N)]),
                      Me ! built,
                      receive stop -> map_size(Map) end
              end),
    receive built -> ok end,
    garbage_collect(P),
    {memory, Bytes} = process_info(P, memory),
    {Us, _} = timer:tc(fun() -> garbage_collect(P) end),
    exit(P, kill),
    {Bytes, Us}.

%% bench/link-inflight.sh
bench(N) ->
    Fixture = setup(),
    try
        M = held_requests(N),
        io:format("~p~n", [M])
    after
        cleanup(Fixture)
    end.

an_answer_too_large_for_a_frame_closes_its_session() ->
    %% Ensures an answer over max_frame_size is sent as the "answer too
    %% large" RESPONSE and ends its session in ejabberd (the ECM tells the
    %% client the session is over; ejabberd took the rid), and that an
    %% answer that fits closes nothing.
    S = session(<<"s9">>),
    C = connect(),
    ok = request(C, 9, <<"s9">>, 40),
    {From, 40} = called(),
    reply(From, ok_body(40)),
    {200, _, _} = response(C, 9),
    receive {close_called, _} -> error(closed_a_session_whose_answer_fit) after 100 -> ok end,
    ok = request(C, 10, <<"s9">>, 41),
    {From2, 41} = called(),
    Big = (ok_body(41))#body{els = [{xmlstreamraw, binary:copy(<<"x">>, 70000)}]},
    reply(From2, Big),
    ?assertEqual({502, <<>>, <<>>}, response(C, 10)),
    receive {close_called, Closed} -> ?assertEqual(S, Closed) after 2000 -> error(session_not_closed) end.

a_creation_answer_over_plain_tcp_says_it_is_not_secure() ->
    %% Ensures the creation answer's 'secure' (ejabberd writes 'true') says
    %% the link is not TLS, for the first answer and for a re-sent copy.
    C = connect(),
    ok = create(C, 1, 90),
    W = created(),
    W ! {bosh_answer, {200, <<"OK">>, [{<<"Content-Type">>, ?CT}], <<"<body sid='c1' secure='true'/>">>}},
    ?assertEqual({200, ?CT, <<"<body sid='c1' secure='false'/>">>}, response(C, 1)),
    ok = create(C, 2, 90),
    ?assertEqual({200, ?CT, <<"<body sid='c1' secure='false'/>">>}, response(C, 2)).

%%%===================================================================
%%% Fixture: registry, counters, config, a listen socket, the double
%%%===================================================================
setup() ->
    {ok, _} = application:ensure_all_started(stringprep), % jid:nameprep/1 of 'to'
    load_fake_bosh(),
    mod_megaphone_fake_session:load_mod_bosh(),
    {ok, Registry} = mod_megaphone_registry:start_link(),
    unlink(Registry),
    mod_megaphone_stats:new(),
    persistent_term:put({mod_megaphone, config},
                        #{host => <<"localhost">>, ip => {127, 0, 0, 1}, port => 0,
                          secret => ?SECRET, secrets => [?SECRET, ?PREVIOUS],
                          max_pending_links => 64, max_frame_size => 65536,
                          max_inflight => 2, heartbeat_interval => 60000,
                          handshake_timeout => 5000, order_timeout => 300}),
    Shards = [begin {ok, P} = mod_megaphone_sequencer:start_link(I), unlink(P), P end
              || I <- lists:seq(1, length(mod_megaphone_sequencer:shard_names()))],
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    persistent_term:put(?LISTEN, L),
    {[Registry | Shards], L}.

cleanup({Processes, L}) ->
    gen_tcp:close(L),
    _ = persistent_term:erase(?LISTEN),
    [begin
         Mon = monitor(process, P),
         exit(P, kill),
         receive {'DOWN', Mon, process, P, _} -> ok end
     end || Name <- [mod_megaphone_registry | mod_megaphone_sequencer:shard_names()],
            P <- [whereis(Name)], is_pid(P)],
    _ = Processes,
    mod_megaphone_fake_session:unload(),
    mod_megaphone_stats:delete(),
    _ = persistent_term:erase({mod_megaphone, config}),
    code:purge(ejabberd_bosh),
    code:delete(ejabberd_bosh).

%% The double of a session creation: reports {create_called, Worker} and
%% waits for the answer.
load_fake_bosh() ->
    Src = ["-module(ejabberd_bosh).",
           "-export([process_request/3, close/1]).",
           "process_request(_Body, {_IP, _Port}, xml) ->"
           "    mod_megaphone_fake_bosh ! {create_called, self()},"
           "    receive {bosh_answer, Reply} -> Reply end.",
           "close({http_bind, Pid, _IP}) ->"
           "    mod_megaphone_fake_bosh ! {close_called, Pid},"
           "    ok."],
    mod_megaphone_test_util:load_double(ejabberd_bosh, Src).

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
    put(link, Link), % the last link started, for a test that looks at it
    ok = gen_tcp:controlling_process(S, Link),
    ok = mod_megaphone_link:take_socket(Link, S),
    {ok, #{type := hello, nonce := ServerNonce}} = recv(C),
    ClientNonce = crypto:strong_rand_bytes(32),
    Mac = mod_megaphone_codec:auth_mac(Secret, 1, ServerNonce, ClientNonce, <<"eunit">>),
    ok = gen_tcp:send(C, mod_megaphone_codec:encode(
                           #{type => auth, version => 1, nonce => ClientNonce,
                             mac => Mac, name => <<"eunit">>})),
    C.

%% A REQUEST of session Sid (a stand-in session: session/1).
request(C, Id, Sid, Rid) ->
    send_request(C, Id, Sid, Rid,
                 <<"<body rid='", (integer_to_binary(Rid))/binary, "' sid='", Sid/binary,
                   "' xmlns='http://jabber.org/protocol/httpbind'/>">>).

%% A session creation: it runs in a worker, which calls the double.
create(C, Id, Rid) ->
    send_request(C, Id, <<>>, Rid,
                 <<"<body rid='", (integer_to_binary(Rid))/binary, "' to='localhost' "
                   "xmlns='http://jabber.org/protocol/httpbind'/>">>).

send_request(C, Id, Sid, Rid, Body) ->
    gen_tcp:send(C, mod_megaphone_codec:encode(
                      #{type => request, id => Id, rid => Rid, sid => Sid,
                        ip => {127, 0, 0, 1}, port => 4000, body => Body})).

recv(C) ->
    case gen_tcp:recv(C, 0, 2000) of
        {ok, Data} -> mod_megaphone_codec:decode(Data);
        {error, _} = Err -> Err
    end.

response(C, Id) ->
    {ok, #{type := response, id := Id, status := Status, content_type := Ct,
           body := Body}} = recv(C),
    {Status, Ct, iolist_to_binary(Body)}.

%% The worker of a session creation that called ejabberd_bosh.
created() ->
    receive {create_called, W} -> W after 2000 -> error(ejabberd_not_called) end.

session(Sid) -> mod_megaphone_fake_session:start(Sid).
called() -> mod_megaphone_fake_session:called().
nothing_called(Ms) -> mod_megaphone_fake_session:nothing_called(Ms).
reply(From, Body) -> mod_megaphone_fake_session:reply(From, Body).
ok_body(Rid) -> mod_megaphone_fake_session:ok_body(Rid).

ok_xml(Rid) ->
    <<"<body xmlns='http://jabber.org/protocol/httpbind' rid='", (integer_to_binary(Rid))/binary, "'/>">>.

stat(Name) -> mod_megaphone_test_util:stat(Name).

wait_until(Cond) -> mod_megaphone_test_util:wait_until(Cond, 200).
