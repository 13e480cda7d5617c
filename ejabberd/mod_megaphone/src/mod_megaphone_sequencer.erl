%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sequencer.erl
%%% Purpose : Every BOSH session's requests enter ejabberd in rid order,
%%%           once per (sid, rid) in the whole cluster (docs/protocol.md,
%%%           section 4; docs/architecture.md, "Per-session order").
%%%
%%% Why: ejabberd 23.01's ejabberd_bosh:active1/3 parks a request whose rid
%%% is above prev_rid + 1 in 'receivers', and only reply/4 and
%%% reply_next_state/4 ever resume it. When rid N is an empty poll (held)
%%% the parked N+1 is never processed: the session dies after 'wait'
%%% (other-request, or connection-timeout if N+1 was the bind). A second
%%% live copy of a parked rid crashes the session ({key_exists, Rid} in
%%% gb_trees:insert/3). A rid below prev_rid that is neither in
%%% 'responses' (the last hold+1 answers) nor held is held until the
%%% session ends.
%%%
%%% Where: a request for an existing session runs on the node of the
%%% session's BOSH process (mod_bosh:find_session/1, the lookup ejabberd
%%% itself makes), in a caller process there (the worker itself when that
%%% is this node, an erpc process otherwise). So every copy of every rid of
%%% a session meets in one place, whichever ECM, link or node it came
%%% through. The BOSH process is local to that caller, and a caller's
%%% call message is in the session's mailbox once the caller waits inside
%%% ejabberd_bosh's call (local sends are enqueued at once).
%%%
%%% The state of a session lives in one row of an ETS table of one shard
%%% (one gen_server per scheduler, chosen by phash2 of the sid); only the
%%% shard writes it. Each call of a session is one of:
%%%   waiting   arrived, its predecessor has not entered ejabberd yet
%%%   released  told to go (it then calls ejabberd_bosh:process_request/3)
%%% and ends with done/4 (the caller's answer goes to every copy that
%%% joined it). Rules, in the shard (cont: the highest rid such that every
%%% rid from the session's first one up to it was released or skipped):
%%%   * a rid already waiting or released: the copy joins that call (one
%%%     call into ejabberd per (sid, rid) at any time, cluster-wide);
%%%   * cont + 1 is released once the caller of cont has entered ejabberd
%%%     (it waits in a receive under ejabberd_bosh, or it has ended);
%%%   * a rid waits for a predecessor that has not arrived at most
%%%     order_timeout ms; then every waiting rid up to it goes, in order,
%%%     and the missing rids below them are remembered as skipped (one that
%%%     arrives later goes at once, as it does today); behind a predecessor
%%%     that has arrived it waits until that one is seen inside ejabberd,
%%%     at most UNSEEN_WAITS order_timeouts;
%%%   * a rid at or below cont, not skipped, not running, not among the
%%%     last two answered and not below the session's first rid seen:
%%%     ejabberd has no answer for it and would hold it until the session
%%%     ends, so it is answered item-not-found at once (XEP-0124 14.3)
%%%     without touching the session (a stale copy must not end a live
%%%     session). ejabberd keeps at most hold + 1 <= 2 answers (23.01
%%%     caps hold at 1), so the last two answered rids cover its buffer.
%%%
%%% A session created through mod_megaphone is seeded with its creation
%%% rid (seed/3), so its very first requests are ordered too; a session
%%% first seen later (a module restart) starts at the first rid that
%%% arrives. Rows of sessions whose BOSH process has ended are swept every
%%% 30 s.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sequencer).

-behaviour(gen_server).

-export([start_link/1, shard_names/0, process/5, call/6, seed/3,
         session_state/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include("logger.hrl").

-define(SHARDS_KEY, {?MODULE, shards}).
%% ms between two looks at whether a released caller has entered ejabberd
-define(RECHECK, 1).
-define(SWEEP, 30000).
%% answered rids kept per session: ejabberd 23.01 buffers hold + 1 <= 2
-define(ANSWERED, 2).
%% order_timeouts a request waits behind a predecessor that went to ejabberd
%% but is not seen inside it (a scheduler stall; or an ejabberd whose call
%% this module cannot see: then the order is given up after this many)
-define(UNSEEN_WAITS, 10).
%% skipped rids kept per session (a gap is at most 'requests' = 2 wide)
-define(SKIPPED, 8).
%% how often a waiting remote request looks for a CANCEL
-define(REMOTE_POLL, 200).
-define(CT_XML, <<"text/xml; charset=utf-8">>).
-define(NS_HTTP_BIND, "http://jabber.org/protocol/httpbind").

-record(call, {caller :: pid(),
               mon :: reference(),
               state :: waiting | released,
               waiters = [] :: [pid()],
               timer :: reference() | undefined,
               %% order_timeouts spent behind a predecessor that went to
               %% ejabberd but is not seen inside it yet
               waits = 0 :: non_neg_integer()}).

-record(session, {sid :: binary(),
                  bosh :: pid(),
                  cont :: non_neg_integer(),
                  floor :: non_neg_integer(),
                  answered = [] :: [non_neg_integer()],
                  skipped = [] :: [non_neg_integer()],
                  skip_to = 0 :: non_neg_integer(),
                  force_to = 0 :: non_neg_integer(),
                  calls = #{} :: #{non_neg_integer() => #call{}}}).

-type bosh_result() :: {non_neg_integer(), binary(), list(), iodata()}.
-type result() :: bosh_result() | cancelled | {error, {atom(), term(), list()}}.
-export_type([result/0]).

%%%===================================================================
%%% API
%%%===================================================================
-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(I) ->
    gen_server:start_link({local, shard_name(I)}, ?MODULE, I, []).

%% The registered names of the shards (one per online scheduler).
-spec shard_names() -> [atom()].
shard_names() ->
    [shard_name(I) || I <- lists:seq(1, erlang:system_info(schedulers_online))].

%% Runs one BOSH request (its body, the client's address, the sid and rid
%% the ECM read from the start tag) the way ejabberd_bosh:process_request/3
%% does, in order. Called by a worker; 'cancelled' when the worker got
%% megaphone_cancel before its request entered ejabberd.
-spec process(binary(), inet:ip_address(), inet:port_number(), binary(),
              non_neg_integer()) -> result().
process(Body, IP, Port, <<>>, Rid) ->
    create(Body, IP, Port, Rid);
process(Body, IP, Port, _Sid, 0) ->
    bosh(Body, IP, Port); % no rid read from the start tag: nothing to order by
process(Body, IP, Port, Sid, Rid) ->
    case find_session(Sid) of
        {ok, Bosh} when node(Bosh) == node() ->
            call(Sid, Bosh, Rid, Body, IP, Port);
        {ok, Bosh} ->
            mod_megaphone_stats:incr(requests_forwarded_total),
            remote(node(Bosh), [Sid, Bosh, Rid, Body, IP, Port], Body, IP, Port);
        error ->
            bosh(Body, IP, Port) % unknown sid: ejabberd answers item-not-found
    end.

%% Runs the request in the calling process, on the node of the session's
%% BOSH process (a worker there, or an erpc process from another node).
-spec call(binary(), pid(), non_neg_integer(), binary(), inet:ip_address(),
           inet:port_number()) -> result().
call(Sid, Bosh, Rid, Body, IP, Port) ->
    Shard = shard(Sid),
    case shard_call(Shard, {arrive, Sid, Bosh, Rid, self()}) of
        wait ->
            wait_go(Shard, Sid, Rid, Body, IP, Port);
        {join, Caller} ->
            mod_megaphone_stats:incr(requests_deduplicated_total),
            join(Caller, Sid, Bosh, Rid, Body, IP, Port);
        stale ->
            mod_megaphone_stats:incr(requests_stale_total),
            terminate(<<"item-not-found">>);
        unavailable ->
            bosh(Body, IP, Port) % the module stops: no order to keep
    end.

%% A session was created with rid Rid: its next rids are ordered from
%% Rid + 1 on.
-spec seed(binary(), pid(), non_neg_integer()) -> ok.
seed(Sid, Bosh, Rid) ->
    _ = shard_call(shard(Sid), {seed, Sid, Bosh, Rid}),
    ok.

%% For tests: {Cont, Answered, Skipped, #{Rid => waiting | released}}.
-spec session_state(binary()) -> {integer(), [integer()], [integer()], map()} | none.
session_state(Sid) ->
    shard_call(shard(Sid), {state, Sid}).

%%%===================================================================
%%% Callers
%%%===================================================================
%% Session creation: refused with host-unknown when the body's 'to' names
%% no host that serves BOSH here (ejabberd 23.01 answers
%% internal-server-error); seeded after ejabberd answered.
create(Body, IP, Port, Rid) ->
    case served(Body) of
        false ->
            mod_megaphone_stats:incr(requests_host_unknown_total),
            terminate(<<"host-unknown">>);
        true ->
            Result = bosh(Body, IP, Port),
            _ = seed_created(Result, Rid),
            Result
    end.

served(Body) ->
    try fxml_stream:parse_element(Body) of
        {xmlel, _, Attrs, _} ->
            case lists:keyfind(<<"to">>, 1, Attrs) of
                {_, To} when To /= <<>> ->
                    case jid:nameprep(To) of
                        error -> false;
                        Host -> gen_mod:is_loaded(Host, mod_bosh)
                    end;
                _ ->
                    true % no 'to': ejabberd answers improper-addressing
            end;
        _ ->
            true % not XML: ejabberd answers 400
    catch _:_ ->
            true % no ejabberd here (tests): let the handler decide
    end.

seed_created({200, _, _, RespBody}, Rid) when Rid > 0 ->
    Bin = iolist_to_binary(RespBody),
    case binary:match(Bin, <<" sid='">>) of
        {Pos, Len} ->
            Start = Pos + Len,
            case binary:match(Bin, <<"'">>, [{scope, {Start, byte_size(Bin) - Start}}]) of
                {End, _} ->
                    Sid = binary:part(Bin, Start, End - Start),
                    case find_session(Sid) of
                        {ok, Bosh} when node(Bosh) == node() -> seed(Sid, Bosh, Rid);
                        _ -> ok
                    end;
                nomatch -> ok
            end;
        nomatch -> ok
    end;
seed_created(_, _) ->
    ok.

wait_go(Shard, Sid, Rid, Body, IP, Port) ->
    %% A shard that dies (its sessions' state with it) sends no go: go on
    %% without it, as the request would have without the sequencer.
    Mon = monitor(process, Shard),
    receive
        {megaphone_go, Sid, Rid} ->
            demonitor(Mon, [flush]),
            run(Shard, Sid, Rid, Body, IP, Port);
        {'DOWN', Mon, process, _, _} ->
            run(Shard, Sid, Rid, Body, IP, Port);
        megaphone_cancel ->
            demonitor(Mon, [flush]),
            case shard_call(Shard, {withdraw, Sid, Rid, self()}) of
                ok ->
                    cancelled;
                unavailable ->
                    cancelled;
                released ->
                    %% go crossed the CANCEL: the shard counts this rid as
                    %% entering ejabberd, so it does (the answer is dropped).
                    receive {megaphone_go, Sid, Rid} -> ok after 0 -> ok end,
                    run(Shard, Sid, Rid, Body, IP, Port)
            end
    end.

run(Shard, Sid, Rid, Body, IP, Port) ->
    Result = try bosh(Body, IP, Port)
             catch Class:Reason:Stack -> {error, {Class, Reason, Stack}}
             end,
    Waiters = case shard_call(Shard, {done, Sid, Rid, self()}) of
                  Ws when is_list(Ws) -> Ws;
                  unavailable -> []
              end,
    lists:foreach(fun(W) -> W ! {megaphone_result, Sid, Rid, Result} end, Waiters),
    Result.

%% A copy of a running (sid, rid): the running call's answer is its answer.
%% If that call ends without one (withdrawn, killed), arrive again.
join(Caller, Sid, Bosh, Rid, Body, IP, Port) ->
    Mon = monitor(process, Caller),
    receive
        {megaphone_result, Sid, Rid, Result} ->
            demonitor(Mon, [flush]),
            Result;
        {'DOWN', Mon, process, Caller, _} ->
            call(Sid, Bosh, Rid, Body, IP, Port);
        megaphone_cancel ->
            demonitor(Mon, [flush]),
            cancelled
    end.

%% The session lives on Node: run the request there. A CANCEL ends this
%% worker only (the remote caller goes on: it may be inside ejabberd).
remote(Node, Args, Body, IP, Port) ->
    ReqId = erpc:send_request(Node, ?MODULE, call, Args),
    remote_wait(ReqId, Node, Body, IP, Port).

remote_wait(ReqId, Node, Body, IP, Port) ->
    try erpc:wait_response(ReqId, ?REMOTE_POLL) of
        {response, Result} ->
            Result;
        no_response ->
            receive
                megaphone_cancel -> cancelled
            after 0 ->
                    remote_wait(ReqId, Node, Body, IP, Port)
            end
    catch Class:Reason ->
            %% mod_megaphone not running there, or the node went away
            %% (then so did the session: ejabberd answers for it here).
            ?WARNING_MSG("mod_megaphone: cannot run a request on ~ts (~p); "
                         "running it here", [Node, {Class, Reason}]),
            bosh(Body, IP, Port)
    end.

%% The one place that calls ejabberd's BOSH handler.
bosh(Body, IP, Port) ->
    mod_megaphone_stats:incr(requests_total),
    ejabberd_bosh:process_request(Body, {IP, Port}, xml).

terminate(Condition) ->
    {200, <<"OK">>, [{<<"Content-Type">>, ?CT_XML}],
     <<"<body type='terminate' condition='", Condition/binary,
       "' xmlns='" ?NS_HTTP_BIND "'/>">>}.

find_session(Sid) ->
    try mod_bosh:find_session(Sid) of
        {ok, Pid} when is_pid(Pid) -> {ok, Pid};
        _ -> error
    catch _:_ ->
            error % mod_bosh not running (module stop, tests)
    end.

shard(Sid) ->
    case persistent_term:get(?SHARDS_KEY, undefined) of
        undefined -> undefined;
        Shards -> element(1 + erlang:phash2(Sid, tuple_size(Shards)), Shards)
    end.

shard_name(I) ->
    list_to_atom("mod_megaphone_sequencer_" ++ integer_to_list(I)).

shard_call(undefined, _Request) ->
    unavailable;
shard_call(Shard, Request) ->
    %% 5 s: a shard stuck that long costs its sessions their order, never
    %% their requests (a timeout is an exit too).
    try gen_server:call(Shard, Request, 5000)
    catch exit:_ -> unavailable % the module stops, or the shard is stuck
    end.

%%%===================================================================
%%% gen_server callbacks (a shard)
%%%===================================================================
-spec init(pos_integer()) -> {ok, ets:tid()}.
init(I) ->
    Names = shard_names(),
    persistent_term:put(?SHARDS_KEY, list_to_tuple(Names)),
    Table = ets:new(?MODULE, [set, protected, {keypos, #session.sid}]),
    erlang:send_after(?SWEEP + I * 1000, self(), sweep),
    {ok, Table}.

-spec handle_call(term(), gen_server:from(), ets:tid()) -> {reply, term(), ets:tid()}.
handle_call({arrive, Sid, Bosh, Rid, Caller}, _From, T) ->
    S0 = case ets:lookup(T, Sid) of
             [S] -> S;
             [] -> #session{sid = Sid, bosh = Bosh, cont = Rid - 1, floor = Rid}
         end,
    {Reply, S1} = arrive(Rid, Caller, S0),
    store(T, pump(S1)),
    {reply, Reply, T};
handle_call({done, Sid, Rid, Caller}, _From, T) ->
    case ets:lookup(T, Sid) of
        [#session{calls = #{Rid := #call{caller = Caller} = C} = Calls} = S] ->
            demonitor(C#call.mon, [flush]),
            store(T, pump(answered(Rid, S#session{calls = maps:remove(Rid, Calls)}))),
            {reply, C#call.waiters, T};
        _ ->
            {reply, [], T}
    end;
handle_call({withdraw, Sid, Rid, Caller}, _From, T) ->
    case ets:lookup(T, Sid) of
        [#session{calls = #{Rid := #call{caller = Caller, state = waiting} = C} = Calls} = S] ->
            demonitor(C#call.mon, [flush]),
            cancel_timer(C),
            store(T, pump(S#session{calls = maps:remove(Rid, Calls)})),
            {reply, ok, T};
        _ ->
            {reply, released, T}
    end;
handle_call({seed, Sid, Bosh, Rid}, _From, T) ->
    _ = ets:insert_new(T, #session{sid = Sid, bosh = Bosh, cont = Rid, floor = Rid,
                                   answered = [Rid]}),
    {reply, ok, T};
handle_call({state, Sid}, _From, T) ->
    Reply = case ets:lookup(T, Sid) of
                [#session{cont = Cont, answered = A, skipped = Sk, calls = Calls}] ->
                    {Cont, A, Sk, maps:map(fun(_, #call{state = St}) -> St end, Calls)};
                [] ->
                    none
            end,
    {reply, Reply, T};
handle_call(_Request, _From, T) ->
    {reply, {error, badarg}, T}.

-spec handle_cast(term(), ets:tid()) -> {noreply, ets:tid()}.
handle_cast(_Msg, T) ->
    {noreply, T}.

-spec handle_info(term(), ets:tid()) -> {noreply, ets:tid()}.
handle_info({recheck, Sid}, T) ->
    update(T, Sid, fun pump/1),
    {noreply, T};
handle_info({timeout, Timer, {order, Sid, Rid}}, T) ->
    update(T, Sid, fun(S) -> order_timeout(Rid, Timer, S) end),
    {noreply, T};
handle_info({{caller, Sid, Rid}, Mon, process, Pid, _Reason}, T) ->
    update(T, Sid, fun(S) -> caller_down(Rid, Pid, Mon, S) end),
    {noreply, T};
handle_info(sweep, T) ->
    Dead = ets:foldl(fun(#session{sid = Sid, bosh = Bosh, calls = Calls}, Acc)
                           when map_size(Calls) == 0 ->
                             case is_process_alive(Bosh) of
                                 true -> Acc;
                                 false -> [Sid | Acc]
                             end;
                        (_, Acc) ->
                             Acc
                     end, [], T),
    lists:foreach(fun(Sid) -> ets:delete(T, Sid) end, Dead),
    erlang:send_after(?SWEEP, self(), sweep),
    {noreply, T};
handle_info(_Info, T) ->
    {noreply, T}.

%%%===================================================================
%%% Internal functions (a shard)
%%%===================================================================
%% Rid waited order_timeout for its predecessor. A predecessor that has
%% not arrived is given up: Rid goes, and every rid waiting below it goes
%% first, in order. A predecessor that went to ejabberd but is not seen
%% inside it yet is waited for again, up to UNSEEN_WAITS times.
order_timeout(Rid, Timer, #session{sid = Sid, calls = Calls, skip_to = SkipTo,
                                   force_to = ForceTo} = S) ->
    Pred = Rid - 1,
    case Calls of
        #{Rid := #call{state = waiting, timer = Timer, waits = W} = C} ->
            case Calls of
                #{Pred := #call{state = released}} when W + 1 < ?UNSEEN_WAITS ->
                    C1 = C#call{waits = W + 1, timer = start_timer(Sid, Rid)},
                    pump(S#session{calls = Calls#{Rid := C1}});
                #{Pred := #call{state = released}} ->
                    ?WARNING_MSG("mod_megaphone: a BOSH request waited ~B ms for its "
                                 "predecessor to be seen inside ejabberd; it goes now",
                                 [?UNSEEN_WAITS * mod_megaphone:order_timeout()]),
                    mod_megaphone_stats:incr(requests_order_timeout_total),
                    pump(S#session{calls = Calls#{Rid := C#call{timer = undefined}},
                                   skip_to = max(SkipTo, Rid), force_to = max(ForceTo, Rid)});
                #{} ->
                    mod_megaphone_stats:incr(requests_order_timeout_total),
                    pump(S#session{calls = Calls#{Rid := C#call{timer = undefined}},
                                   skip_to = max(SkipTo, Rid)})
            end;
        #{} ->
            S
    end.

start_timer(Sid, Rid) ->
    erlang:start_timer(mod_megaphone:order_timeout(), self(), {order, Sid, Rid}).

%% A caller ended without done/4 (withdrawn after a CANCEL, killed).
caller_down(Rid, Pid, Mon, #session{calls = Calls} = S) ->
    case Calls of
        #{Rid := #call{caller = Pid, mon = Mon} = C} ->
            cancel_timer(C),
            S1 = S#session{calls = maps:remove(Rid, Calls)},
            pump(case C#call.state of
                     %% ejabberd got it and answers a re-sent copy
                     %% (buffered or held): not one for the shield.
                     released -> answered(Rid, S1);
                     waiting -> S1
                 end);
        #{} ->
            S
    end.

arrive(Rid, Caller, #session{calls = Calls} = S) when is_map_key(Rid, Calls) ->
    #{Rid := #call{caller = Running, waiters = Ws} = C} = Calls,
    {{join, Running}, S#session{calls = Calls#{Rid := C#call{waiters = [Caller | Ws]}}}};
arrive(Rid, Caller, #session{cont = Cont, floor = Floor, skipped = Skipped,
                             answered = Answered} = S) when Rid =< Cont ->
    case lists:member(Rid, Skipped) of
        true ->
            %% the missing predecessor of rids that went without it
            {wait, release(Rid, new_call(Caller, S#session.sid, Rid),
                           S#session{skipped = lists:delete(Rid, Skipped)})};
        false when Rid < Floor ->
            {wait, release(Rid, new_call(Caller, S#session.sid, Rid), S)};
        false ->
            case lists:member(Rid, Answered) of
                true -> {wait, release(Rid, new_call(Caller, S#session.sid, Rid), S)};
                false -> {stale, S}
            end
    end;
arrive(Rid, Caller, #session{sid = Sid, cont = Cont, calls = Calls} = S) ->
    case Rid > Cont + 1 of
        true -> mod_megaphone_stats:incr(requests_reordered_total);
        false -> ok
    end,
    %% Every waiting call has the bounded wait, also one whose predecessor
    %% is released but not seen inside ejabberd yet.
    {wait, S#session{calls = Calls#{Rid => (new_call(Caller, Sid, Rid))#call{
                                                timer = start_timer(Sid, Rid)}}}}.

new_call(Caller, Sid, Rid) ->
    #call{caller = Caller, state = waiting,
          mon = monitor(process, Caller, [{tag, {caller, Sid, Rid}}])}.

%% Releases every rid that may go now, in rid order.
pump(#session{sid = Sid, cont = Cont, calls = Calls, skip_to = SkipTo,
              force_to = ForceTo, skipped = Skipped} = S) ->
    Next = Cont + 1,
    case Calls of
        #{Next := #call{state = waiting} = C} ->
            %% Given up waiting (SkipTo) goes only past a missing predecessor,
            %% never past one on its way into ejabberd (ForceTo: the cap).
            case entered(Cont, Calls) orelse Next =< ForceTo
                 orelse (Next =< SkipTo andalso not is_map_key(Cont, Calls)) of
                true ->
                    pump(release(Next, C, S#session{cont = Next}));
                false ->
                    erlang:send_after(?RECHECK, self(), {recheck, Sid}),
                    S
            end;
        #{} ->
            case lowest_waiting(Calls) of
                M when is_integer(M), M =< SkipTo ->
                    Gap = lists:seq(Next, M - 1),
                    pump(S#session{cont = M - 1,
                                   skipped = lists:sublist(Gap ++ Skipped, ?SKIPPED)});
                _ ->
                    S
            end
    end.

release(Rid, #call{caller = Caller} = C, #session{sid = Sid, calls = Calls} = S) ->
    cancel_timer(C),
    Caller ! {megaphone_go, Sid, Rid},
    S#session{calls = Calls#{Rid => C#call{state = released, timer = undefined}}}.

%% Whether the call of Rid (if any) has entered ejabberd: its caller is gone,
%% or waits in a receive with ejabberd_bosh on its stack (in 23.01:
%% gen:do_call/4 under p1_fsm:sync_send_event/3 under the catch of
%% process_request/4, so that frame stays; the tests' double of
%% ejabberd_bosh waits in process_request/3 itself). Waiting elsewhere (for
%% its go, or in a call to this shard) is not entered.
entered(Rid, Calls) ->
    case Calls of
        #{Rid := #call{state = released, caller = Caller}} ->
            case erlang:process_info(Caller, [status, current_stacktrace]) of
                undefined -> true;
                [{status, waiting}, {current_stacktrace, Stack}] ->
                    lists:keymember(ejabberd_bosh, 1, Stack);
                _ -> false
            end;
        #{Rid := #call{state = waiting}} ->
            false;
        #{} ->
            true
    end.

lowest_waiting(Calls) ->
    maps:fold(fun(Rid, #call{state = waiting}, Min) when Min == none; Rid < Min -> Rid;
                 (_, _, Min) -> Min
              end, none, Calls).

answered(Rid, #session{answered = A} = S) ->
    S#session{answered = lists:sublist(lists:reverse(lists:usort([Rid | A])), ?ANSWERED)}.

cancel_timer(#call{timer = undefined}) -> ok;
cancel_timer(#call{timer = Timer}) ->
    _ = erlang:cancel_timer(Timer),
    ok.

store(T, S) ->
    true = ets:insert(T, S).

update(T, Sid, Fun) ->
    case ets:lookup(T, Sid) of
        [S] -> store(T, Fun(S));
        [] -> true
    end.
