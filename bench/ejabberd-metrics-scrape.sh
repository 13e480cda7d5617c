#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Cost of one metrics scrape of mod_megaphone (the uncached pass of mod_megaphone_metrics plus the text) with
# N BOSH sessions: N idle BOSH processes and N idle c2s processes in tables shaped like ejabberd's mnesia
# tables (bosh, session), and N running requests in the registry table. No ejabberd needed; bounded (one node,
# exits when done). Usage: bench/ejabberd-metrics-scrape.sh [N ...]   (default: 100000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/common.sh && bench_needs erl:erlang-base erlc:erlang-dev make /usr/sbin/ejabberdctl:ejabberd
make -s -C ejabberd/mod_megaphone >/dev/null
EBIN=$(ls -d /usr/lib/*/ejabberd-*/ebin /usr/lib/ejabberd-*/ebin 2>/dev/null | head -1 || true)
for n in "${@:-100000}"; do
    erl -noshell +P $((4 * n + 100000)) -pa ejabberd/mod_megaphone/ebin ${EBIN:+-pa "$EBIN"} -eval "
        N = $n,
        Idle = fun() -> receive stop -> ok end end,
        ets:new(bosh, [named_table, public, set, {keypos, 2}]),
        ets:new(session, [named_table, public, set, {keypos, 2}]),
        ets:new(mod_megaphone_inflight, [named_table, public, set]),
        lists:foreach(fun(I) ->
            Sid = integer_to_binary(I),
            ets:insert(bosh, {bosh, Sid, erlang:timestamp(), spawn(Idle)}),
            ets:insert(session, {session, {erlang:timestamp(), spawn(Idle)}, {Sid, <<\"h\">>, <<\"r\">>}, {Sid, <<\"h\">>}, 0, []}),
            ets:insert(mod_megaphone_inflight, {{Sid, I}, self(), [{self(), x, I, make_ref()}]})
        end, lists:seq(1, N)),
        mod_megaphone_stats:new(),
        persistent_term:put({mod_megaphone, config}, #{metrics_access => all, metrics_cache_time => 0}),
        {ok, _} = mod_megaphone_metrics:start_link(),
        Scrape = fun() ->
            {T, {200, _, Body}} = timer:tc(mod_megaphone_prometheus, process, [[], {request, 'GET', [], <<>>, [], {<<>>, <<>>}, undefined, <<>>, <<>>, {{127,0,0,1}, 1}, <<>>, 5280, [], http, [], 0, gen_tcp, undefined}]),
            {T, iolist_size(Body)}
        end,
        Runs = [Scrape() || _ <- lists:seq(1, 5)],
        Ms = lists:sort([T div 1000 || {T, _} <- Runs]),
        io:format(\"~B sessions (~B processes): uncached scrape ~p ms (5 runs, sorted), ~B bytes of text~n\",
                  [N, erlang:system_info(process_count), Ms, element(2, hd(Runs))]),
        persistent_term:put({mod_megaphone, config}, #{metrics_access => all, metrics_cache_time => 60000}),
        _ = Scrape(),
        {Tc, _} = Scrape(),
        io:format(\"~B sessions: cached scrape ~.3f ms~n\", [N, Tc / 1000]),
        halt()."
done
