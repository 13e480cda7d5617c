%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sequencer_tests.erl
%%% Purpose : Rid order, the bounded wait, joined copies, the below-window
%%%           shield and CANCEL, against the real shards with test doubles
%%%           of ejabberd_bosh (reports each call with its body and blocks
%%%           until the test answers) and mod_bosh (find_session/1 finds a
%%%           stand-in session process on this node).
%%% The real ejabberd and the cluster: src/test/java/io/megaphone/it/
%%% RidOrderTest and cluster/ClusterRidOrderTest.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sequencer_tests).

-include_lib("eunit/include/eunit.hrl").

-define(REPORTER, mod_megaphone_fake_bosh).
-define(ORDER_TIMEOUT, 300).
-define(OK(Rid), {200, <<"OK">>, [{<<"Content-Type">>, <<"text/xml">>}],
                  <<"<body rid='", Rid/binary, "'/>">>}).

sequencer_test_() ->
    {foreach, fun setup/0, fun cleanup/1,
     [fun n_plus_1_sent_first_enters_ejabberd_after_n/0,
      fun a_missing_predecessor_is_waited_for_then_skipped_and_runs_when_late/0,
      fun a_chain_waiting_below_an_expired_rid_goes_in_order/0,
      fun a_predecessor_not_seen_inside_ejabberd_holds_its_successor_a_bounded_time/0,
      fun a_copy_of_a_running_rid_joins_it_and_gets_its_answer/0,
      fun a_rid_below_the_window_is_item_not_found_at_once/0,
      fun a_cancelled_waiting_request_leaves_without_calling_ejabberd/0,
      fun a_session_first_seen_late_starts_at_its_first_rid/0,
      fun a_waiting_request_goes_on_when_the_shards_die/0,
      fun a_request_of_an_unknown_session_goes_straight_to_ejabberd/0]}.

%%%===================================================================
%%% Cases
%%%===================================================================
n_plus_1_sent_first_enters_ejabberd_after_n() ->
    %% Ensures rid 12 sent before rid 11 waits, and enters ejabberd only
    %% once 11 is inside its call (the bug: 12 parked behind an empty poll).
    seed(<<"s1">>, 10),
    P12 = send(<<"s1">>, 12),
    nothing_called(80),
    P11 = send(<<"s1">>, 11),
    {W11, <<"11">>} = called(),
    {W12, <<"12">>} = called(),
    answer(W11, <<"11">>), answer(W12, <<"12">>),
    ?assertEqual(?OK(<<"11">>), result(P11)),
    ?assertEqual(?OK(<<"12">>), result(P12)),
    ?assertEqual(1, stat(requests_reordered_total)),
    ?assertEqual(0, stat(requests_order_timeout_total)).

a_missing_predecessor_is_waited_for_then_skipped_and_runs_when_late() ->
    %% Ensures a rid whose predecessor never comes goes after order_timeout
    %% (as it would without mod_megaphone), and the predecessor, arriving
    %% later, goes at once instead of being taken for a stale rid.
    seed(<<"s2">>, 10),
    T0 = erlang:monotonic_time(millisecond),
    P12 = send(<<"s2">>, 12),
    {W12, <<"12">>} = called(),
    Waited = erlang:monotonic_time(millisecond) - T0,
    ?assert(Waited >= ?ORDER_TIMEOUT - 5),
    ?assert(Waited < ?ORDER_TIMEOUT + 2000), % a busy shared machine
    ?assertEqual(1, stat(requests_order_timeout_total)),
    P11 = send(<<"s2">>, 11),
    {W11, <<"11">>} = called(),
    answer(W11, <<"11">>), answer(W12, <<"12">>),
    ?assertEqual(?OK(<<"11">>), result(P11)),
    ?assertEqual(?OK(<<"12">>), result(P12)).

a_chain_waiting_below_an_expired_rid_goes_in_order() ->
    %% Ensures that when rid 13 times out while 12 waits too (11 lost),
    %% 12 enters before 13.
    seed(<<"s3">>, 10),
    P12 = send(<<"s3">>, 12),
    timer:sleep(20),
    P13 = send(<<"s3">>, 13),
    {W12, <<"12">>} = called(),
    {W13, <<"13">>} = called(),
    answer(W12, <<"12">>), answer(W13, <<"13">>),
    _ = result(P12), _ = result(P13).

a_predecessor_not_seen_inside_ejabberd_holds_its_successor_a_bounded_time() ->
    %% Ensures a successor waits for a predecessor that went to ejabberd
    %% longer than order_timeout (it is on its way: order is kept through a
    %% scheduler stall), but not forever when the sequencer cannot see that
    %% call (here the double blocks outside ejabberd_bosh's frames): 10
    %% order_timeouts (50 ms here), then it goes.
    persistent_term:put({mod_megaphone, config}, #{order_timeout => 50}),
    seed(<<"s9">>, 10),
    P11 = send(<<"s9">>, 11, <<" hide='1'">>),
    {W11, <<"11">>} = called(),
    T0 = erlang:monotonic_time(millisecond),
    P12 = send(<<"s9">>, 12),
    nothing_called(200),
    {W12, <<"12">>} = called(),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 450),
    answer(W11, <<"11">>), answer(W12, <<"12">>),
    ?assertEqual(?OK(<<"11">>), result(P11)),
    ?assertEqual(?OK(<<"12">>), result(P12)),
    ?assertEqual(1, stat(requests_order_timeout_total)).

a_copy_of_a_running_rid_joins_it_and_gets_its_answer() ->
    %% Ensures a second copy of a rid inside ejabberd never makes a second
    %% call (two live copies crash a 23.01 session): it gets the same answer.
    seed(<<"s4">>, 10),
    A = send(<<"s4">>, 11),
    {W, <<"11">>} = called(),
    B = send(<<"s4">>, 11),
    nothing_called(80),
    ?assertEqual(1, stat(requests_deduplicated_total)),
    answer(W, <<"11">>),
    ?assertEqual(?OK(<<"11">>), result(A)),
    ?assertEqual(?OK(<<"11">>), result(B)),
    ?assertEqual(1, stat(requests_total)).

a_rid_below_the_window_is_item_not_found_at_once() ->
    %% Ensures a rid that ejabberd has neither buffered nor running (it
    %% would hold it until the session ends) is answered item-not-found
    %% without a call, while the last two answered rids still reach
    %% ejabberd (which answers them from its buffer).
    seed(<<"s5">>, 10),
    [begin P = send(<<"s5">>, R), {W, _} = called(), answer(W, integer_to_binary(R)),
           _ = result(P) end || R <- [11, 12, 13]],
    Stale = send(<<"s5">>, 11),
    ?assertMatch({200, _, _, <<"<body type='terminate' condition='item-not-found' ",
                               _/binary>>}, result(Stale)),
    nothing_called(30),
    ?assertEqual(1, stat(requests_stale_total)),
    Buffered = send(<<"s5">>, 12),
    {W12, <<"12">>} = called(),
    answer(W12, <<"12">>),
    ?assertEqual(?OK(<<"12">>), result(Buffered)).

a_cancelled_waiting_request_leaves_without_calling_ejabberd() ->
    %% Ensures CANCEL of a request waiting for its predecessor ends it with
    %% no call, and does not hold up the rids after it.
    seed(<<"s6">>, 10),
    P12 = send(<<"s6">>, 12),
    wait_until(fun() -> element(4, mod_megaphone_sequencer:session_state(<<"s6">>)) == #{12 => waiting} end),
    P12 ! megaphone_cancel,
    ?assertEqual(cancelled, result(P12)),
    P11 = send(<<"s6">>, 11),
    {W11, <<"11">>} = called(),
    answer(W11, <<"11">>),
    _ = result(P11),
    P12b = send(<<"s6">>, 12),
    {W12, <<"12">>} = called(),
    answer(W12, <<"12">>),
    ?assertEqual(?OK(<<"12">>), result(P12b)),
    ?assertEqual(0, stat(requests_order_timeout_total)).

a_session_first_seen_late_starts_at_its_first_rid() ->
    %% Ensures a session not created through this module (no seed) is
    %% ordered from the first rid seen, and rids below it pass through.
    session(<<"s7">>),
    P20 = send(<<"s7">>, 20),
    {W20, <<"20">>} = called(),
    P22 = send(<<"s7">>, 22),
    P21 = send(<<"s7">>, 21),
    {W21, <<"21">>} = called(),
    {W22, <<"22">>} = called(),
    P19 = send(<<"s7">>, 19),
    {W19, <<"19">>} = called(),
    [answer(W, integer_to_binary(R)) || {W, R} <- [{W19, 19}, {W20, 20}, {W21, 21}, {W22, 22}]],
    [_ = result(P) || P <- [P19, P20, P21, P22]].

a_waiting_request_goes_on_when_the_shards_die() ->
    %% Ensures a request never waits forever for a go that a dead shard
    %% cannot send: it goes to ejabberd as it would without the sequencer.
    seed(<<"s10">>, 10),
    P12 = send(<<"s10">>, 12),
    wait_until(fun() -> element(4, mod_megaphone_sequencer:session_state(<<"s10">>)) == #{12 => waiting} end),
    [exit(whereis(Name), kill) || Name <- mod_megaphone_sequencer:shard_names()],
    {W12, <<"12">>} = called(),
    answer(W12, <<"12">>),
    ?assertEqual(?OK(<<"12">>), result(P12)).

a_request_of_an_unknown_session_goes_straight_to_ejabberd() ->
    %% Ensures an unknown sid is left to ejabberd (its item-not-found).
    P = send(<<"nope">>, 5),
    {W, <<"5">>} = called(),
    answer(W, <<"5">>),
    ?assertEqual(?OK(<<"5">>), result(P)).

%%%===================================================================
%%% Fixture
%%%===================================================================
setup() ->
    load(ejabberd_bosh,
         ["-module(ejabberd_bosh).",
          "-export([process_request/3]).",
          "process_request(Body, {_IP, _Port}, xml) ->"
          "    {match, [Rid]} = re:run(Body, \"rid='([0-9]+)'\", [{capture, all_but_first, binary}]),"
          "    case binary:match(Body, <<\"hide='1'\">>) of"
          "        nomatch -> mod_megaphone_fake_bosh ! {bosh_called, self(), Rid},"
          "                   receive {bosh_answer, Reply} -> Reply end;"
          "        _ -> mod_megaphone_fake_hide:wait(Rid)"
          "    end."]),
    %% blocks with no ejabberd_bosh frame on the stack (a tail call)
    load(mod_megaphone_fake_hide,
         ["-module(mod_megaphone_fake_hide).",
          "-export([wait/1]).",
          "wait(Rid) ->"
          "    mod_megaphone_fake_bosh ! {bosh_called, self(), Rid},"
          "    receive {bosh_answer, Reply} -> Reply end."]),
    load(mod_bosh,
         ["-module(mod_bosh).",
          "-export([find_session/1]).",
          "find_session(Sid) ->"
          "    case persistent_term:get({fake_session, Sid}, undefined) of"
          "        undefined -> error;"
          "        Pid -> {ok, Pid}"
          "    end."]),
    mod_megaphone_stats:new(),
    persistent_term:put({mod_megaphone, config}, #{order_timeout => ?ORDER_TIMEOUT}),
    [begin {ok, P} = mod_megaphone_sequencer:start_link(I), unlink(P), P end
     || I <- lists:seq(1, length(mod_megaphone_sequencer:shard_names()))].

cleanup(Shards) ->
    [begin
         Mon = monitor(process, P),
         exit(P, kill),
         receive {'DOWN', Mon, process, P, _} -> ok end
     end || P <- Shards],
    [persistent_term:erase(K) || {{fake_session, _} = K, _} <- persistent_term:get()],
    _ = persistent_term:erase({mod_megaphone, config}),
    _ = persistent_term:erase({mod_megaphone_sequencer, shards}),
    mod_megaphone_stats:delete(),
    try unregister(?REPORTER) catch error:badarg -> ok end, % not registered
    [begin code:purge(M), code:delete(M) end || M <- [ejabberd_bosh, mod_bosh, mod_megaphone_fake_hide]],
    receive_all().

load(Mod, Src) ->
    Forms = [begin
                 {ok, Tokens, _} = erl_scan:string(S),
                 {ok, Form} = erl_parse:parse_form(Tokens),
                 Form
             end || S <- Src],
    {ok, Mod, Bin} = compile:forms(Forms),
    {module, Mod} = code:load_binary(Mod, atom_to_list(Mod) ++ "_double.erl", Bin).

%% A stand-in BOSH session process for Sid, on this node.
session(Sid) ->
    Pid = spawn(fun() -> receive stop -> ok end end),
    persistent_term:put({fake_session, Sid}, Pid),
    Pid.

seed(Sid, Rid) ->
    mod_megaphone_sequencer:seed(Sid, session(Sid), Rid).

%% A worker's request, in its own process; result/1 collects its answer.
send(Sid, Rid) ->
    send(Sid, Rid, <<>>).

send(Sid, Rid, Attrs) ->
    Me = self(),
    %% eunit runs each case in its own process, not in the fixture's
    case whereis(?REPORTER) of
        Me -> ok;
        undefined -> register(?REPORTER, Me);
        _ -> unregister(?REPORTER), register(?REPORTER, Me)
    end,
    R = integer_to_binary(Rid),
    spawn(fun() ->
                  Body = <<"<body rid='", R/binary, "' sid='", Sid/binary, "'", Attrs/binary, "/>">>,
                  Me ! {result, self(),
                        mod_megaphone_sequencer:process(Body, {127, 0, 0, 1}, 5000, Sid, Rid)}
          end).

result(P) ->
    receive {result, P, R} -> R after 3000 -> error(no_result) end.

called() ->
    receive {bosh_called, W, Rid} -> {W, Rid} after 3000 -> error(ejabberd_not_called) end.

nothing_called(Ms) ->
    receive {bosh_called, _, Rid} -> error({called, Rid}) after Ms -> ok end.

answer(W, Rid) ->
    W ! {bosh_answer, ?OK(Rid)}.

stat(Name) -> mod_megaphone_test_util:stat(Name).

wait_until(Cond) -> mod_megaphone_test_util:wait_until(Cond, 100).

receive_all() ->
    receive _ -> receive_all() after 0 -> ok end.
