%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_registry.erl
%%% Purpose : Owner of the node-global tables of running session
%%%           creations, recent creation answers and authenticated links.
%%%
%%% Row: {Key, WorkerPid, [Recipient]}. A worker runs one session
%%% creation (requests of existing sessions have no process: see
%%% mod_megaphone_sequencer). A copy of a creation re-sent by an ECM (its
%%% first answer lost with a link) has the same key (creation_key/3): it
%%% attaches to the running worker, or gets the answer kept for a while
%%% after it (created/1), so the client gets one session, not two.
%%%
%%% So every running worker has exactly one row, and whoever deletes it
%%% owns the end of that worker: the worker itself (take, it answers),
%%% the CANCEL of its last copy (cancel, the link stops it) or a link that
%%% saw it die (purge). The table size is part of the requests_inflight
%%% gauge.
%%%
%%% No call goes through this process: links and workers update the public
%%% table directly. Every read-modify-write is a compare-and-swap
%%% (ets:select_replace/select_delete matching the whole old row), so
%%% updates from many links and the worker's final take never interleave.
%%%
%%% It also keeps the authenticated links (the links_active gauge): a link
%%% registers itself once, when its handshake succeeds (link_up/1, a call,
%%% so it is counted before WELCOME goes out), and this process monitors
%%% it and drops it when it ends, however it ends (a killed link runs no
%%% terminate/2, and a gauge it decremented itself would stay too high,
%%% and make max_pending_links count too few pending links).
%%%----------------------------------------------------------------------
-module(mod_megaphone_registry).

-behaviour(gen_server).

-export([start_link/0, insert_new/3, attach/2, take/2, cancel/2, detach/2,
         purge/2, is_registered/2, count/0, link_up/1, links/0,
         creation_key/3, created/1, remember_created/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, mod_megaphone_inflight).
-define(LINKS, mod_megaphone_links).
%% Answers of recent session creations, for a re-sent copy (an ECM re-sends
%% at once when a link closes): each lives one to two CREATED_AGE periods,
%% and at most MAX_CREATED are kept (a flood of creations cannot grow the
%% table).
-define(CREATED, mod_megaphone_created).
-define(CREATED_AGE, 5000).
-define(MAX_CREATED, 20000).

-type key() :: {binary(), pos_integer()} |
               {create, inet:ip_address(), non_neg_integer(), non_neg_integer()}.
-type recipient() :: mod_megaphone_worker:recipient().
-export_type([key/0]).

%%%===================================================================
%%% API
%%%===================================================================
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% Registers Worker as the one running Key; false when Key already runs.
-spec insert_new(key(), pid(), recipient()) -> boolean().
insert_new(Key, Worker, Recipient) ->
    ets:insert_new(?TABLE, {Key, Worker, [Recipient]}).

%% Adds Recipient to the running worker of Key, if any.
-spec attach(key(), recipient()) -> {ok, pid()} | not_found.
attach(Key, Recipient) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Worker, Rs} = Old] ->
            case cas(Old, {Key, Worker, [Recipient | Rs]}) of
                true -> {ok, Worker};
                false -> attach(Key, Recipient)
            end;
        [] ->
            not_found
    end.

%% Removes Key if Worker still runs it, and returns its recipients.
-spec take(key(), pid()) -> [recipient()].
take(Key, Worker) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Worker, Rs} = Old] ->
            case ets:select_delete(?TABLE, [{Old, [], [true]}]) of
                1 -> Rs;
                0 -> take(Key, Worker)
            end;
        _ ->
            []
    end.

%% CANCEL of one copy: returns {stop, Worker} when Recipient was the only
%% one (the row is gone then; see mod_megaphone_worker:cancel/1), ok
%% otherwise.
-spec cancel(key(), recipient()) -> {stop, pid()} | ok.
cancel(Key, Recipient) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Worker, [Recipient]} = Old] ->
            case ets:select_delete(?TABLE, [{Old, [], [true]}]) of
                1 -> {stop, Worker};
                0 -> cancel(Key, Recipient)
            end;
        [{Key, _, _} = Old] ->
            case remove(Old, Recipient) of
                true -> ok;
                false -> cancel(Key, Recipient)
            end;
        [] ->
            ok
    end.

%% A link went away: drop its recipient, never stop the worker (its
%% answer stays usable for a re-sent copy on another link).
-spec detach(key(), recipient()) -> ok.
detach(Key, Recipient) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, _, _} = Old] ->
            case remove(Old, Recipient) of
                true -> ok;
                false -> detach(Key, Recipient)
            end;
        [] ->
            ok
    end.

%% The worker of Key died without answering: drops its row (whatever its
%% recipients), so a re-sent copy starts afresh instead of attaching to a
%% dead worker. True when the row was still Worker's.
-spec purge(key(), pid()) -> boolean().
purge(Key, Worker) ->
    ets:select_delete(?TABLE, [{{Key, Worker, '_'}, [], [true]}]) == 1.

%% Whether Worker is the registered worker of Key (a worker that never
%% got go/abandon from its link checks this before it calls ejabberd).
-spec is_registered(key(), pid()) -> boolean().
is_registered(Key, Worker) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Worker, _}] -> true;
        _ -> false
    end.

%% Running workers on this node (0 when the module is not running).
-spec count() -> non_neg_integer().
count() ->
    case ets:info(?TABLE, size) of
        undefined -> 0;
        N -> N
    end.

%% Link (authenticated now) counts in links/0 until its process ends.
-spec link_up(pid()) -> ok.
link_up(Link) ->
    gen_server:call(?MODULE, {link_up, Link}).

%% Authenticated links alive on this node (0 when the module is not running).
-spec links() -> non_neg_integer().
links() ->
    case ets:info(?LINKS, size) of
        undefined -> 0;
        N -> N
    end.

%% The key of a session creation: a copy re-sent by an ECM (after a link
%% dropped its answer) is the same body from the same client address.
-spec creation_key(inet:ip_address(), non_neg_integer(), binary()) -> key().
creation_key(IP, Rid, Body) ->
    {create, IP, Rid, erlang:phash2(Body)}.

%% The answer ejabberd gave a session creation of Key lately, if any: a
%% re-sent copy gets it again (the same session) instead of a second one.
-spec created(key()) -> {ok, term()} | none.
created(Key) ->
    try ets:lookup(?CREATED, Key) of
        [{Key, Answer, _Generation}] -> {ok, Answer};
        [] -> none
    catch error:badarg -> none % module stopping
    end.

-spec remember_created(key(), mod_megaphone_bosh:result()) -> ok.
remember_created(Key, {Status, Reason, Headers, Body}) ->
    %% one binary: ejabberd's answer is a deep iolist, which ETS would copy
    %% cell by cell (about 4 KB a creation measured, against its ~1 KB text)
    Answer = {Status, Reason, Headers, iolist_to_binary(Body)},
    try
        case ets:info(?CREATED, size) < ?MAX_CREATED of
            true ->
                [{generation, G}] = ets:lookup(?CREATED, generation),
                ets:insert(?CREATED, {Key, Answer, G});
            false ->
                false
        end
    catch error:badarg -> false % module stopping
    end,
    ok.

%%%===================================================================
%%% gen_server callbacks
%%%===================================================================
-spec init([]) -> {ok, undefined}.
init([]) ->
    _ = ets:new(?TABLE, [set, public, named_table,
                         {read_concurrency, true}, {write_concurrency, true}]),
    _ = ets:new(?LINKS, [set, protected, named_table]),
    _ = ets:new(?CREATED, [set, public, named_table, {write_concurrency, true}]),
    ets:insert(?CREATED, {generation, 0}),
    erlang:send_after(?CREATED_AGE, self(), forget_created),
    {ok, undefined}.

-spec handle_call(term(), gen_server:from(), undefined) -> {reply, ok | {error, badarg}, undefined}.
handle_call({link_up, Link}, _From, State) ->
    case ets:insert_new(?LINKS, {Link}) of
        true -> _ = monitor(process, Link, [{tag, megaphone_link_down}]);
        false -> ok
    end,
    {reply, ok, State};
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), undefined) -> {noreply, undefined}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), undefined) -> {noreply, undefined}.
handle_info(forget_created, State) ->
    %% rows of the generation before the current one go; the counter row
    %% ({generation, G}) has no third element and stays
    [{generation, G}] = ets:lookup(?CREATED, generation),
    ets:insert(?CREATED, {generation, G + 1}),
    _ = ets:select_delete(?CREATED, [{{'_', '_', '$1'}, [{'<', '$1', G}], [true]}]),
    erlang:send_after(?CREATED_AGE, self(), forget_created),
    {noreply, State};
handle_info({megaphone_link_down, _Mon, process, Link, _Reason}, State) ->
    true = ets:delete(?LINKS, Link),
    {noreply, State};
handle_info(_Info, State) ->
    {noreply, State}.

%%%===================================================================
%%% Internal functions
%%%===================================================================
remove({Key, Worker, Rs} = Old, Recipient) ->
    case lists:member(Recipient, Rs) of
        true -> cas(Old, {Key, Worker, lists:delete(Recipient, Rs)});
        false -> true
    end.

%% Replaces the row Old by New only if the row is still exactly Old. The
%% row's only atom is 'new' (never a match variable such as '_' or '$1'),
%% so it is a literal match pattern.
cas(Old, New) ->
    ets:select_replace(?TABLE, [{Old, [], [{const, New}]}]) == 1.
