%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_gc_tests.erl
%%% Purpose : gc_heap_threshold: a worker collects the BOSH session
%%%           process and its c2s after answering, only above the
%%%           threshold, without a running ejabberd (stand-in processes).
%%%----------------------------------------------------------------------
-module(mod_megaphone_gc_tests).

-include_lib("eunit/include/eunit.hrl").

-define(THRESHOLD, 4096).

%% A process that did a burst of work and now idles on a heap full of
%% garbage (what a session process looks like after login).
idle_after_burst(Before) ->
    fun() ->
            Before(),
            _ = length(lists:seq(1, 50000)),
            receive stop -> ok end
    end.

bosh() ->
    spawn(idle_after_burst(fun() -> ok end)).

%% The c2s of ejabberd 23.01: a proc_lib process monitoring the BOSH one.
c2s(Bosh) ->
    proc_lib:spawn(idle_after_burst(fun() -> erlang:monitor(process, Bosh) end)).

heap(P) ->
    {total_heap_size, W} = erlang:process_info(P, total_heap_size),
    W.

%% Waits for P's heap to drop to at most Words (the GC is asynchronous).
wait_heap_below(P, Words) ->
    wait_heap_below(P, Words, 100).
wait_heap_below(P, Words, 0) ->
    heap(P) =< Words;
wait_heap_below(P, Words, N) ->
    case heap(P) =< Words of
        true -> true;
        false -> timer:sleep(10), wait_heap_below(P, Words, N - 1)
    end.

wait_monitored(Bosh, N) ->
    case erlang:process_info(Bosh, monitored_by) of
        {monitored_by, Ms} when length(Ms) >= N -> ok;
        _ -> timer:sleep(5), wait_monitored(Bosh, N)
    end.

stop(Ps) ->
    [P ! stop || P <- Ps],
    ok.

collects_the_bosh_process_and_its_c2s_above_the_threshold_test() ->
    %% Ensures both session processes, idle on garbage above the
    %% threshold, are found from the BOSH pid and collected.
    Bosh = bosh(),
    C2s = c2s(Bosh),
    wait_monitored(Bosh, 1),
    timer:sleep(50), % both idle now
    ?assert(heap(Bosh) > ?THRESHOLD),
    ?assert(heap(C2s) > ?THRESHOLD),
    ?assertEqual([Bosh, C2s], mod_megaphone_worker:session_processes(Bosh)),
    ?assertEqual(2, mod_megaphone_worker:collect_session(Bosh, ?THRESHOLD)),
    ?assert(wait_heap_below(Bosh, 1000)),
    ?assert(wait_heap_below(C2s, 1000)),
    %% Collected, they are below the threshold: the next answer leaves them alone.
    ?assertEqual(0, mod_megaphone_worker:collect_session(Bosh, ?THRESHOLD)),
    stop([Bosh, C2s]).

a_collected_process_ends_near_its_live_size_test() ->
    %% Ensures a collection leaves the heap near the live data, not at the
    %% size one GC picks from the old heap: an idle process with 400 live
    %% list cells after a burst (heap 4,184 words on OTP 25) ends smaller
    %% after collect_session/2 and the shard's collect_again/1 than after a
    %% single GC (987 against 2,586 words on OTP 25).
    Idle = fun() ->
                   L = lists:seq(1, 400),
                   _ = [lists:seq(1, 200) || _ <- lists:seq(1, 300)],
                   receive stop -> length(L) end
           end,
    Collected = spawn(Idle),
    Once = spawn(Idle),
    timer:sleep(50),
    %% the heap a burst leaves differs between OTP releases: collect it
    %% whatever its size
    Threshold = heap(Collected) - 1,
    erlang:garbage_collect(Once),
    ?assertEqual(1, mod_megaphone_worker:collect_session(Collected, Threshold)),
    %% this process stands for the shard that asked
    receive {garbage_collect, {megaphone_gc, Collected}, _} -> ok after 2000 -> error(no_gc) end,
    mod_megaphone_worker:collect_again(Collected),
    receive {garbage_collect, megaphone_gc_done, _} -> ok after 2000 -> error(no_gc) end,
    ?assert(heap(Collected) < heap(Once)),
    stop([Collected, Once]).

leaves_processes_below_the_threshold_alone_test() ->
    %% Ensures a heap under the threshold is not collected.
    Bosh = bosh(),
    C2s = c2s(Bosh),
    wait_monitored(Bosh, 1),
    timer:sleep(50),
    Big = max(heap(Bosh), heap(C2s)),
    ?assertEqual(0, mod_megaphone_worker:collect_session(Bosh, Big)),
    ?assertEqual(Big, max(heap(Bosh), heap(C2s))),
    stop([Bosh, C2s]).

a_waiting_worker_is_not_taken_for_the_c2s_test() ->
    %% Ensures a plain process monitoring the session (a worker blocked in
    %% its call) is neither reported nor collected; only proc_lib ones are.
    Bosh = bosh(),
    Waiter = spawn(idle_after_burst(fun() -> erlang:monitor(process, Bosh) end)),
    wait_monitored(Bosh, 1),
    timer:sleep(50),
    ?assertEqual([Bosh], mod_megaphone_worker:session_processes(Bosh)),
    Before = heap(Waiter),
    ?assertEqual(1, mod_megaphone_worker:collect_session(Bosh, ?THRESHOLD)),
    timer:sleep(50),
    ?assertEqual(Before, heap(Waiter)),
    stop([Bosh, Waiter]).

a_dead_session_is_nothing_to_collect_test() ->
    %% Ensures a session process that ended meanwhile is no error.
    Bosh = spawn(fun() -> ok end),
    Ref = erlang:monitor(process, Bosh),
    receive {'DOWN', Ref, process, Bosh, _} -> ok end,
    ?assertEqual([], mod_megaphone_worker:session_processes(Bosh)),
    ?assertEqual(0, mod_megaphone_worker:collect_session(Bosh, ?THRESHOLD)).

off_when_the_module_does_not_run_test() ->
    %% Ensures a worker that outlives the module (no config) collects nothing.
    ?assertEqual(0, mod_megaphone:gc_heap_threshold()).

option_is_a_non_negative_word_count_test() ->
    %% Ensures the option's default and its econf validation (0 allowed: off).
    ?assertEqual(4096, proplists:get_value(gc_heap_threshold,
                                           mod_megaphone:mod_options(<<"localhost">>))),
    V = mod_megaphone:mod_opt_type(gc_heap_threshold),
    ?assertEqual(0, V(0)),
    ?assertEqual(8192, V(8192)),
    ?assertException(error, _, V(-1)),
    ?assertException(error, _, V(<<"big">>)).
