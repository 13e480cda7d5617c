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
set -euo pipefail
[ $# -ge 2 ] || { sed -n '3,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
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
    *) echo "unknown command $CMD" >&2; exit 2 ;;
esac
