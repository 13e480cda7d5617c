%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_stats_tests.erl
%%% Purpose : The counters behind ejabberdctl megaphone_stats, and the
%%%           command's definition, without a running ejabberd.
%%%----------------------------------------------------------------------
-module(mod_megaphone_stats_tests).

-include_lib("eunit/include/eunit.hrl").
-include("ejabberd_commands.hrl").

-define(NAMES, [<<"links_active">>, <<"links_accepted_total">>,
                <<"links_refused_total">>, <<"requests_total">>,
                <<"requests_deduplicated_total">>, <<"requests_inflight">>,
                <<"requests_rejected_total">>, <<"cancels_total">>,
                <<"protocol_errors_total">>, <<"gc_collections_total">>,
                <<"requests_reordered_total">>, <<"requests_order_timeout_total">>,
                <<"requests_stale_total">>, <<"requests_host_unknown_total">>,
                <<"requests_forwarded_total">>, <<"responses_too_large_total">>,
                <<"links_refused_pending_total">>, <<"responses_answered_total">>,
                <<"responses_failed_total">>, <<"streams_active">>,
                <<"streams_opened_total">>, <<"streams_refused_draining_total">>,
                <<"streams_refused_max_streams_total">>, <<"streams_failed_total">>,
                <<"streams_closed_client_total">>, <<"streams_closed_server_total">>,
                <<"streams_closed_link_lost_total">>, <<"streams_closed_credit_total">>,
                <<"streams_closed_too_big_total">>, <<"streams_closed_error_total">>]).

stats_test_() ->
    {foreach,
     fun() -> mod_megaphone_stats:new() end,
     fun(_) -> mod_megaphone_stats:delete() end,
     [fun fresh_counters_list_every_stat_at_zero/0,
      fun each_counter_counts_only_its_own_events/0,
      fun links_active_goes_up_and_down/0,
      fun streams_active_goes_up_and_down_by_add/0,
      fun updates_without_a_running_module_are_ignored/0,
      fun requests_inflight_is_the_number_of_registered_workers/0]}.

fresh_counters_list_every_stat_at_zero() ->
    %% Ensures get/0 lists the documented stats, in order, all zero.
    ?assertEqual([{N, 0} || N <- ?NAMES], mod_megaphone_stats:get()),
    ?assertEqual(?NAMES, [atom_to_binary(N, utf8) || N <- mod_megaphone_stats:names()]).

each_counter_counts_only_its_own_events() ->
    %% Ensures incr/1 moves one counter by one and leaves the others.
    ok = mod_megaphone_stats:incr(requests_total),
    ok = mod_megaphone_stats:incr(requests_total),
    ok = mod_megaphone_stats:incr(cancels_total),
    Stats = mod_megaphone_stats:get(),
    ?assertEqual(2, proplists:get_value(<<"requests_total">>, Stats)),
    ?assertEqual(1, proplists:get_value(<<"cancels_total">>, Stats)),
    ?assertEqual(3, lists:sum([V || {_, V} <- Stats])).

streams_active_goes_up_and_down_by_add() ->
    %% Ensures the streams gauge moves by add/2 both ways, alone.
    ok = mod_megaphone_stats:add(streams_active, 1),
    ok = mod_megaphone_stats:add(streams_active, 1),
    ok = mod_megaphone_stats:add(streams_active, -1),
    Stats = mod_megaphone_stats:get(),
    ?assertEqual(1, proplists:get_value(<<"streams_active">>, Stats)),
    ?assertEqual(1, lists:sum([V || {_, V} <- Stats])).

links_active_goes_up_and_down() ->
    %% Ensures the links_active gauge counts the links registered with the
    %% registry while they live, also one killed (no terminate/2 of its
    %% own runs then) or registered twice.
    {ok, Pid} = mod_megaphone_registry:start_link(),
    unlink(Pid),
    [L1, L2] = [spawn(fun() -> receive stop -> ok end end) || _ <- [1, 2]],
    ok = mod_megaphone_registry:link_up(L1),
    ok = mod_megaphone_registry:link_up(L2),
    ok = mod_megaphone_registry:link_up(L2),
    ?assertEqual(2, proplists:get_value(<<"links_active">>, mod_megaphone_stats:get())),
    exit(L1, kill),
    mod_megaphone_test_util:wait_until(fun() -> mod_megaphone_stats:value(links_active) == 1 end),
    L2 ! stop,
    mod_megaphone_test_util:wait_until(fun() -> mod_megaphone_stats:value(links_active) == 0 end),
    stop(Pid).

updates_without_a_running_module_are_ignored() ->
    %% Ensures a worker that outlives the module (no counters) neither
    %% crashes nor counts, and get/0 then reads zeros.
    ok = mod_megaphone_stats:delete(),
    ok = mod_megaphone_stats:incr(requests_total),
    ?assertEqual([{N, 0} || N <- ?NAMES], mod_megaphone_stats:get()).

requests_inflight_is_the_number_of_registered_workers() ->
    %% Ensures requests_inflight reads the registry: one row, one request.
    {ok, Pid} = mod_megaphone_registry:start_link(),
    unlink(Pid),
    true = mod_megaphone_registry:insert_new({<<"s">>, 1}, self(), r1),
    true = mod_megaphone_registry:insert_new({new, make_ref()}, self(), r2),
    ?assertEqual(2, proplists:get_value(<<"requests_inflight">>, mod_megaphone_stats:get())),
    stop(Pid),
    ?assertEqual(0, proplists:get_value(<<"requests_inflight">>, mod_megaphone_stats:get())).

%%%===================================================================
%%% The ejabberdctl command
%%%===================================================================
megaphone_stats_command_test() ->
    %% Ensures the command takes no argument, calls an exported 0-arity
    %% function, and declares a list of {name, value} tuples, which
    %% ejabberdctl prints as one "name<TAB>value" line each.
    [#ejabberd_commands{name = megaphone_stats, args = [], module = M,
                        function = F, result = Result}] =
        mod_megaphone:get_commands_spec(),
    {module, M} = code:ensure_loaded(M),
    ?assert(erlang:function_exported(M, F, 0)),
    ?assertEqual({stats, {list, {stat, {tuple, [{name, string}, {value, integer}]}}}},
                 Result).

stop(Pid) ->
    Mon = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Mon, process, Pid, _} -> ok end.
