%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_prometheus_tests.erl
%%% Purpose : The Prometheus text of mod_megaphone_prometheus, the HTTP
%%%           answers of its request handler, and the cached session pass
%%%           of mod_megaphone_metrics, without a running ejabberd.
%%%----------------------------------------------------------------------
-module(mod_megaphone_prometheus_tests).

-include_lib("eunit/include/eunit.hrl").
-include("ejabberd_http.hrl").

-define(CONFIG_KEY, {mod_megaphone, config}).

%% A function, not a macro: newer OTP releases (Debian trixie's) warn, an error here, when a map literal is
%% updated in place.
sample() ->
    #{bosh_sessions => 3, bosh_memory_bytes => 30000,
      c2s_sessions => 2, c2s_memory_bytes => 40000,
      requests_inflight => 4, duration_seconds => 0.25,
      age_seconds => 1.5}.

%%%===================================================================
%%% The text format
%%%===================================================================
help_and_type_come_before_the_samples_of_a_family_test() ->
    %% Ensures the exposition shape: HELP, TYPE, then one line per sample.
    Text = text([{<<"m_total">>, counter, <<"Things.">>,
                  [{[], 7}, {[{<<"k">>, <<"v">>}], 8}]}]),
    ?assertEqual(<<"# HELP m_total Things.\n# TYPE m_total counter\n"
                   "m_total 7\nm_total{k=\"v\"} 8\n">>, Text).

help_escapes_backslash_and_line_feed_test() ->
    %% Ensures a HELP text cannot break the line structure.
    Text = text([{<<"m">>, gauge, <<"a\\b\nc \"q\"">>, [{[], 1}]}]),
    ?assertMatch([<<"# HELP m a\\\\b\\nc \"q\"">> | _], lines(Text)).

label_values_escape_backslash_quote_and_line_feed_test() ->
    %% Ensures a label value is one quoted string whatever it holds.
    Text = text([{<<"m">>, gauge, <<"h">>,
                  [{[{<<"a">>, <<"x\"y\\z\nw">>}, {<<"b">>, <<"2">>}], 1}]}]),
    ?assertEqual(<<"m{a=\"x\\\"y\\\\z\\nw\",b=\"2\"} 1">>, lists:last(lines(Text))).

floats_are_plain_decimals_test() ->
    %% Ensures floats use Prometheus' float syntax (no Erlang ~p output).
    Text = text([{<<"m">>, gauge, <<"h">>, [{[], 0.25}, {[], 1.0e-6}]}]),
    [_, _, A, B] = lines(Text),
    ?assertEqual(<<"m 0.25">>, A),
    ?assertEqual(0.000001, binary_to_float(lists:last(binary:split(B, <<" ">>)))).

a_family_without_samples_is_left_out_test() ->
    %% Ensures no HELP/TYPE lines without a sample (a backend without tables).
    ?assertEqual(<<>>, text([{<<"m">>, gauge, <<"h">>, []}])).

%%%===================================================================
%%% The metric families
%%%===================================================================
every_counter_of_mod_megaphone_stats_is_exposed_test() ->
    %% Ensures each stat reaches the scrape (distinct values per stat;
    %% links_refused_total is split into reason="handshake"/"pending").
    Names = mod_megaphone_stats:names(),
    Stats = [{atom_to_binary(N, utf8), case N of
                                           links_refused_total -> 100000;
                                           _ -> 1000 + I
                                       end} || {I, N} <- lists:enumerate(Names)],
    Values = [V || {_, _, _, Samples} <- mod_megaphone_prometheus:families(Stats, sample()),
                   {_, V} <- Samples],
    Refused = proplists:get_value(<<"links_refused_total">>, Stats),
    Pending = proplists:get_value(<<"links_refused_pending_total">>, Stats),
    Expected = [V || {N, V} <- Stats, N /= <<"links_refused_total">>],
    ?assertEqual([], Expected -- Values),
    ?assert(lists:member(Refused - Pending, Values)).

names_follow_prometheus_conventions_test() ->
    %% Ensures the prefix, unique names, _total only on counters, help on all.
    Families = mod_megaphone_prometheus:families(stats(), sample()),
    Names = [N || {N, _, _, _} <- Families],
    ?assertEqual(length(Names), length(lists:usort(Names))),
    lists:foreach(
      fun({Name, Type, Help, _}) ->
              ?assertMatch(<<"megaphone_ejabberd_", _/binary>>, Name),
              ?assertMatch({match, _}, re:run(Name, "^[a-z_]+$")),
              ?assertEqual(Type == counter, binary:longest_common_suffix([Name, <<"_total">>]) == 6),
              ?assert(byte_size(Help) > 10)
      end, Families).

refused_handshakes_are_refused_minus_pending_test() ->
    %% Ensures the two reasons add up to links_refused_total.
    Stats = [{<<"links_refused_total">>, 7}, {<<"links_refused_pending_total">>, 3}],
    Text = text(mod_megaphone_prometheus:families(Stats, sample())),
    ?assert(lists:member(<<"megaphone_ejabberd_links_refused_total{reason=\"handshake\"} 4">>, lines(Text))),
    ?assert(lists:member(<<"megaphone_ejabberd_links_refused_total{reason=\"pending\"} 3">>, lines(Text))).

sampled_values_are_exposed_with_their_kind_test() ->
    %% Ensures sessions and process memory per kind, and the sample's age.
    Lines = lines(text(mod_megaphone_prometheus:families(stats(), sample()))),
    [?assert(lists:member(L, Lines)) ||
        L <- [<<"megaphone_ejabberd_sessions{kind=\"bosh\"} 3">>,
              <<"megaphone_ejabberd_sessions{kind=\"c2s\"} 2">>,
              <<"megaphone_ejabberd_process_memory_bytes{kind=\"bosh\"} 30000">>,
              <<"megaphone_ejabberd_process_memory_bytes{kind=\"c2s\"} 40000">>,
              <<"megaphone_ejabberd_requests_inflight 4">>,
              <<"megaphone_ejabberd_sample_age_seconds 1.5">>]].

websocket_streams_are_a_gauge_and_opens_and_closes_by_label_test() ->
    %% Ensures the stream stats reach the scrape under their result and
    %% reason labels (each stat a value of its own).
    Stats = [{<<"streams_active">>, 5}, {<<"streams_opened_total">>, 11},
             {<<"streams_refused_draining_total">>, 12},
             {<<"streams_refused_max_streams_total">>, 13}, {<<"streams_failed_total">>, 14},
             {<<"streams_closed_client_total">>, 21}, {<<"streams_closed_server_total">>, 22},
             {<<"streams_closed_link_lost_total">>, 23}, {<<"streams_closed_credit_total">>, 24},
             {<<"streams_closed_too_big_total">>, 25}, {<<"streams_closed_error_total">>, 26}],
    Lines = lines(text(mod_megaphone_prometheus:families(Stats, sample()))),
    [?assert(lists:member(L, Lines)) ||
        L <- [<<"megaphone_ejabberd_streams 5">>,
              <<"megaphone_ejabberd_stream_opens_total{result=\"opened\"} 11">>,
              <<"megaphone_ejabberd_stream_opens_total{result=\"draining\"} 12">>,
              <<"megaphone_ejabberd_stream_opens_total{result=\"max_streams\"} 13">>,
              <<"megaphone_ejabberd_stream_opens_total{result=\"failed\"} 14">>,
              <<"megaphone_ejabberd_stream_closes_total{reason=\"client\"} 21">>,
              <<"megaphone_ejabberd_stream_closes_total{reason=\"server\"} 22">>,
              <<"megaphone_ejabberd_stream_closes_total{reason=\"link_lost\"} 23">>,
              <<"megaphone_ejabberd_stream_closes_total{reason=\"credit\"} 24">>,
              <<"megaphone_ejabberd_stream_closes_total{reason=\"too_big\"} 25">>,
              <<"megaphone_ejabberd_stream_closes_total{reason=\"error\"} 26">>]].

unknown_sampled_values_are_left_out_not_zero_test() ->
    %% Ensures a backend without the session tables shows no sessions
    %% rather than a false 0.
    Base = sample(),
    Sample = Base#{bosh_sessions := undefined, bosh_memory_bytes := undefined,
                   c2s_sessions := undefined, c2s_memory_bytes := undefined},
    Text = text(mod_megaphone_prometheus:families(stats(), Sample)),
    ?assertEqual(nomatch, binary:match(Text, <<"megaphone_ejabberd_sessions">>)),
    ?assertEqual(nomatch, binary:match(Text, <<"megaphone_ejabberd_process_memory_bytes">>)).

%%%===================================================================
%%% The request handler
%%%===================================================================
handler_test_() ->
    {foreach,
     fun() ->
             mod_megaphone_stats:new(),
             persistent_term:put(?CONFIG_KEY, #{metrics_access => all, metrics_cache_time => 0}),
             {ok, Pid} = mod_megaphone_metrics:start_link(),
             unlink(Pid),
             Pid
     end,
     fun(Pid) ->
             mod_megaphone_test_util:kill([Pid]), % dead before the next start_link
             persistent_term:erase(?CONFIG_KEY),
             mod_megaphone_stats:delete()
     end,
     [fun get_answers_the_text_with_the_prometheus_content_type/0,
      fun head_answers_the_headers_without_a_body/0,
      fun other_methods_get_405_with_allow/0,
      fun a_path_below_the_handler_gets_404/0,
      fun an_address_the_access_rule_denies_gets_403/0,
      fun without_the_module_the_answer_is_503/0]}.

get_answers_the_text_with_the_prometheus_content_type() ->
    %% Ensures GET gives 200, the 0.0.4 text type, and the counters as counted.
    ok = mod_megaphone_stats:incr(links_accepted_total),
    {200, Headers, Body} = mod_megaphone_prometheus:process([], request('GET')),
    ?assertEqual(<<"text/plain; version=0.0.4; charset=utf-8">>,
                 proplists:get_value(<<"Content-Type">>, Headers)),
    ?assert(lists:member(<<"megaphone_ejabberd_links_accepted_total 1">>,
                         lines(iolist_to_binary(Body)))).

head_answers_the_headers_without_a_body() ->
    %% Ensures HEAD is answered like GET, without the body.
    ?assertMatch({200, [{<<"Content-Type">>, <<"text/plain; version=0.0.4", _/binary>>}], <<>>},
                 mod_megaphone_prometheus:process([], request('HEAD'))).

other_methods_get_405_with_allow() ->
    %% Ensures only GET and HEAD read the metrics.
    [begin
         {405, Headers, Body} = mod_megaphone_prometheus:process([], request(M)),
         ?assertEqual(<<"GET, HEAD">>, proplists:get_value(<<"Allow">>, Headers)),
         ?assertMatch(<<"text/plain", _/binary>>, proplists:get_value(<<"Content-Type">>, Headers)),
         ?assertMatch(<<"method not allowed", _/binary>>, iolist_to_binary(Body))
     end || M <- ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE']].

a_path_below_the_handler_gets_404() ->
    %% Ensures /megaphone/metrics/anything is not the metrics.
    ?assertMatch({404, [{<<"Content-Type">>, <<"text/plain", _/binary>>}], _},
                 mod_megaphone_prometheus:process([<<"x">>], request('GET'))).

an_address_the_access_rule_denies_gets_403() ->
    %% Ensures metrics_access is checked before anything is read.
    persistent_term:put(?CONFIG_KEY, #{metrics_access => none, metrics_cache_time => 0}),
    {403, _, Body} = mod_megaphone_prometheus:process([], request('GET')),
    ?assertEqual(nomatch, binary:match(iolist_to_binary(Body), <<"megaphone_ejabberd">>)).

without_the_module_the_answer_is_503() ->
    %% Ensures a node without a running mod_megaphone answers one line of text.
    persistent_term:erase(?CONFIG_KEY),
    {503, [{<<"Content-Type">>, <<"text/plain; charset=utf-8">>}], Body} =
        mod_megaphone_prometheus:process([], request('GET')),
    ?assertMatch(<<"mod_megaphone is not running", _/binary>>, iolist_to_binary(Body)).

%%%===================================================================
%%% The session pass and its cache
%%%===================================================================
take_sample_counts_local_live_processes_and_their_memory_test() ->
    %% Ensures the pass counts each live local process once, with its
    %% memory, skips rows of ended processes, and sums request copies.
    Procs = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 3)],
    Dead = spawn(fun() -> ok end),
    wait_dead(Dead),
    %% keyed like ejabberd's mnesia tables: the record's first field
    Bosh = ets:new(t_bosh, [set, {keypos, 2}]),
    Session = ets:new(t_session, [set, {keypos, 2}]),
    Registry = ets:new(t_registry, [set]),
    [ets:insert(Bosh, {bosh, integer_to_binary(I), erlang:timestamp(), P})
     || {I, P} <- lists:enumerate([Dead | Procs])],
    [ets:insert(Session, {session, {erlang:timestamp(), P}, {<<"u">>, <<"h">>, <<"r">>}, x, 0, []})
     || P <- tl(Procs)],
    ets:insert(Registry, [{{<<"s">>, 1}, self(), [a, b]}, {{new, make_ref()}, self(), [c]}]),
    Memory = lists:sum([element(2, erlang:process_info(P, memory)) || P <- Procs]),
    #{bosh_sessions := 3, bosh_memory_bytes := BoshMem,
      c2s_sessions := 2, c2s_memory_bytes := C2sMem,
      requests_inflight := 3} =
        mod_megaphone_metrics:take_sample(#{bosh => Bosh, session => Session, registry => Registry}),
    ?assertEqual(Memory, BoshMem),
    ?assert(C2sMem > 0 andalso C2sMem < Memory),
    [P ! stop || P <- Procs].

take_sample_says_undefined_without_the_tables_test() ->
    %% Ensures a missing table (sql/redis backend) is unknown, not 0.
    ?assertMatch(#{bosh_sessions := undefined, c2s_memory_bytes := undefined,
                   requests_inflight := undefined},
                 mod_megaphone_metrics:take_sample(#{bosh => no_such_table_1, session => no_such_table_2,
                                                     registry => no_such_table_3})).

the_sample_is_reused_for_metrics_cache_time_test() ->
    %% Ensures scrapes within metrics_cache_time reuse one pass (its
    %% duration is the same, its age grows), and a later one makes a new pass.
    persistent_term:put(?CONFIG_KEY, #{metrics_cache_time => 60000}),
    {ok, Pid} = mod_megaphone_metrics:start_link(),
    try
        First = mod_megaphone_metrics:sample(),
        timer:sleep(20),
        Second = mod_megaphone_metrics:sample(),
        ?assertEqual(maps:get(duration_seconds, First), maps:get(duration_seconds, Second)),
        ?assert(maps:get(age_seconds, Second) >= 0.02),
        persistent_term:put(?CONFIG_KEY, #{metrics_cache_time => 0}),
        ?assertEqual(0.0, maps:get(age_seconds, mod_megaphone_metrics:sample()))
    after
        unlink(Pid), mod_megaphone_test_util:kill([Pid]), persistent_term:erase(?CONFIG_KEY)
    end.

%%%===================================================================
%%% Helpers
%%%===================================================================
text(Families) ->
    iolist_to_binary(mod_megaphone_prometheus:format(Families)).

lines(Text) ->
    binary:split(Text, <<"\n">>, [global, trim_all]).

stats() ->
    [{atom_to_binary(N, utf8), 0} || N <- mod_megaphone_stats:names()].

request(Method) ->
    #request{method = Method, path = [<<"megaphone">>, <<"metrics">>],
             raw_path = <<"/megaphone/metrics">>, ip = {{127, 0, 0, 1}, 40000}}.

wait_dead(Pid) ->
    Ref = monitor(process, Pid),
    receive {'DOWN', Ref, process, Pid, _} -> ok end.
