%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sup.erl
%%% Purpose : Supervision of mod_megaphone, ordered by dependency
%%%           (rest_for_one): the registry ETS table, the sequencer shards
%%%           (mod_megaphone_sequencer, one per scheduler), then the links,
%%%           then the listener that starts links, then the metrics sample
%%%           cache (mod_megaphone_metrics). Stopping goes in
%%%           reverse: stop accepting, GOAWAY + close every link, drop the
%%%           shards and the table.
%%%
%%% The same module also runs the links supervisor (simple_one_for_one of
%%% temporary mod_megaphone_link children), as ranch_conns_sup does.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sup).

-behaviour(supervisor).

-export([start_link/0, start_link_links/0, start_link_link/1,
         restart_listener/0]).
-export([init/1]).

-define(LINKS_SUP, mod_megaphone_links_sup).

%%%===================================================================
%%% API
%%%===================================================================
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, top).

-spec start_link_links() -> {ok, pid()} | {error, term()}.
start_link_links() ->
    supervisor:start_link({local, ?LINKS_SUP}, ?MODULE, links).

%% Starts one link process for an accepted socket (the caller still owns
%% the socket and hands it over with mod_megaphone_link:take_socket/2).
-spec start_link_link(inet:socket()) -> {ok, pid()} | {error, term()}.
start_link_link(Socket) ->
    supervisor:start_child(?LINKS_SUP, [Socket]).

-spec restart_listener() -> ok | {error, term()}.
restart_listener() ->
    case supervisor:terminate_child(?MODULE, mod_megaphone_listener) of
        ok ->
            case supervisor:restart_child(?MODULE, mod_megaphone_listener) of
                {ok, _} -> ok;
                {error, _} = Err -> Err
            end;
        {error, _} = Err ->
            Err
    end.

%%%===================================================================
%%% supervisor callbacks
%%%===================================================================
-spec init(top | links) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(top) ->
    Registry = #{id => mod_megaphone_registry,
                 start => {mod_megaphone_registry, start_link, []},
                 restart => permanent, shutdown => 5000, type => worker,
                 modules => [mod_megaphone_registry]},
    Shards = [#{id => Name,
                start => {mod_megaphone_sequencer, start_link, [I]},
                restart => permanent, shutdown => 5000, type => worker,
                modules => [mod_megaphone_sequencer]}
              || {I, Name} <- lists:enumerate(mod_megaphone_sequencer:shard_names())],
    Links = #{id => ?LINKS_SUP,
              start => {?MODULE, start_link_links, []},
              restart => permanent, shutdown => infinity, type => supervisor,
              modules => [?MODULE]},
    Listener = #{id => mod_megaphone_listener,
                 start => {mod_megaphone_listener, start_link, []},
                 restart => permanent, shutdown => 5000, type => worker,
                 modules => [mod_megaphone_listener]},
    %% Last: nothing depends on it, so its restart restarts nothing else.
    Metrics = #{id => mod_megaphone_metrics,
                start => {mod_megaphone_metrics, start_link, []},
                restart => permanent, shutdown => 5000, type => worker,
                modules => [mod_megaphone_metrics]},
    {ok, {#{strategy => rest_for_one, intensity => 10, period => 10},
          [Registry | Shards] ++ [Links, Listener, Metrics]}};
init(links) ->
    %% temporary: a link that dies is gone; its ECM reconnects.
    Link = #{id => mod_megaphone_link,
             start => {mod_megaphone_link, start_link, []},
             restart => temporary, shutdown => 2000, type => worker,
             modules => [mod_megaphone_link]},
    {ok, {#{strategy => simple_one_for_one, intensity => 0, period => 1},
          [Link]}}.
