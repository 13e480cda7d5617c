%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sup.erl
%%% Purpose : Supervision of mod_megaphone. What depends on what:
%%%
%%%   ejabberd_gen_mod_sup            (ejabberd: one_for_one, 10 restarts in 1 s)
%%%   └ mod_megaphone_sup             one_for_one, permanent child
%%%     ├ mod_megaphone_shards_sup    one_for_one
%%%     │ └ mod_megaphone_sequencer_1..16  (the requests of existing sessions)
%%%     ├ mod_megaphone_front_sup     rest_for_one: the link side
%%%     │ ├ mod_megaphone_registry    running session creations; links
%%%     │ ├ mod_megaphone_links_sup   simple_one_for_one, temporary links
%%%     │ └ mod_megaphone_listener    listen socket and acceptor
%%%     └ mod_megaphone_metrics       sample cache of the metrics scrape
%%%
%%% * 16 shards on every node (the same names on every node, so that a
%%%   link finds the shard of a sid on the session's node). Links send them
%%%   requests and monitor them: when a shard ends, the links answer its
%%%   requests 503 (the ECM re-sends them) and send later ones to the
%%%   restarted shard. So a shard crash restarts that shard only, and even a
%%%   crash loop of the shards (their supervisor giving up) never reaches
%%%   the links.
%%% * The links keep the rows of their session creations in the registry's
%%%   table (it dies with its owner): the registry first, then the links,
%%%   then the listener that starts them (rest_for_one). A link crash
%%%   restarts nothing (temporary: its ECM reconnects); a listener crash
%%%   restarts the listener only; a registry crash closes every link (with
%%%   GOAWAY).
%%% * The metrics cache depends on nothing.
%%% Stopping goes in reverse: the metrics, the listener, every link (GOAWAY,
%%% close), the registry, then the shards.
%%%
%%% Restart limits. ejabberd_gen_mod_sup allows 10 restarts in 1 s for
%%% every module of every host and stops them all beyond that. So each
%%% level here absorbs a crash loop of the level below (10 restarts in
%%% 10 s for each child supervisor, 5 in 10 s here); this one is
%%% 'permanent' there (a 'transient' child is never restarted after the
%%% 'shutdown' it exits with); and within a crash loop start_link/0 waits
%%% until MIN_RESTART_INTERVAL after its previous start, so at most 3 of
%%% ejabberd's 10 restarts in its window come from this module.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sup).

-behaviour(supervisor).

-export([start_link/0, start_link_child/1, start_link_link/1,
         restart_listener/0, forget_start/0]).
-export([init/1]).

-define(SHARDS_SUP, mod_megaphone_shards_sup).
-define(FRONT_SUP, mod_megaphone_front_sup).
-define(LINKS_SUP, mod_megaphone_links_sup).
-define(STARTED_KEY, {?MODULE, started}).
-define(MIN_RESTART_INTERVAL, 1000).

%%%===================================================================
%%% API
%%%===================================================================
%% The module's supervisor (started by ejabberd_gen_mod_sup, see above).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    brake(),
    supervisor:start_link({local, ?MODULE}, ?MODULE, top).

%% One of the supervisors under it.
-spec start_link_child(shards | front | links) -> {ok, pid()} | {error, term()}.
start_link_child(shards) ->
    supervisor:start_link({local, ?SHARDS_SUP}, ?MODULE, shards);
start_link_child(front) ->
    supervisor:start_link({local, ?FRONT_SUP}, ?MODULE, front);
start_link_child(links) ->
    supervisor:start_link({local, ?LINKS_SUP}, ?MODULE, links).

%% Starts one link process for an accepted socket (the caller still owns
%% the socket and hands it over with mod_megaphone_link:take_socket/2).
-spec start_link_link(inet:socket()) -> {ok, pid()} | {error, term()}.
start_link_link(Socket) ->
    supervisor:start_child(?LINKS_SUP, [Socket]).

-spec restart_listener() -> ok | {error, term()}.
restart_listener() ->
    case supervisor:terminate_child(?FRONT_SUP, mod_megaphone_listener) of
        ok ->
            case supervisor:restart_child(?FRONT_SUP, mod_megaphone_listener) of
                {ok, _} -> ok;
                {error, _} = Err -> Err
            end;
        {error, _} = Err ->
            Err
    end.

%% The module stopped (or failed to start): its next start is no restart
%% of a crash loop, it does not wait.
-spec forget_start() -> ok.
forget_start() ->
    _ = persistent_term:erase(?STARTED_KEY),
    ok.

%%%===================================================================
%%% supervisor callbacks
%%%===================================================================
-spec init(top | shards | front | links) ->
          {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(top) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10},
          [sup(?SHARDS_SUP, shards), sup(?FRONT_SUP, front),
           worker(mod_megaphone_metrics, [])]}};
init(shards) ->
    Shards = [(worker(mod_megaphone_sequencer, [I]))#{id => Name}
              || {I, Name} <- lists:enumerate(mod_megaphone_sequencer:shard_names())],
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, Shards}};
init(front) ->
    {ok, {#{strategy => rest_for_one, intensity => 10, period => 10},
          [worker(mod_megaphone_registry, []), sup(?LINKS_SUP, links),
           worker(mod_megaphone_listener, [])]}};
init(links) ->
    %% temporary: a link that dies is gone; its ECM reconnects. (Temporary
    %% children are never restarted, so they never count against the
    %% intensity.)
    Link = #{id => mod_megaphone_link,
             start => {mod_megaphone_link, start_link, []},
             restart => temporary, shutdown => 2000, type => worker,
             modules => [mod_megaphone_link]},
    {ok, {#{strategy => simple_one_for_one, intensity => 0, period => 1},
          [Link]}}.

%%%===================================================================
%%% Internal functions
%%%===================================================================
sup(Name, Which) ->
    #{id => Name, start => {?MODULE, start_link_child, [Which]},
      restart => permanent, shutdown => infinity, type => supervisor,
      modules => [?MODULE]}.

worker(Mod, Args) ->
    #{id => Mod, start => {Mod, start_link, Args},
      restart => permanent, shutdown => 5000, type => worker,
      modules => [Mod]}.

%% Within a crash loop, waits until MIN_RESTART_INTERVAL after the
%% previous start (see the header). Written at a start only (a
%% persistent_term update is costly, a start is rare).
brake() ->
    Now = erlang:monotonic_time(millisecond),
    case persistent_term:get(?STARTED_KEY, undefined) of
        Last when is_integer(Last), Now - Last < ?MIN_RESTART_INTERVAL ->
            timer:sleep(?MIN_RESTART_INTERVAL - (Now - Last));
        _ ->
            ok
    end,
    persistent_term:put(?STARTED_KEY, erlang:monotonic_time(millisecond)).
