#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Erlang calls into a private ejabberd (scripts/private-ejabberd.sh start DIR) over Erlang distribution: a
# hidden node with the instance's cookie, on its ERL_DIST_PORT (no epmd), like ejabberdctl itself connects.
# ejabberdctl 23.01 has no eval command; this is the fast way to register many users and to read memory.
#
#   bench/ejabberd-rpc.sh DIR eval 'EXPR'            evaluates EXPR on the ejabberd node, prints the result (~p)
#   bench/ejabberd-rpc.sh DIR register-range PATTERN FIRST COUNT PASSWORD
#                                                   ejabberd_auth:try_register for PATTERN with %d = FIRST..
#   bench/ejabberd-rpc.sh DIR memory                 one line: total_bytes processes_bytes binary_bytes
#                                                   ets_bytes process_count
#   bench/ejabberd-rpc.sh DIR profile [SAMPLE]       where the bytes go: processes grouped by initial call /
#                                                   current function, count, total and mean memory (bytes)
#                                                   (process_info memory), heap sizes, binary refs of a sample
#   bench/ejabberd-rpc.sh DIR tables [TOP]           the TOP (25) ETS tables by memory: name, owner's initial
#                                                   call, rows, bytes, bytes per row; the sum of the
#                                                   mod_megaphone_sequencer_* shard tables
#   bench/ejabberd-rpc.sh DIR sessions [SAMPLE [GCS]] the per-user processes (ejabberd_bosh, c2s, ejabberd_http,
#                                                   ejabberd_http_ws, mod_megaphone_ws),
#                                                   each kind: mean process_info memory split into heap block,
#                                                   live heap (garbage_collection_info heap_size: the used
#                                                   words), old heap, stack, message queue, links, monitors,
#                                                   monitored_by (and by whom, in a sample), dictionary; the
#                                                   heap block sizes seen; the state's words per field of a
#                                                   SAMPLE (20) of BOSH sessions (sys:get_state); GCS (0): that
#                                                   many erlang:garbage_collect/1 of each process just before
#                                                   it is read (a first forced GC sizes the new heap from the
#                                                   words in use before it, garbage included; a second one
#                                                   from the live words)
set -euo pipefail
. "$(dirname "$0")/common.sh" && bench_needs erl:erlang-base
[ $# -ge 2 ] || { sed -n '3,32p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
DIR=$(cd "$1" && pwd -P); CMD=$2; shift 2
# shellcheck source=/dev/null
. "$DIR/instance.env"
COOKIE=$(cat "$DIR/.erlang.cookie")
WORK=$(mktemp -d /tmp/ejrpc.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Runs the Erlang expression $1 here; it may use Node (the ejabberd node) and Host (its domain).
run_local() {
    local name="rpc$$_$RANDOM@localhost"
    [[ "$EJ_NODE" == *@localhost ]] || name="rpc$$_$RANDOM@${EJ_IP:-127.0.0.1}"
    local flag=-sname
    [[ "$EJ_NODE" == *@localhost ]] || flag=-name
    (cd "$WORK" && ERL_INETRC="$DIR/inetrc" erl $flag "$name" -setcookie "$COOKIE" -start_epmd false \
        -erl_epmd_port "$EJ_DIST_PORT" -dist_listen false -hidden -noshell -eval "
        Node = '$EJ_NODE', Host = <<\"$EJ_DOMAIN\">>, _ = Host,
        case net_kernel:connect_node(Node) of true -> ok; _ -> io:format(standard_error, \"cannot connect to ~p~n\", [Node]), halt(1) end,
        $1,
        halt(0).")
}

case "$CMD" in
    eval)
        run_local "F = fun() -> $1 end, io:format(\"~p~n\", [rpc:call(Node, erlang, apply, [F, []], infinity)])"
        ;;
    register-range)
        PATTERN=$1 FIRST=$2 COUNT=$3 PW=$4
        run_local "
        F = fun() ->
            Fmt = \"${PATTERN//%d/~b}\", Pw = <<\"$PW\">>,
            lists:foldl(fun(I, {Ok, Exists, Err}) ->
                U = list_to_binary(io_lib:format(Fmt, [I])),
                case ejabberd_auth:try_register(U, Host, Pw) of
                    ok -> {Ok + 1, Exists, Err};
                    {error, exists} -> {Ok, Exists + 1, Err};
                    _ -> {Ok, Exists, Err + 1}
                end end, {0, 0, 0}, lists:seq($FIRST, $FIRST + $COUNT - 1))
        end,
        {Ok, Exists, Err} = rpc:call(Node, erlang, apply, [F, []], infinity),
        io:format(\"registered ~p, already there ~p, failed ~p~n\", [Ok, Exists, Err]),
        case Err of 0 -> ok; _ -> halt(1) end"
        ;;
    memory)
        run_local "
        F = fun() -> M = erlang:memory(), {proplists:get_value(total, M), proplists:get_value(processes, M),
                     proplists:get_value(binary, M), proplists:get_value(ets, M), erlang:system_info(process_count)} end,
        {T, P, B, E, C} = rpc:call(Node, erlang, apply, [F, []], infinity),
        io:format(\"~p ~p ~p ~p ~p~n\", [T, P, B, E, C])"
        ;;
    profile)
        SAMPLE=${1:-200}
        run_local "
        F = fun() ->
            erlang:garbage_collect(),
            Info = [begin
                        I = erlang:process_info(P, [memory, initial_call, dictionary, current_function, total_heap_size, heap_size, stack_size, binary, message_queue_len]),
                        case I of
                            undefined -> skip;
                            _ ->
                                D = proplists:get_value(dictionary, I),
                                Init = case proplists:get_value('\$initial_call', D) of undefined -> proplists:get_value(initial_call, I); IC -> IC end,
                                Bins = lists:sum([S || {_, S, _} <- proplists:get_value(binary, I)]),
                                {Init, proplists:get_value(memory, I), proplists:get_value(total_heap_size, I) * 8,
                                 proplists:get_value(heap_size, I) * 8, proplists:get_value(stack_size, I) * 8, Bins,
                                 proplists:get_value(current_function, I)}
                        end
                    end || P <- erlang:processes()],
            Rows = [R || R <- Info, R =/= skip],
            Groups = lists:foldl(fun({Init, Mem, THeap, Heap, Stack, Bins, _Cur}, Acc) ->
                        {N, M0, T0, H0, S0, B0} = maps:get(Init, Acc, {0, 0, 0, 0, 0, 0}),
                        Acc#{Init => {N + 1, M0 + Mem, T0 + THeap, H0 + Heap, S0 + Stack, B0 + Bins}} end, #{}, Rows),
            Sorted = lists:reverse(lists:keysort(2, [{K, M, N, T, H, S, B} || {K, {N, M, T, H, S, B}} <- maps:to_list(Groups)])),
            {erlang:memory(), erlang:system_info(process_count), lists:sublist(Sorted, 15)}
        end,
        {Mem, Count, Top} = rpc:call(Node, erlang, apply, [F, []], infinity),
        io:format(\"erlang:memory() ~p~nprocess_count ~p~n~-60s ~8s ~12s ~9s ~9s ~9s ~9s ~9s~n\",
                  [Mem, Count, \"initial call\", \"count\", \"memory\", \"mean mem\", \"mean heap\", \"mean tot.heap\", \"mean stack\", \"mean bin\"]),
        [io:format(\"~-60s ~8b ~12b ~9b ~9b ~9b ~9b ~9b~n\", [io_lib:format(\"~p\", [K]), N, M, M div N, H div N, T div N, S div N, B div N])
         || {K, M, N, T, H, S, B} <- Top]"
        ;;
    tables)
        TOP=${1:-25}
        read -r -d '' CODE <<'ERL' || true
        F = fun() ->
            Init = fun(P) when is_pid(P) ->
                           case erlang:process_info(P, [dictionary, initial_call]) of
                               [{dictionary, D}, {initial_call, IC}] -> proplists:get_value('$initial_call', D, IC);
                               _ -> undefined
                           end;
                      (_) -> undefined
                   end,
            W = erlang:system_info(wordsize),
            Ts = [{T, ets:info(T, name), ets:info(T, owner), ets:info(T, size), ets:info(T, memory)} || T <- ets:all()],
            Rows = [{Name, Init(Owner), Size, Mem * W} || {_, Name, Owner, Size, Mem} <- Ts, is_integer(Mem)],
            Shards = [R || {Name, _, _, _} = R <- Rows,
                           lists:prefix("mod_megaphone_sequencer_", atom_to_list(Name))],
            {length(Rows), lists:sum([M || {_, _, _, M} <- Rows]),
             {length(Shards), lists:sum([S || {_, _, S, _} <- Shards]), lists:sum([M || {_, _, _, M} <- Shards])},
             lists:sublist(lists:reverse(lists:keysort(4, Rows)), TOP)}
        end,
        {N, Total, {NS, SRows, SMem}, Top} = rpc:call(Node, erlang, apply, [F, []], infinity),
        io:format("~b ETS tables, ~b bytes in all~nmod_megaphone_sequencer_* (~b shard tables): ~b rows, ~b bytes (~b per row)~n~n~-40s ~-44s ~9s ~12s ~9s~n",
                  [N, Total, NS, SRows, SMem, case SRows of 0 -> 0; _ -> SMem div SRows end,
                   "table", "owner (initial call)", "rows", "bytes", "B/row"]),
        [io:format("~-40s ~-44s ~9b ~12b ~9b~n", [io_lib:format("~p", [Name]), io_lib:format("~p", [Owner]), Size, Mem,
                                                case Size of 0 -> 0; _ -> Mem div Size end])
         || {Name, Owner, Size, Mem} <- Top]
ERL
        run_local "TOP = $TOP, ${CODE}"
        ;;
    sessions)
        SAMPLE=${1:-20} GCS=${2:-0}
        read -r -d '' CODE <<'ERL' || true
        Kinds = [{ejabberd_bosh, init, 1}, {xmpp_stream_in, init, 1}, {ejabberd_http, init, 3},
                 {ejabberd_http_ws, init, 1}, {mod_megaphone_ws, init, 1}],
        %% ejabberd 23.01's #state{} of ejabberd_bosh (the order of its fields)
        BoshFields = [state, host, sid, el_ibuf, el_obuf, shaper_state, c2s_pid, xmpp_ver, inactivity_timer,
                      wait_timer, wait_timeout, inactivity_timeout, prev_rid, prev_key, prev_poll, max_concat,
                      responses, receivers, shaped_receivers, ip, max_requests],
        F = fun() ->
            Init = fun(P) when is_pid(P) ->
                           case erlang:process_info(P, [dictionary, initial_call]) of
                               [{dictionary, D}, {initial_call, IC}] -> proplists:get_value('$initial_call', D, IC);
                               _ -> undefined
                           end;
                      (P) when is_port(P) -> port;
                      (_) -> other
                   end,
            W = erlang:system_info(wordsize),
            Stat = fun(P) ->
                _ = [erlang:garbage_collect(P) || _ <- lists:seq(1, GCS)],
                case erlang:process_info(P, [memory, garbage_collection_info, stack_size, message_queue_len,
                                             links, monitors, monitored_by, dictionary, binary]) of
                    undefined -> undefined;
                    I ->
                        G = proplists:get_value(garbage_collection_info, I),
                        V = fun(K) -> proplists:get_value(K, G) * W end,
                        {[proplists:get_value(memory, I), V(heap_block_size), V(heap_size), V(old_heap_block_size),
                          V(mbuf_size), proplists:get_value(stack_size, I) * W,
                          proplists:get_value(message_queue_len, I), length(proplists:get_value(links, I)),
                          length(proplists:get_value(monitors, I)), length(proplists:get_value(monitored_by, I)),
                          erts_debug:flat_size(proplists:get_value(dictionary, I)) * W,
                          lists:sum([S || {_, S, _} <- proplists:get_value(binary, I)])],
                         V(heap_block_size), I}
                end
            end,
            ByKind = lists:foldl(fun(P, Acc) ->
                                         K = Init(P),
                                         case lists:member(K, Kinds) of
                                             true -> maps:update_with(K, fun(L) -> [P | L] end, [P], Acc);
                                             false -> Acc
                                         end
                                 end, #{}, erlang:processes()),
            Count = fun(L) -> lists:foldl(fun(X, M) -> maps:update_with(X, fun(C) -> C + 1 end, 1, M) end, #{}, L) end,
            Per = fun(K, Ps) ->
                Stats = [S || S <- [Stat(P) || P <- Ps], S =/= undefined],
                N = length(Stats),
                Sums = lists:foldl(fun({Vs, _, _}, Acc) -> lists:zipwith(fun(A, B) -> A + B end, Vs, Acc) end,
                                   lists:duplicate(12, 0), Stats),
                Blocks = lists:sort(maps:to_list(Count([B || {_, B, _} <- Stats]))),
                Sample = lists:sublist(Stats, 200),
                Who = fun(Key) -> lists:sort(maps:to_list(Count(
                          [Init(case X of {process, Pid} -> Pid; {port, Port} -> Port; Pid -> Pid end)
                           || {_, _, I} <- Sample, X <- proplists:get_value(Key, I)]))) end,
                {K, N, [S / max(N, 1) || S <- Sums], Blocks,
                 [{links, Who(links)}, {monitors, Who(monitors)}, {monitored_by, Who(monitored_by)}]}
            end,
            Rows = [Per(K, Ps) || {K, Ps} <- maps:to_list(ByKind)],
            Fields = case maps:get({ejabberd_bosh, init, 1}, ByKind, []) of
                         [] -> [];
                         BoshPs ->
                             %% p1_fsm has no system_get_state/1: sys:get_state/2 gives its loop's
                             %% [Name, StateName, StateData, Mod, Time, Limits, Queue, QueueLen]
                             Misc = [M || P <- lists:sublist(BoshPs, SAMPLE),
                                          M <- [try sys:get_state(P, 2000) catch _:_ -> undefined end],
                                          is_list(M), length(M) == 8],
                             States = [{StateName, SD} || [_, StateName, SD | _] <- Misc],
                             case States of
                                 [] -> [];
                                 [{_, S0} | _] ->
                                     Names = case length(BoshFields) == tuple_size(S0) of
                                                 true -> BoshFields;
                                                 false -> lists:seq(1, tuple_size(S0))
                                             end,
                                     [{Name, lists:sum([erts_debug:flat_size(element(I, S)) || {_, S} <- States]) * W / length(States)}
                                      || {I, Name} <- lists:zip(lists:seq(1, tuple_size(S0)), Names)] ++
                                     [{whole_state, lists:sum([erts_debug:flat_size(St) || {_, St} <- States]) * W / length(States)},
                                      {p1_fsm_queue, lists:sum([erts_debug:flat_size(lists:nth(7, M)) || M <- Misc]) * W / length(Misc)},
                                      {p1_fsm_loop_all, lists:sum([erts_debug:flat_size(M) || M <- Misc]) * W / length(Misc)},
                                      {sessions_sampled, length(States)}]
                             end
                     end,
            {Rows, Fields}
        end,
        {Rows, Fields} = rpc:call(Node, erlang, apply, [F, []], infinity),
        Heads = ["memory", "heap block", "live heap", "old heap", "mbuf", "stack", "msg queue", "links",
                 "monitors", "monitored_by", "dictionary", "binary refs"],
        [begin
             io:format("~p: ~b processes, mean per process (bytes, or counts for queue/links/monitors):~n", [K, N]),
             [io:format("  ~-14s ~12.1f~n", [H, float(V)]) || {H, V} <- lists:zip(Heads, Means)],
             io:format("  heap block sizes (bytes => processes): ~p~n", [Blocks]),
             [io:format("  ~p (of up to 200 processes, by initial call): ~p~n", [Key, L]) || {Key, L} <- Who]
         end || {K, N, Means, Blocks, Who} <- lists:keysort(1, Rows)],
        case Fields of
            [] -> ok;
            _ -> io:format("~nejabberd_bosh state, mean bytes per field (erts_debug:flat_size, binaries as refs):~n"),
                 [io:format("  ~-20s ~10.1f~n", [Name, float(V)]) || {Name, V} <- Fields]
        end
ERL
        run_local "SAMPLE = $SAMPLE, GCS = $GCS, ${CODE}"
        ;;
    *) echo "unknown command $CMD" >&2; exit 2 ;;
esac
