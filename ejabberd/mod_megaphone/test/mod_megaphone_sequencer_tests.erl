%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sequencer_tests.erl
%%% Purpose : Rid order, the bounded wait, joined copies, the shields and
%%%           CANCEL, against the real shards with stand-in BOSH session
%%%           processes (mod_megaphone_fake_session: each reports the
%%%           requests it takes, in order, and the test answers them).
%%% The real ejabberd and the cluster: src/test/java/io/megaphone/it/
%%% RidOrderTest, HostileRidTest and cluster/ClusterTest; random
%%% interleavings: mod_megaphone_sequencer_prop_tests.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sequencer_tests).

-include_lib("eunit/include/eunit.hrl").
-include("mod_megaphone_bosh.hrl").

-define(ORDER_TIMEOUT, 300).

sequencer_test_() ->
    {foreach, fun setup/0, fun cleanup/1,
     [fun n_plus_1_sent_first_enters_ejabberd_after_n/0,
      fun a_successor_goes_in_right_after_its_predecessor_without_waiting_for_its_answer/0,
      fun a_missing_predecessor_is_waited_for_then_skipped_and_runs_when_late/0,
      fun a_chain_waiting_below_an_expired_rid_goes_in_order/0,
      fun a_copy_of_a_running_rid_joins_it_and_gets_its_answer/0,
      fun a_rid_below_the_window_is_item_not_found_at_once/0,
      fun a_cancelled_waiting_request_leaves_without_calling_ejabberd/0,
      fun a_cancelled_request_inside_ejabberd_stays_for_its_copies/0,
      fun a_session_first_seen_late_starts_at_its_first_rid/0,
      fun a_session_that_ends_answers_every_request_and_leaves_no_row/0,
      fun a_request_of_an_unknown_session_is_item_not_found_at_once/0,
      fun a_malformed_body_is_400_at_once/0,
      fun a_rid_far_above_the_window_goes_at_once_and_leaves_nothing_behind/0,
      fun a_rid_below_the_creation_rid_is_item_not_found_at_once/0,
      fun the_window_is_the_creation_answers_requests/0,
      fun the_inflight_gauge_counts_calls_and_goes_back_to_zero/0]}.

%%%===================================================================
%%% Cases
%%%===================================================================
n_plus_1_sent_first_enters_ejabberd_after_n() ->
    %% Ensures rid 12 sent before rid 11 waits, and enters ejabberd right
    %% after 11 (the bug: 12 parked behind an empty poll 11).
    seed(<<"s1">>, 10),
    T12 = submit(<<"s1">>, 12),
    nothing_called(80),
    T11 = submit(<<"s1">>, 11),
    {F11, 11} = called(),
    {F12, 12} = called(),
    reply(F11, ok_body(11)), reply(F12, ok_body(12)),
    ?assertEqual(ok_body(11), answer(T11)),
    ?assertEqual(ok_body(12), answer(T12)),
    ?assertEqual(1, stat(requests_reordered_total)),
    ?assertEqual(0, stat(requests_order_timeout_total)).

a_successor_goes_in_right_after_its_predecessor_without_waiting_for_its_answer() ->
    %% Ensures a request held by ejabberd (an empty poll) does not hold up
    %% its successor: once the shard has sent rid 11 into the session, 12
    %% follows at once (it is behind 11 in the session's mailbox).
    seed(<<"s14">>, 10),
    T11 = submit(<<"s14">>, 11),
    {F11, 11} = called(),
    T0 = erlang:monotonic_time(millisecond),
    T12 = submit(<<"s14">>, 12),
    {F12, 12} = called(),
    ?assert(erlang:monotonic_time(millisecond) - T0 < ?ORDER_TIMEOUT div 2),
    reply(F12, ok_body(12)), reply(F11, ok_body(11)),
    ?assertEqual(ok_body(12), answer(T12)),
    ?assertEqual(ok_body(11), answer(T11)).

a_missing_predecessor_is_waited_for_then_skipped_and_runs_when_late() ->
    %% Ensures a rid whose predecessor never comes goes after order_timeout
    %% (as it would without mod_megaphone), and the predecessor, arriving
    %% later, goes at once instead of being taken for a stale rid.
    seed(<<"s2">>, 10),
    T0 = erlang:monotonic_time(millisecond),
    T12 = submit(<<"s2">>, 12),
    {F12, 12} = called(),
    Waited = erlang:monotonic_time(millisecond) - T0,
    ?assert(Waited >= ?ORDER_TIMEOUT - 5),
    ?assert(Waited < ?ORDER_TIMEOUT + 2000), % a busy shared machine
    ?assertEqual(1, stat(requests_order_timeout_total)),
    T11 = submit(<<"s2">>, 11),
    {F11, 11} = called(),
    reply(F11, ok_body(11)), reply(F12, ok_body(12)),
    ?assertEqual(ok_body(11), answer(T11)),
    ?assertEqual(ok_body(12), answer(T12)).

a_chain_waiting_below_an_expired_rid_goes_in_order() ->
    %% Ensures that when rid 13 times out while 12 waits too (11 lost),
    %% 12 enters before 13 (a window of 3: 13 is inside it).
    seed(<<"s3">>, 10, 3),
    T12 = submit(<<"s3">>, 12),
    timer:sleep(20),
    T13 = submit(<<"s3">>, 13),
    {F12, 12} = called(),
    {F13, 13} = called(),
    reply(F12, ok_body(12)), reply(F13, ok_body(13)),
    _ = answer(T12), _ = answer(T13).

a_copy_of_a_running_rid_joins_it_and_gets_its_answer() ->
    %% Ensures a second copy of a rid inside ejabberd never makes a second
    %% call (two live copies crash a 23.01 session): it gets the same answer.
    seed(<<"s4">>, 10),
    A = submit(<<"s4">>, 11),
    {F, 11} = called(),
    B = submit(<<"s4">>, 11),
    nothing_called(80),
    ?assertEqual(1, stat(requests_deduplicated_total)),
    reply(F, ok_body(11)),
    ?assertEqual(ok_body(11), answer(A)),
    ?assertEqual(ok_body(11), answer(B)),
    ?assertEqual(1, stat(requests_total)).

a_rid_below_the_window_is_item_not_found_at_once() ->
    %% Ensures a rid that ejabberd has neither buffered nor running (it
    %% would hold it until the session ends) is answered item-not-found
    %% without a call, while the last two answered rids still reach
    %% ejabberd (which answers them from its buffer).
    seed(<<"s5">>, 10),
    [begin T = submit(<<"s5">>, R), {F, R} = called(), reply(F, ok_body(R)), _ = answer(T) end
     || R <- [11, 12, 13]],
    ?assertEqual(item_not_found(), answer(submit(<<"s5">>, 11))),
    nothing_called(30),
    ?assertEqual(1, stat(requests_stale_total)),
    Buffered = submit(<<"s5">>, 12),
    {F12, 12} = called(),
    reply(F12, ok_body(12)),
    ?assertEqual(ok_body(12), answer(Buffered)).

a_cancelled_waiting_request_leaves_without_calling_ejabberd() ->
    %% Ensures CANCEL of a request waiting for its predecessor ends it with
    %% no call, and does not hold up the rids after it.
    seed(<<"s6">>, 10),
    T12 = submit(<<"s6">>, 12),
    wait_until(fun() -> element(4, mod_megaphone_sequencer:session_state(<<"s6">>)) == #{12 => waiting} end),
    cancel(T12),
    wait_until(fun() -> element(4, mod_megaphone_sequencer:session_state(<<"s6">>)) == #{} end),
    T11 = submit(<<"s6">>, 11),
    {F11, 11} = called(),
    reply(F11, ok_body(11)),
    _ = answer(T11),
    T12b = submit(<<"s6">>, 12),
    {F12, 12} = called(),
    reply(F12, ok_body(12)),
    ?assertEqual(ok_body(12), answer(T12b)),
    no_answer(T12, 50),
    ?assertEqual(0, stat(requests_order_timeout_total)).

a_cancelled_request_inside_ejabberd_stays_for_its_copies() ->
    %% Ensures CANCEL of a request ejabberd holds does not forget it: a
    %% re-sent copy joins it (a second copy would be a second live one).
    seed(<<"s15">>, 10),
    T11 = submit(<<"s15">>, 11),
    {F11, 11} = called(),
    cancel(T11),
    Again = submit(<<"s15">>, 11),
    nothing_called(50),
    reply(F11, ok_body(11)),
    ?assertEqual(ok_body(11), answer(Again)),
    no_answer(T11, 50).

a_session_first_seen_late_starts_at_its_first_rid() ->
    %% Ensures a session not created through this module (no seed) is
    %% ordered from the first rid seen, and rids just below it (ejabberd
    %% may buffer them) pass through, while far below is stale.
    mod_megaphone_fake_session:start(<<"s7">>),
    T20 = submit(<<"s7">>, 20),
    {F20, 20} = called(),
    T22 = submit(<<"s7">>, 22),
    T21 = submit(<<"s7">>, 21),
    {F21, 21} = called(),
    {F22, 22} = called(),
    T19 = submit(<<"s7">>, 19),
    {F19, 19} = called(),
    [reply(F, ok_body(R)) || {F, R} <- [{F19, 19}, {F20, 20}, {F21, 21}, {F22, 22}]],
    [_ = answer(T) || T <- [T19, T20, T21, T22]],
    ?assertEqual(item_not_found(), answer(submit(<<"s7">>, 10))).

a_session_that_ends_answers_every_request_and_leaves_no_row() ->
    %% Ensures the requests of a session that ends (held, or waiting for a
    %% predecessor) are answered as ejabberd answers them (item-not-found
    %% after a normal end, internal-server-error after a crash), and the
    %% session's row goes with it.
    Bosh = seed(<<"s10">>, 10),
    T11 = submit(<<"s10">>, 11),
    {_, 11} = called(),
    T13 = submit(<<"s10">>, 13),
    Bosh ! {stop, normal},
    ?assertMatch(#body{attrs = [{type, <<"terminate">>}, {condition, <<"item-not-found">>}]}, answer(T11)),
    ?assertMatch(#body{attrs = [{type, <<"terminate">>}, {condition, <<"item-not-found">>}]}, answer(T13)),
    wait_until(fun() -> mod_megaphone_sequencer:session_state(<<"s10">>) == none end),
    Crashing = seed(<<"s16">>, 10),
    T = submit(<<"s16">>, 11),
    {_, 11} = called(),
    Crashing ! {stop, boom},
    ?assertMatch(#body{attrs = [_, {condition, <<"internal-server-error">>}]}, answer(T)).

a_request_of_an_unknown_session_is_item_not_found_at_once() ->
    %% Ensures an unknown sid is answered as ejabberd would, with no shard.
    {answer, {200, _, _, Xml}} = mod_megaphone_sequencer:submit(body(<<"nope">>, 5), target()),
    ?assertEqual(<<"<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' "
                   "condition='item-not-found'/>">>, iolist_to_binary(Xml)).

a_malformed_body_is_400_at_once() ->
    %% Ensures what ejabberd's process_request/3 refuses is refused before
    %% any shard: not XML, not <body/>, no rid, a bad number.
    [?assertMatch({answer, {400, _, _, <<>>}}, mod_megaphone_sequencer:submit(B, target()))
     || B <- [<<"<body">>, <<"<iq/>">>, <<"<body sid='x'/>">>,
              <<"<body rid='-1' sid='x'/>">>, <<"<body rid='1' sid='x' xmlns='other'/>">>]].

a_rid_far_above_the_window_goes_at_once_and_leaves_nothing_behind() ->
    %% Ensures a hostile rid (creation + 10^9, 2^53 - 1) costs O(1): it goes
    %% to ejabberd at once (which ends the session with item-not-found)
    %% instead of waiting order_timeout for a gap of a billion rids, and
    %% neither the shards' memory nor the session's row grows with it.
    %% At a2186b1 the gap was built as a list after the wait.
    seed(<<"s11">>, 10),
    Shards = [whereis(N) || N <- mod_megaphone_sequencer:shard_names()],
    Before = lists:sum([element(2, process_info(P, memory)) || P <- Shards]),
    [begin
         T0 = erlang:monotonic_time(millisecond),
         T = submit(<<"s11">>, Rid),
         {F, Rid} = called(),
         ?assert(erlang:monotonic_time(millisecond) - T0 < ?ORDER_TIMEOUT div 2),
         reply(F, ok_body(Rid)),
         _ = answer(T)
     end || Rid <- [10 + 1000000000, (1 bsl 53) - 1, 14]],
    ?assertEqual({10, [10], [], #{}}, mod_megaphone_sequencer:session_state(<<"s11">>)),
    timer:sleep(?ORDER_TIMEOUT + 100), % a timer left behind would fire now
    [garbage_collect(P) || P <- Shards],
    After = lists:sum([element(2, process_info(P, memory)) || P <- Shards]),
    ?assert(After - Before < 64 * 1024),
    ?assertEqual(0, stat(requests_order_timeout_total)),
    %% the session's own next rid is still ordered and answered
    T11 = submit(<<"s11">>, 11),
    {F11, 11} = called(),
    reply(F11, ok_body(11)),
    ?assertEqual(ok_body(11), answer(T11)).

a_rid_below_the_creation_rid_is_item_not_found_at_once() ->
    %% Ensures a rid below a seeded session's creation rid, which can never
    %% be one of its requests, is answered item-not-found without a call
    %% (at a2186b1 it went to ejabberd, which held it until 'wait').
    seed(<<"s12">>, 1000),
    [?assertEqual(item_not_found(), answer(submit(<<"s12">>, Rid))) || Rid <- [999, 998, 1, 500]],
    nothing_called(30),
    ?assertEqual(4, stat(requests_stale_total)),
    %% the creation rid itself is in ejabberd's buffer
    T = submit(<<"s12">>, 1000),
    {F, 1000} = called(),
    reply(F, ok_body(1000)),
    ?assertEqual(ok_body(1000), answer(T)).

the_window_is_the_creation_answers_requests() ->
    %% Ensures the shield is sized from the creation answer's 'requests':
    %% with requests='3', rid C+3 waits for its predecessors (inside the
    %% window) and C+4 goes at once (above it).
    mod_megaphone_fake_session:start(<<"s13">>),
    register(mod_megaphone_creator, self()), % eunit runs a case in a process of its own
    Me = self(),
    Create = spawn(fun() ->
                           Me ! {created, mod_megaphone_sequencer:create(
                                            <<"<body rid='70' to='localhost'/>">>,
                                            {127, 0, 0, 1}, 5000, 70)}
                   end),
    receive {create_called, Create} -> ok after 3000 -> error(create_not_called) end,
    Create ! {create_answer, {200, <<"OK">>, [], <<"<body xmlns='http://jabber.org/protocol/httpbind' "
                                                  "sid='s13' wait='60' requests='3' hold='2'/>">>}},
    receive {created, {200, _, _, _}} -> ok after 3000 -> error(not_created) end,
    T73 = submit(<<"s13">>, 73),
    nothing_called(80),
    T74 = submit(<<"s13">>, 74),
    {F74, 74} = called(),
    reply(F74, ok_body(74)), _ = answer(T74),
    [begin T = submit(<<"s13">>, R), {F, R} = called(), reply(F, ok_body(R)), _ = answer(T) end
     || R <- [71, 72]],
    {F73, 73} = called(),
    reply(F73, ok_body(73)), _ = answer(T73),
    %% the last 3 answered rids are ejabberd's buffer; the 4th is stale
    ?assertMatch({73, [73, 72, 71], [], _}, mod_megaphone_sequencer:session_state(<<"s13">>)),
    ?assertEqual(item_not_found(), answer(submit(<<"s13">>, 70))).

the_inflight_gauge_counts_calls_and_goes_back_to_zero() ->
    %% Ensures requests_inflight counts distinct requests in the shards
    %% (a joined copy is not a second one) and returns to 0 when answered.
    seed(<<"s17">>, 10),
    T11 = submit(<<"s17">>, 11),
    {F11, 11} = called(),
    T11b = submit(<<"s17">>, 11),
    T13 = submit(<<"s17">>, 13),
    wait_until(fun() -> stat(requests_inflight) == 2 end),
    ?assertEqual(3, mod_megaphone_sequencer:inflight()),
    reply(F11, ok_body(11)),
    _ = answer(T11), _ = answer(T11b),
    T12 = submit(<<"s17">>, 12),
    {F12, 12} = called(), {F13, 13} = called(),
    reply(F12, ok_body(12)), reply(F13, ok_body(13)),
    _ = answer(T12), _ = answer(T13),
    wait_until(fun() -> stat(requests_inflight) == 0 end),
    ?assertEqual(0, mod_megaphone_sequencer:inflight()).

%%%===================================================================
%%% Fixture
%%%===================================================================
setup() ->
    mod_megaphone_fake_session:load_mod_bosh(),
    %% the creation's ejabberd_bosh: reports and waits for the test
    load(ejabberd_bosh,
         ["-module(ejabberd_bosh).",
          "-export([process_request/3]).",
          "process_request(_Body, {_IP, _Port}, xml) ->"
          "    mod_megaphone_creator ! {create_called, self()},"
          "    receive {create_answer, Reply} -> Reply end."]),
    mod_megaphone_stats:new(),
    persistent_term:put({mod_megaphone, config}, #{order_timeout => ?ORDER_TIMEOUT}),
    mod_megaphone_test_util:start_shards().

cleanup(Shards) ->
    mod_megaphone_test_util:kill(Shards),
    mod_megaphone_fake_session:unload(),
    _ = persistent_term:erase({mod_megaphone, config}),
    mod_megaphone_stats:delete(),
    try unregister(mod_megaphone_creator) catch error:badarg -> ok end,
    code:purge(ejabberd_bosh), code:delete(ejabberd_bosh),
    receive_all().

load(Mod, Src) -> mod_megaphone_test_util:load_double(Mod, Src).

seed(Sid, Rid) ->
    seed(Sid, Rid, 2).

seed(Sid, Rid, Requests) ->
    Bosh = mod_megaphone_fake_session:start(Sid),
    ok = mod_megaphone_sequencer:seed(Sid, Bosh, Rid, Requests),
    Bosh.

body(Sid, Rid) ->
    <<"<body rid='", (integer_to_binary(Rid))/binary, "' sid='", Sid/binary,
      "' xmlns='http://jabber.org/protocol/httpbind'/>">>.

target() ->
    {self(), erlang:unique_integer([positive]), make_ref()}.

%% A link's REQUEST: queued on the session's shard; answer/1 collects it.
submit(Sid, Rid) ->
    Target = target(),
    {queued, Ticket} = mod_megaphone_sequencer:submit(body(Sid, Rid), Target),
    {Ticket, Target}.

cancel({Ticket, Target}) ->
    mod_megaphone_sequencer:cancel(Ticket, Target).

answer({_, {_, Id, Ref}}) ->
    receive {megaphone_answer, Id, Ref, Answer} -> Answer after 3000 -> error(no_answer) end.

no_answer({_, {_, Id, Ref}}, Ms) ->
    receive {megaphone_answer, Id, Ref, Answer} -> error({answered, Answer}) after Ms -> ok end.

item_not_found() ->
    mod_megaphone_bosh:terminate(<<"item-not-found">>, <<"Request ID is below the window">>).

called() -> mod_megaphone_fake_session:called().
nothing_called(Ms) -> mod_megaphone_fake_session:nothing_called(Ms).
reply(From, Body) -> mod_megaphone_fake_session:reply(From, Body).
ok_body(Rid) -> mod_megaphone_fake_session:ok_body(Rid).

stat(Name) -> mod_megaphone_test_util:stat(Name).

wait_until(Cond) -> mod_megaphone_test_util:wait_until(Cond, 100).

receive_all() ->
    receive _ -> receive_all() after 0 -> ok end.
