%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sequencer.erl
%%% Purpose : Every request of an existing BOSH session goes into ejabberd
%%%           in rid order, once per (sid, rid) in the whole cluster, with
%%%           no process of its own while ejabberd holds it
%%%           (docs/protocol.md, section 4; docs/architecture.md).
%%%
%%% Why: ejabberd_bosh loses a session that gets rid N+1 before N, or two
%%% live copies of one rid, and holds a stale rid until the session ends
%%% (docs/architecture.md; the patch in ejabberd/upstream/ fixes the first
%%% two in ejabberd itself).
%%%
%%% How: a link decodes a REQUEST's body (mod_megaphone_bosh) and sends it
%%% to the shard that owns its sid, on the node of the session's BOSH
%%% process (a fixed number of shards, so every node names the same
%%% shard). The shard is the only process that sends the session requests:
%%% the message ejabberd_bosh:process_request/3 would send, with a From of
%%% the shard's own. Messages from one process to another arrive in the
%%% order sent, so a request is inside ejabberd (in the session's mailbox)
%%% the moment the shard sends it, and its successor can go right after.
%%% The session answers the shard, which sends the answer to every link
%%% that asked (a re-sent copy joins the request in flight), then
%%% garbage-collects the session's processes (gc_heap_threshold).
%%%
%%% State: one ETS row per session (this shard's sessions only), with a
%%% monitor on the BOSH process; the row goes when the process ends. A
%%% call is 'waiting' (its predecessor has not gone in yet; the decoded
%%% body is kept) or 'released' (sent into ejabberd). Rules (cont: the
%%% highest rid such that every rid from the session's first one up to it
%%% was released or skipped; window: the session's 'requests', from its
%%% creation answer):
%%%   * a rid already waiting or released: the copy joins that call;
%%%   * cont + 1 goes as soon as it arrives; a rid above it waits for its
%%%     predecessors at most order_timeout ms, then every waiting rid up
%%%     to it goes, in order, and the missing rids below them are
%%%     remembered as skipped (one that arrives later goes at once);
%%%   * a rid above cont + window goes to ejabberd at once, which answers
%%%     it item-not-found (its prev_rid is at most cont); it waits for
%%%     nothing and leaves nothing behind;
%%%   * a rid at or below cont, not skipped, not running and not among the
%%%     last 'requests' answered: ejabberd has no answer for it and would
%%%     hold it until the session ends, so it is answered item-not-found
%%%     at once (XEP-0124 14.3) without touching the session.
%%% A session created through mod_megaphone is seeded with its creation
%%% rid and window (seed/4): every rid below the creation rid is stale. A
%%% session first seen later (a module restart) starts at the first rid F
%%% that arrives with a window of 2 (ejabberd caps hold at 1); a rid below
%%% F goes to ejabberd only where its buffer can still hold it (above
%%% F - 2 * window). So a session's row holds at most 'window' waiting
%%% calls, 'window' answered and SKIPPED skipped rids, whatever rids a
%%% client sends.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sequencer).

-behaviour(gen_server).

-export([start_link/1, shard_names/0, shard_of/1, submit/2, cancel/2, create/4,
         seed/4, session_state/1, inflight/0, close_session/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include("logger.hrl").
-include("mod_megaphone_bosh.hrl").

%% Shards per node: fixed, so that a link on any node finds the shard of a
%% sid on the session's node by name.
-define(SHARDS, 16).
-define(CALL_TIMEOUT, 5000).
%% the window of a session whose creation answer was not seen: ejabberd
%% 23.01-26.07 caps hold at 1, so 'requests' is at most 2
-define(DEFAULT_REQUESTS, 2).
%% the largest window taken from a creation answer
-define(MAX_REQUESTS, 8).
%% skipped rids kept per session (a gap is narrower than the window)
-define(SKIPPED, ?MAX_REQUESTS).

-record(call, {state :: waiting | released,
               %% waiting: the decoded request; released: the reply tag
               body :: #body{} | undefined,
               tag :: reference() | undefined,
               targets = [] :: [target()],
               timer :: reference() | undefined}).

-record(session, {sid :: binary(),
                  bosh :: pid(),
                  cont :: non_neg_integer(),
                  floor :: non_neg_integer(),
                  %% seeded at creation: floor is the creation rid
                  seeded = false :: boolean(),
                  requests = ?DEFAULT_REQUESTS :: pos_integer(),
                  answered = [] :: [non_neg_integer()],
                  skipped = [] :: [non_neg_integer()],
                  skip_to = 0 :: non_neg_integer(),
                  calls = #{} :: #{non_neg_integer() => #call{}}}).

-record(shard, {table :: ets:tid(),
                index :: pos_integer(),
                %% distinct (sid, rid) in flight here (mod_megaphone_stats)
                calls = 0 :: non_neg_integer()}).

%% Where an answer goes: {Link, Id, Ref} becomes Link ! {megaphone_answer,
%% Id, Ref, #body{}}.
-type target() :: {pid(), non_neg_integer(), reference()}.
%% The shard that took a request, for its CANCEL: {Name, Node}, Sid, Rid.
-type ticket() :: {{atom(), node()}, binary(), non_neg_integer()}.
-export_type([target/0, ticket/0]).

-define(CT_XML, <<"text/xml; charset=utf-8">>).

%%%===================================================================
%%% API
%%%===================================================================
-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(I) ->
    gen_server:start_link({local, shard_name(I)}, ?MODULE, I, []).

-spec shard_names() -> [atom()].
shard_names() ->
    [shard_name(I) || I <- lists:seq(1, ?SHARDS)].

%% The name and index of the shard of Sid (the same on every node).
-spec shard_of(binary()) -> {atom(), pos_integer()}.
shard_of(Sid) ->
    I = 1 + erlang:phash2(Sid, ?SHARDS),
    {shard_name(I), I}.

%% A REQUEST body, from a link: answered at once (malformed, too large, no
%% such session, no 'to'), a session creation (for a worker process: see
%% create/4), or queued on the session's shard, which answers Target.
-spec submit(binary(), target()) ->
          {answer, mod_megaphone_bosh:result()} | {create, non_neg_integer()} |
          {queued, ticket()} | unavailable.
submit(Data, Target) ->
    case mod_megaphone_bosh:decode(Data) of
        {answer, Result} ->
            {answer, Result};
        {ok, #body{attrs = Attrs} = Body} ->
            Rid = proplists:get_value(rid, Attrs),
            case {proplists:get_value(sid, Attrs, <<>>), proplists:get_value(to, Attrs, <<>>)} of
                {<<>>, <<>>} ->
                    {answer, mod_megaphone_bosh:encode(
                               mod_megaphone_bosh:terminate(<<"improper-addressing">>,
                                                            <<"Missing 'to' attribute">>))};
                {<<>>, _} ->
                    {create, Rid};
                {Sid, _} ->
                    case find_session(Sid) of
                        {ok, Bosh} ->
                            Shard = {shard_name(Sid), node(Bosh)},
                            case node(Bosh) == node() of
                                true -> ok;
                                false -> mod_megaphone_stats:incr(requests_forwarded_total)
                            end,
                            try Shard ! {arrive, Sid, Bosh, Rid, Body, Target} of
                                _ -> {queued, {Shard, Sid, Rid}}
                            catch error:badarg ->
                                    unavailable % the shard restarts, or the module stops
                            end;
                        error ->
                            {answer, mod_megaphone_bosh:encode(
                                       mod_megaphone_bosh:terminate(<<"item-not-found">>,
                                                                    <<"Session ID mismatch">>))}
                    end
            end
    end.

%% The client of Target went away: its call leaves if nobody else waits
%% for it and it has not gone into ejabberd yet.
-spec cancel(ticket(), target()) -> ok.
cancel({Shard, Sid, Rid}, Target) ->
    Shard ! {cancel, Sid, Rid, Target},
    ok.

%% Session creation, in a worker process (ejabberd's own
%% process_request/3 starts the session): refused with host-unknown when
%% 'to' names no host that serves BOSH here (ejabberd answers
%% internal-server-error); seeded after ejabberd answered.
-spec create(binary(), inet:ip_address(), inet:port_number(), non_neg_integer()) ->
          mod_megaphone_bosh:result().
create(Body, IP, Port, Rid) ->
    case served(Body) of
        false ->
            mod_megaphone_stats:incr(requests_host_unknown_total),
            {200, <<"OK">>, [{<<"Content-Type">>, ?CT_XML}],
             <<"<body type='terminate' condition='host-unknown' "
               "xmlns='http://jabber.org/protocol/httpbind'/>">>};
        true ->
            mod_megaphone_stats:incr(requests_total),
            Result = ejabberd_bosh:process_request(Body, {IP, Port}, xml),
            _ = seed_created(Result, Rid),
            Result
    end.

%% A session was created with rid Rid and a window of Requests (its
%% creation answer's 'requests'): its next rids are ordered from Rid + 1
%% on, and rids below Rid are stale.
-spec seed(binary(), pid(), non_neg_integer(), pos_integer()) -> ok.
seed(Sid, Bosh, Rid, Requests) ->
    _ = shard_call(shard_name(Sid), {seed, Sid, Bosh, Rid, Requests}),
    ok.

%% Ends BOSH session Sid, on whichever node it runs, as ejabberd_bosh:close/1
%% does (its process stops, its c2s closes: the user goes offline), without
%% waiting for it; its calls still here are answered when it is down.
-spec close_session(binary()) -> ok.
close_session(Sid) ->
    case find_session(Sid) of
        {ok, Bosh} ->
            _ = spawn(fun() -> ejabberd_bosh:close({http_bind, Bosh, {{0, 0, 0, 0}, 0}}) end),
            ok;
        error ->
            ok
    end.

%% For tests: {Cont, Answered, Skipped, #{Rid => waiting | released}}.
-spec session_state(binary()) -> {integer(), [integer()], [integer()], map()} | none.
session_state(Sid) ->
    shard_call(shard_name(Sid), {state, Sid}).

%% REQUEST ids queued or held on this node's shards, re-sent copies
%% included: one pass over every session (metrics, cached).
-spec inflight() -> non_neg_integer().
inflight() ->
    lists:sum([targets(Name) || Name <- shard_names()]).

%%%===================================================================
%%% gen_server callbacks (a shard)
%%%===================================================================
-spec init(pos_integer()) -> {ok, #shard{}}.
init(I) ->
    Table = ets:new(shard_name(I), [set, protected, named_table, {keypos, #session.sid}]),
    mod_megaphone_stats:shard_calls(I, 0),
    {ok, #shard{table = Table, index = I}}.

-spec handle_call(term(), gen_server:from(), #shard{}) -> {reply, term(), #shard{}}.
handle_call({seed, Sid, Bosh, Rid, Requests}, _From, #shard{table = T} = St) ->
    case ets:member(T, Sid) of
        true -> ok;
        false -> store(T, (new_session(Sid, Bosh, Rid))#session{
                                cont = Rid, seeded = true, requests = Requests,
                                answered = [Rid]})
    end,
    {reply, ok, St};
handle_call({state, Sid}, _From, #shard{table = T} = St) ->
    Reply = case ets:lookup(T, Sid) of
                [#session{cont = Cont, answered = A, skipped = Sk, calls = Calls}] ->
                    {Cont, A, Sk, maps:map(fun(_, #call{state = State}) -> State end, Calls)};
                [] ->
                    none
            end,
    {reply, Reply, St};
handle_call(_Request, _From, St) ->
    {reply, {error, badarg}, St}.

-spec handle_cast(term(), #shard{}) -> {noreply, #shard{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

-spec handle_info(term(), #shard{}) -> {noreply, #shard{}}.
handle_info({arrive, Sid, Bosh, Rid, Body, Target}, #shard{table = T} = St) ->
    S = case ets:lookup(T, Sid) of
            [#session{bosh = Bosh} = S0] -> S0;
            _ -> new_session(Sid, Bosh, Rid)
        end,
    {noreply, changed(St, S, pump(arrive(Rid, Body, Target, S)))};
handle_info({{megaphone, Sid, Rid, Tag}, Reply}, St) ->
    {noreply, answered_by_ejabberd(Sid, Rid, Tag, Reply, St)};
handle_info({cancel, Sid, Rid, Target}, St) ->
    {noreply, update(St, Sid, fun(S) -> cancelled(Rid, Target, S) end)};
handle_info({timeout, Timer, {order, Sid, Rid}}, St) ->
    {noreply, update(St, Sid, fun(S) -> order_timeout(Rid, Timer, S) end)};
handle_info({{session_down, Sid}, _Mon, process, _Pid, Reason}, St) ->
    {noreply, session_down(Sid, Reason, St)};
handle_info({garbage_collect, {megaphone_gc, P}, _}, St) ->
    mod_megaphone_worker:collect_again(P),
    {noreply, St};
handle_info(_Info, St) ->
    {noreply, St}.

%%%===================================================================
%%% Internal functions (a shard)
%%%===================================================================
new_session(Sid, Bosh, Rid) ->
    monitor(process, Bosh, [{tag, {session_down, Sid}}]),
    #session{sid = Sid, bosh = Bosh, cont = Rid - 1, floor = Rid}.

arrive(Rid, _Body, Target, #session{calls = Calls} = S) when is_map_key(Rid, Calls) ->
    mod_megaphone_stats:incr(requests_deduplicated_total),
    #{Rid := #call{targets = Ts} = C} = Calls,
    S#session{calls = Calls#{Rid := C#call{targets = [Target | Ts]}}};
arrive(Rid, Body, Target, #session{cont = Cont, requests = Requests} = S)
  when Rid > Cont + Requests ->
    %% Above the window: ejabberd ends the session with item-not-found at
    %% once, as it does direct; nothing to order.
    release(Rid, #call{body = Body, targets = [Target]}, S);
arrive(Rid, Body, Target, #session{cont = Cont, floor = Floor, seeded = Seeded,
                                   requests = Requests, skipped = Skipped,
                                   answered = Answered} = S) when Rid =< Cont ->
    Call = #call{body = Body, targets = [Target]},
    case lists:member(Rid, Skipped) of
        true ->
            %% the missing predecessor of rids that went without it
            release(Rid, Call, S#session{skipped = lists:delete(Rid, Skipped)});
        false ->
            %% below the first rid of a session not seen from its creation:
            %% ejabberd may still buffer it (see the module header)
            Unknown = not Seeded andalso Rid < Floor andalso Rid > Floor - 2 * Requests,
            case Unknown orelse lists:member(Rid, Answered) of
                true ->
                    release(Rid, Call, S);
                false ->
                    mod_megaphone_stats:incr(requests_stale_total),
                    reply([Target], mod_megaphone_bosh:terminate(<<"item-not-found">>,
                                                                 <<"Request ID is below the window">>)),
                    S
            end
    end;
arrive(Rid, Body, Target, #session{sid = Sid, cont = Cont, calls = Calls} = S) ->
    case Rid > Cont + 1 of
        true -> mod_megaphone_stats:incr(requests_reordered_total);
        false -> ok
    end,
    Timer = erlang:start_timer(mod_megaphone:order_timeout(), self(), {order, Sid, Rid}),
    S#session{calls = Calls#{Rid => #call{state = waiting, body = Body, targets = [Target],
                                         timer = Timer}}}.

%% Sends the request into the session: from here on it is inside
%% ejabberd, ahead of anything this shard sends the session later.
release(Rid, #call{body = Body} = C, #session{sid = Sid, bosh = Bosh, calls = Calls} = S) ->
    cancel_timer(C),
    Tag = make_ref(),
    Bosh ! mod_megaphone_bosh:sync_event({self(), {megaphone, Sid, Rid, Tag}}, Body),
    mod_megaphone_stats:incr(requests_total),
    S#session{calls = Calls#{Rid => C#call{state = released, body = undefined, tag = Tag,
                                           timer = undefined}}}.

%% Releases every rid that may go now, in rid order.
pump(#session{cont = Cont, calls = Calls, skip_to = SkipTo, skipped = Skipped} = S) ->
    Next = Cont + 1,
    case Calls of
        #{Next := #call{state = waiting} = C} ->
            pump(release(Next, C, S#session{cont = Next}));
        #{Next := #call{state = released}} ->
            pump(S#session{cont = Next}); % went early (above the window then)
        #{} ->
            case lowest_waiting(Calls) of
                M when is_integer(M), M =< SkipTo ->
                    %% M waits inside the window, so the gap is narrower
                    %% than it; at most SKIPPED rids are built in any case
                    Gap = lists:seq(max(Next, M - ?SKIPPED), M - 1),
                    pump(S#session{cont = M - 1,
                                   skipped = lists:sublist(Gap ++ Skipped, ?SKIPPED)});
                _ ->
                    S
            end
    end.

lowest_waiting(Calls) ->
    maps:fold(fun(Rid, #call{state = waiting}, Min) when Min == none; Rid < Min -> Rid;
                 (_, _, Min) -> Min
              end, none, Calls).

%% Rid waited order_timeout for its predecessor: it goes, and every rid
%% waiting below it goes first, in order.
order_timeout(Rid, Timer, #session{calls = Calls, skip_to = SkipTo} = S) ->
    case Calls of
        #{Rid := #call{state = waiting, timer = Timer} = C} ->
            mod_megaphone_stats:incr(requests_order_timeout_total),
            pump(S#session{calls = Calls#{Rid := C#call{timer = undefined}},
                           skip_to = max(SkipTo, Rid)});
        #{} ->
            S
    end.

%% The session answered a released call: every target gets the answer.
answered_by_ejabberd(Sid, Rid, Tag, Reply, #shard{table = T} = St) ->
    case ets:lookup(T, Sid) of
        [#session{calls = #{Rid := #call{state = released, tag = Tag, targets = Ts}} = Calls} = S] ->
            reply(Ts, Reply),
            St1 = changed(St, S, pump(answered(Rid, S#session{calls = maps:remove(Rid, Calls)}))),
            collect_garbage(S#session.bosh),
            St1;
        _ ->
            St % the session ended meanwhile (its targets were answered then), or a
               % reply to a copy this shard no longer tracks
    end.

cancelled(Rid, Target, #session{calls = Calls} = S) ->
    case Calls of
        #{Rid := #call{targets = Ts} = C} ->
            case {lists:delete(Target, Ts), C#call.state} of
                {[], waiting} ->
                    %% never went into ejabberd: nothing of it is left
                    cancel_timer(C),
                    pump(S#session{calls = maps:remove(Rid, Calls)});
                {Rest, _} ->
                    %% inside ejabberd: it is answered (and the answer
                    %% dropped), so a re-sent copy joins it meanwhile
                    S#session{calls = Calls#{Rid := C#call{targets = Rest}}}
            end;
        #{} ->
            S
    end.

%% The BOSH process ended: every call still here is answered as
%% process_request/3 answers a request whose session is gone.
session_down(Sid, Reason, #shard{table = T} = St) ->
    case ets:lookup(T, Sid) of
        [#session{calls = Calls}] ->
            Answer = case Reason of
                         R when R == normal; R == noproc ->
                             mod_megaphone_bosh:terminate(<<"item-not-found">>,
                                                          <<"BOSH session not found">>);
                         _ ->
                             mod_megaphone_bosh:terminate(<<"internal-server-error">>,
                                                          <<"Unexpected error">>)
                     end,
            maps:foreach(fun(_, C) -> cancel_timer(C), reply(C#call.targets, Answer) end, Calls),
            ets:delete(T, Sid),
            calls(St, St#shard.calls - map_size(Calls));
        [] ->
            St
    end.

reply(Targets, Reply) ->
    lists:foreach(fun({Link, Id, Ref}) -> Link ! {megaphone_answer, Id, Ref, Reply} end, Targets).

%% Only rids inside the window are remembered: ejabberd buffers no answer
%% for a rid above it (it ends the session).
answered(Rid, #session{cont = Cont} = S) when Rid > Cont ->
    S;
answered(Rid, #session{answered = A, requests = Requests} = S) ->
    S#session{answered = lists:sublist(lists:reverse(lists:usort([Rid | A])), Requests)}.

%% After an answer (off its timing): the session's processes above
%% gc_heap_threshold are collected (mod_megaphone_worker:collect_session/2).
collect_garbage(Bosh) ->
    case mod_megaphone:gc_heap_threshold() of
        0 -> ok;
        Threshold ->
            N = mod_megaphone_worker:collect_session(Bosh, Threshold),
            [mod_megaphone_stats:incr(gc_collections_total) || _ <- lists:seq(1, N)],
            ok
    end.

cancel_timer(#call{timer = undefined}) -> ok;
cancel_timer(#call{timer = Timer}) ->
    _ = erlang:cancel_timer(Timer),
    ok.

store(T, S) ->
    true = ets:insert(T, S).

update(#shard{table = T} = St, Sid, Fun) ->
    case ets:lookup(T, Sid) of
        [S] -> changed(St, S, Fun(S));
        [] -> St
    end.

%% Stores Session (Old before) and keeps the shard's call count.
changed(#shard{table = T} = St, #session{calls = Old}, #session{calls = New} = Session) ->
    store(T, Session),
    case map_size(New) - map_size(Old) of
        0 -> St;
        D -> calls(St, St#shard.calls + D)
    end.

calls(#shard{index = I} = St, N) ->
    mod_megaphone_stats:shard_calls(I, N),
    St#shard{calls = N}.

%%%===================================================================
%%% Internal functions (callers)
%%%===================================================================
shard_name(I) when is_integer(I) ->
    list_to_atom("mod_megaphone_sequencer_" ++ integer_to_list(I));
shard_name(Sid) ->
    element(1, shard_of(Sid)).

shard_call(Shard, Request) ->
    try gen_server:call(Shard, Request, ?CALL_TIMEOUT)
    catch exit:_ -> unavailable % the module stops, or the shard is stuck
    end.

targets(Table) ->
    try ets:foldl(fun(#session{calls = Calls}, N) ->
                          maps:fold(fun(_, #call{targets = Ts}, M) -> M + length(Ts) end, N, Calls)
                  end, 0, Table)
    catch error:badarg -> 0 % shard restarting
    end.

served(Body) ->
    try
        case fxml_stream:parse_element(Body) of
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
        end
    catch _:_ ->
            true % no ejabberd here (tests): let the handler decide
    end.

seed_created({200, _, _, RespBody}, Rid) when Rid > 0 ->
    Bin = iolist_to_binary(RespBody),
    case answer_attr(Bin, <<"sid">>) of
        {ok, Sid} ->
            case find_session(Sid) of
                {ok, Bosh} when node(Bosh) == node() ->
                    seed(Sid, Bosh, Rid, window(answer_attr(Bin, <<"requests">>)));
                _ -> ok
            end;
        error -> ok
    end;
seed_created(_, _) ->
    ok.

%% The value of attribute Name of a creation answer's <body/> (ejabberd
%% writes attributes as name='value'; the first match is the body's own,
%% since they come before any child element).
answer_attr(Bin, Name) ->
    case binary:match(Bin, <<" ", Name/binary, "='">>) of
        {Pos, Len} ->
            Start = Pos + Len,
            case binary:match(Bin, <<"'">>, [{scope, {Start, byte_size(Bin) - Start}}]) of
                {End, _} -> {ok, binary:part(Bin, Start, End - Start)};
                nomatch -> error
            end;
        nomatch -> error
    end.

window({ok, Requests}) ->
    try binary_to_integer(Requests) of
        N when N >= 1 -> min(N, ?MAX_REQUESTS);
        _ -> ?DEFAULT_REQUESTS
    catch error:badarg -> ?DEFAULT_REQUESTS
    end;
window(error) ->
    ?DEFAULT_REQUESTS.

find_session(Sid) ->
    try mod_bosh:find_session(Sid) of
        {ok, Pid} when is_pid(Pid) -> {ok, Pid};
        _ -> error
    catch _:_ ->
            error % mod_bosh not running (module stop, tests)
    end.
