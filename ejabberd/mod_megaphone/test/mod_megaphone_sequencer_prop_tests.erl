%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sequencer_prop_tests.erl
%%% Purpose : Property-based tests (PropEr) of the sequencer's order and
%%%           de-duplication state, against the real shards and a stand-in
%%%           BOSH session that checks what ejabberd relies on.
%%%
%%% A case is a random list of steps for one session: a copy of a rid
%%% arrives (from one of several links, some of which crash), a copy is
%%% cancelled, the session answers one of the requests it holds, time
%%% passes. At the end the session ends. Invariants:
%%%   * each rid is inside the session at most once at a time;
%%%   * every copy whose link is alive and did not cancel gets exactly one
%%%     answer, a cancelled one at most one, and an answer only ever goes
%%%     to copies of the rid it was given for (no payload twice);
%%%   * the session's state stays bounded (waiting and answered rids at
%%%     most its window, skipped rids at most 8) and is swept when the
%%%     session ends (no row, no call counted in flight);
%%%   * without time passing, the rids of a client that keeps to its
%%%     window enter the session in rid order, whatever order they
%%%     arrive in.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sequencer_prop_tests).

-include_lib("proper/include/proper.hrl").
-include("mod_megaphone_bosh.hrl").

-export([prop_hostile/0, prop_ordered/0,
         hostile_interleavings_keep_every_invariant_test_/0,
         rids_within_the_window_enter_in_order_test_/0]).

-define(CREATION, 1000).
-define(LINKS, 3).

%%%===================================================================
%%% eunit entry points
%%%===================================================================
hostile_interleavings_keep_every_invariant_test_() ->
    {timeout, 300, fun() -> check(prop_hostile(), 100) end}.

rids_within_the_window_enter_in_order_test_() ->
    {timeout, 300, fun() -> check(prop_ordered(), 100) end}.

check(Prop, N) ->
    Shards = setup(),
    try
        true = proper:quickcheck(Prop, [{numtests, N}, {to_file, user}, noshrink])
    after
        cleanup(Shards)
    end.

%%%===================================================================
%%% Properties
%%%===================================================================
%% Any rids (far above, far below, inside the window), duplicates from
%% several links, cancels, links that crash, answers, order timeouts.
prop_hostile() ->
    ?FORALL({Window, Steps}, {range(1, 4), list(hostile_step())},
            run(Window, 20, Steps, fun(_, _) -> true end)).

hostile_step() ->
    frequency([{6, {send, rid_near(), range(1, ?LINKS)}},
               {1, {send, oneof([?CREATION + 1000000000, (1 bsl 53) - 1, 0, 1, ?CREATION - 1]),
                    range(1, ?LINKS)}},
               {2, {cancel, range(1, 1000)}},
               {3, {answer, range(1, 1000)}},
               {1, {crash_link, range(1, ?LINKS)}},
               {1, {wait, range(1, 30)}}]).

rid_near() ->
    ?LET(D, range(-6, 8), ?CREATION + D).

%% A client that keeps to its window (it sends rid R only when every rid up
%% to R - window was answered), sending each rid once or twice in any
%% order and the answers coming in any order; no order_timeout passes.
prop_ordered() ->
    ?FORALL({Window, Perm, AnswerOrder}, {range(1, 4), vector(6, range(0, 5)), list(range(1, 100))},
            begin
                Steps = ordered_steps(Window, Perm, AnswerOrder),
                run(Window, 60000, Steps, fun in_rid_order/2)
            end).

%% Rounds of Window rids (each round sent in a permuted order, some
%% twice), then the session answers them in a random order.
ordered_steps(Window, Perm, AnswerOrder) ->
    Rounds = 4,
    lists:append(
      [begin
           First = ?CREATION + 1 + (Round - 1) * Window,
           Rids = lists:seq(First, First + Window - 1),
           Sends = [{send, R, 1 + (R rem ?LINKS)} || R <- permute(Rids, Perm)],
           Copies = [{send, R, 1 + ((R + 1) rem ?LINKS)} || R <- Rids, R rem 3 == 0],
           Answers = [{answer, A} || A <- take_cycle(AnswerOrder, Window)],
           Sends ++ Copies ++ [{settle}] ++ Answers ++ [{settle}]
       end || Round <- lists:seq(1, Rounds)]).

permute(List, Perm) ->
    Keyed = lists:zip([lists:nth(1 + (I - 1) rem length(Perm), Perm) || I <- lists:seq(1, length(List))],
                      List),
    [R || {_, R} <- lists:sort(fun({K1, _}, {K2, _}) -> K1 >= K2 end, Keyed)].

take_cycle([], N) -> lists:duplicate(N, 1);
take_cycle(L, N) -> [lists:nth(1 + (I - 1) rem length(L), L) || I <- lists:seq(1, N)].

%% First entries of rids inside the window, in the order they entered.
in_rid_order(Entered, _Window) ->
    First = first_entries(Entered),
    First =:= lists:sort(First).

first_entries(Entered) ->
    {Firsts, _} = lists:foldl(fun(R, {Acc, Seen}) ->
                                      case sets:is_element(R, Seen) of
                                          true -> {Acc, Seen};
                                          false -> {[R | Acc], sets:add_element(R, Seen)}
                                      end
                              end, {[], sets:new()}, Entered),
    lists:reverse(Firsts).

%%%===================================================================
%%% Running a case
%%%===================================================================
-record(run, {sid, session, window, links, copies = #{}, cancelled = #{},
              held = [], entered = [], violations = [], answers = #{},
              payload = 0, given = #{}}).

run(Window, OrderTimeout, Steps, OrderCheck) ->
    persistent_term:put({mod_megaphone, config}, #{order_timeout => OrderTimeout}),
    Sid = <<"p", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Me = self(),
    Session = spawn(fun() -> session(Me, []) end),
    mod_megaphone_fake_session:register_session(Sid, Session),
    ok = mod_megaphone_sequencer:seed(Sid, Session, ?CREATION, Window),
    Links = list_to_tuple([spawn_link_proxy(Me) || _ <- lists:seq(1, ?LINKS)]),
    R0 = #run{sid = Sid, session = Session, window = Window, links = Links},
    R1 = lists:foldl(fun step/2, R0, Steps),
    Bounded = bounded(R1),
    R2 = settle(R1),
    %% the session ends: everything still in flight is answered
    Session ! stop,
    R3 = gather(R2, 50),
    Swept = wait(fun() -> mod_megaphone_sequencer:session_state(Sid) == none end),
    [begin unlink(L), exit(L, kill) end || L <- tuple_to_list(Links)],
    Entered = lists:reverse(R3#run.entered),
    Answered = answered_once(R3),
    Ok = R3#run.violations == [] andalso Answered andalso Bounded andalso Swept
        andalso OrderCheck(Entered, Window),
    ?WHENFAIL(io:format(user, "window ~p~nentered ~p~nviolations ~p~nanswered once ~p, "
                        "bounded ~p, swept ~p~ncopies ~p~nanswers ~p~n",
                        [Window, Entered, R3#run.violations, Answered, Bounded, Swept,
                         R3#run.copies, R3#run.answers]),
              Ok).

step({send, Rid, Link}, #run{sid = Sid, links = Links, copies = Copies} = R) ->
    Proxy = element(Link, Links),
    Target = {Proxy, erlang:unique_integer([positive]), make_ref()},
    Body = <<"<body rid='", (integer_to_binary(Rid))/binary, "' sid='", Sid/binary,
             "' xmlns='http://jabber.org/protocol/httpbind'/>">>,
    case mod_megaphone_sequencer:submit(Body, Target) of
        {queued, Ticket} ->
            drain(R#run{copies = Copies#{Target => {Rid, Ticket}}});
        {answer, _} ->
            R % not a request of this session (rid 0 is one; a bad rid is 400)
    end;
step({cancel, N}, #run{copies = Copies, cancelled = Cancelled} = R) when map_size(Copies) > 0 ->
    Keys = lists:sort(maps:keys(Copies)),
    Target = lists:nth(1 + N rem length(Keys), Keys),
    {_, Ticket} = maps:get(Target, Copies),
    mod_megaphone_sequencer:cancel(Ticket, Target),
    drain(R#run{cancelled = Cancelled#{Target => true}});
step({answer, N}, #run{held = Held} = R0) ->
    R = drain(R0),
    case R#run.held of
        [] -> R;
        _ ->
            {Rid, From} = lists:nth(1 + N rem length(R#run.held), R#run.held),
            P = R#run.payload + 1,
            mod_megaphone_fake_session:reply(From, #body{attrs = [{<<"payload">>, integer_to_binary(P)}]}),
            _ = Held,
            drain(R#run{held = lists:keydelete(Rid, 1, R#run.held), payload = P,
                        given = (R#run.given)#{P => Rid}})
    end;
step({crash_link, Link}, #run{links = Links} = R) ->
    Old = element(Link, Links),
    unlink(Old),
    exit(Old, kill),
    drain(R#run{links = setelement(Link, Links, spawn_link_proxy(self()))});
step({wait, Ms}, R) ->
    timer:sleep(Ms),
    drain(R);
step({settle}, R) ->
    settle(R);
step(_, R) ->
    drain(R).

%% Waits until the shard has handled everything sent so far and the
%% session has reported what it took.
settle(#run{sid = Sid} = R) ->
    _ = mod_megaphone_sequencer:session_state(Sid),
    gather(R, 5).

drain(R) -> gather(R, 0).

gather(R, Timeout) ->
    receive
        {entered, Rid, From} ->
            R1 = case lists:keymember(Rid, 1, R#run.held) of
                     true -> R#run{violations = [{twice_inside, Rid} | R#run.violations]};
                     false -> R
                 end,
            gather(R1#run{held = [{Rid, From} | R1#run.held],
                           entered = [Rid | R1#run.entered]}, Timeout);
        {answer_via, Target, Body} ->
            gather(R#run{answers = maps:update_with(Target, fun(L) -> [Body | L] end, [Body],
                                                     R#run.answers)}, Timeout)
    after Timeout ->
            R
    end.

%% Every copy whose link lives and that was not cancelled: one answer;
%% a cancelled one: at most one; a payload only to copies of its rid.
answered_once(#run{copies = Copies, cancelled = Cancelled, answers = Answers, given = Given}) ->
    lists:all(
      fun({{Proxy, _, _} = Target, {Rid, _}}) ->
              Got = maps:get(Target, Answers, []),
              Right = lists:all(fun(B) -> payload_of(B, Given) == Rid orelse payload_of(B, Given) == none end, Got),
              Count = length(Got),
              Right andalso
                  case {is_process_alive(Proxy), maps:is_key(Target, Cancelled)} of
                      {true, false} -> Count == 1;
                      _ -> Count =< 1
                  end
      end, maps:to_list(Copies)).

payload_of(#body{attrs = [{<<"payload">>, P}]}, Given) -> maps:get(binary_to_integer(P), Given);
payload_of(_, _) -> none.

bounded(#run{sid = Sid, window = Window}) ->
    case mod_megaphone_sequencer:session_state(Sid) of
        none -> true;
        {_Cont, Answered, Skipped, Calls} ->
            Waiting = length([W || W <- maps:values(Calls), W == waiting]),
            Waiting =< Window andalso length(Answered) =< Window andalso length(Skipped) =< 8
    end.

wait(Cond) -> wait(Cond, 200).
wait(Cond, 0) -> Cond();
wait(Cond, N) ->
    case Cond() of
        true -> true;
        false -> timer:sleep(10), wait(Cond, N - 1)
    end.

%%%===================================================================
%%% Stand-ins
%%%===================================================================
%% A BOSH session: tells the test each request it takes; answers when the
%% test replies to From itself.
session(Test, _) ->
    receive
        {'$gen_sync_event', From, #body{} = Body} ->
            Test ! {entered, mod_megaphone_fake_session:rid(Body), From},
            session(Test, []);
        stop ->
            ok
    end.

%% A link: passes every answer it gets to the test.
spawn_link_proxy(Test) ->
    spawn_link(fun() -> proxy(Test) end).

proxy(Test) ->
    receive
        {megaphone_answer, Id, Ref, Body} ->
            Test ! {answer_via, {self(), Id, Ref}, Body},
            proxy(Test)
    end.

setup() ->
    mod_megaphone_fake_session:load_mod_bosh(),
    mod_megaphone_stats:new(),
    mod_megaphone_test_util:start_shards().

cleanup(Shards) ->
    mod_megaphone_test_util:kill(Shards),
    mod_megaphone_fake_session:unload(),
    _ = persistent_term:erase({mod_megaphone, config}),
    mod_megaphone_stats:delete().
