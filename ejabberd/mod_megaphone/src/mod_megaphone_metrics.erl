%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_metrics.erl
%%% Purpose : The expensive part of a metrics scrape (mod_megaphone_prometheus):
%%%           one pass over every local BOSH session, c2s session and running
%%%           request, kept for metrics_cache_time.
%%%
%%% The counters of mod_megaphone_stats cost nothing to read. What costs is
%%% what grows with the users: the number and the memory of ejabberd's BOSH
%%% session processes and c2s processes (one erlang:process_info/2 each) and
%%% the REQUEST ids waiting for an answer. On a node with a million
%%% users that is two million process_info calls, so this process does the
%%% pass at most once per metrics_cache_time and hands the same sample to
%%% every scrape meanwhile; concurrent scrapes queue on it instead of each
%%% walking the tables (the cost is bounded by the option, not by the
%%% number of Prometheus servers). The pass reads the tables in chunks of
%%% pids (ets:select/3 with a match spec): it never copies a table into a
%%% list, nor a whole row out of it.
%%%
%%% Where ejabberd keeps the sessions (its default mnesia backends):
%%%   bosh     mod_bosh_mnesia, local_content ram table {bosh, Sid, Ts, Pid}
%%%            (every node has a row for every session of the cluster)
%%%   session  ejabberd_sm_mnesia, ram table #session{sid = {Ts, Pid}, ...}
%%% Rows whose process lives on another node are skipped. With another
%%% backend (sql, redis) the table does not exist here: the sample says
%%% undefined and the scrape leaves those metrics out rather than say 0.
%%%----------------------------------------------------------------------
-module(mod_megaphone_metrics).

-behaviour(gen_server).

-export([start_link/0, sample/0, take_sample/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLES, #{bosh => bosh, session => session,
                  registry => mod_megaphone_inflight}).
%% How long a scrape waits for a pass, at most (docs/metrics.md has what
%% a pass costs).
-define(CALL_TIMEOUT, 20000).
-define(CHUNK, 1000).

-type sample() :: #{bosh_sessions := non_neg_integer() | undefined,
                    bosh_memory_bytes := non_neg_integer() | undefined,
                    c2s_sessions := non_neg_integer() | undefined,
                    c2s_memory_bytes := non_neg_integer() | undefined,
                    requests_inflight := non_neg_integer() | undefined,
                    duration_seconds := float(),
                    age_seconds := float()}.
-export_type([sample/0]).

%%%===================================================================
%%% API
%%%===================================================================
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% The last sample if younger than metrics_cache_time, else a new one.
-spec sample() -> sample().
sample() ->
    gen_server:call(?MODULE, sample, ?CALL_TIMEOUT).

%% One pass over the tables named in Tables (tests give their own).
-spec take_sample(#{bosh := atom(), session := atom(), registry := atom()}) -> sample().
take_sample(#{bosh := Bosh, session := Session, registry := Registry}) ->
    T0 = erlang:monotonic_time(),
    {BoshN, BoshMem} = memory_of(Bosh, [{{bosh, '_', '_', '$1'}, [], ['$1']}]),
    {C2sN, C2sMem} = memory_of(Session, [{{session, {'_', '$1'}, '_', '_', '_', '_'}, [], ['$1']}]),
    %% session creations on workers, and every other request in the
    %% sequencer's shards
    Inflight = case select_fold(Registry, [{{'_', '_', '$1'}, [], ['$1']}],
                                fun(Rs, N) -> N + length(Rs) end, 0) of
                   undefined -> undefined;
                   OnWorkers -> OnWorkers + mod_megaphone_sequencer:inflight()
               end,
    #{bosh_sessions => BoshN, bosh_memory_bytes => BoshMem,
      c2s_sessions => C2sN, c2s_memory_bytes => C2sMem,
      requests_inflight => Inflight,
      duration_seconds => seconds(erlang:monotonic_time() - T0),
      age_seconds => 0.0}.

%%%===================================================================
%%% gen_server callbacks
%%%===================================================================
-spec init([]) -> {ok, undefined}.
init([]) ->
    {ok, undefined}.

-spec handle_call(sample, gen_server:from(), State) -> {reply, sample(), State}
              when State :: undefined | {integer(), sample()}.
handle_call(sample, _From, State) ->
    Now = erlang:monotonic_time(),
    MaxAge = erlang:convert_time_unit(mod_megaphone:metrics_cache_time(),
                                      millisecond, native),
    case State of
        {Taken, Sample} when Now - Taken < MaxAge ->
            {reply, Sample#{age_seconds := seconds(Now - Taken)}, State};
        _ ->
            Sample = take_sample(?TABLES),
            %% The pass left garbage of two million tuples on this heap.
            erlang:garbage_collect(),
            {reply, Sample, {erlang:monotonic_time(), Sample}}
    end.

-spec handle_cast(term(), State) -> {noreply, State}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), State) -> {noreply, State}.
handle_info(_Info, State) ->
    {noreply, State}.

%%%===================================================================
%%% Internal functions
%%%===================================================================
%% {local processes, their memory in bytes} of the pids that MatchSpec
%% selects; a process that ended since its row was read counts in neither.
memory_of(Table, MatchSpec) ->
    Add = fun(Pid, {N, Bytes} = Acc) when node(Pid) == node() ->
                  case erlang:process_info(Pid, memory) of
                      {memory, M} -> {N + 1, Bytes + M};
                      undefined -> Acc
                  end;
             (_Remote, Acc) ->
                  Acc
          end,
    case select_fold(Table, MatchSpec, Add, {0, 0}) of
        undefined -> {undefined, undefined};
        Result -> Result
    end.

%% Folds Fun over what MatchSpec selects, ?CHUNK rows at a time (only the
%% selected field is copied out of the table, and never the whole table at
%% once); undefined when the table does not exist (another backend, a
%% module not started) or is deleted during the pass.
select_fold(Table, MatchSpec, Fun, Acc0) ->
    try fold_chunks(ets:select(Table, MatchSpec, ?CHUNK), Fun, Acc0)
    catch error:badarg -> undefined
    end.

fold_chunks('$end_of_table', _Fun, Acc) ->
    Acc;
fold_chunks({Items, Cont}, Fun, Acc) ->
    fold_chunks(ets:select(Cont), Fun, lists:foldl(Fun, Acc, Items)).

seconds(Native) ->
    erlang:convert_time_unit(Native, native, microsecond) / 1.0e6.
