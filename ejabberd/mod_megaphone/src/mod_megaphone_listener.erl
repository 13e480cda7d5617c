%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_listener.erl
%%% Purpose : Owns the link listen socket and runs the acceptor.
%%%
%%% The socket is opened in init/1, so a port that cannot be bound fails
%%% the module start at once ({error, {listen, Reason}}) instead of later.
%%% The acceptor is a linked loop: accept, start a link under the links
%%% supervisor, hand the socket over. The listen socket dies with this
%%% process, which ends the acceptor. A handoff that fails ends the new
%%% link at once (as ejabberd_listener:start_connection/5 does), and a
%%% link never handed its socket ends after handshake_timeout
%%% (mod_megaphone_link): either way its max_pending_links slot is freed.
%%%----------------------------------------------------------------------
-module(mod_megaphone_listener).

-behaviour(gen_server).

-export([start_link/0]).
%% The acceptor's handoff of one accepted socket (exported for the tests).
-export([hand_off/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include("logger.hrl").

-record(state, {socket :: inet:socket(), acceptor :: pid()}).

%%%===================================================================
%%% API
%%%===================================================================
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%%%===================================================================
%%% gen_server callbacks
%%%===================================================================
-spec init([]) -> {ok, #state{}} | {stop, {listen, term()}}.
init([]) ->
    process_flag(trap_exit, true),
    #{ip := IP, port := Port} = mod_megaphone:config(),
    Opts = [binary, {ip, IP}, {active, false}, {reuseaddr, true},
            {backlog, 1024}, {nodelay, true}, {keepalive, true}
            | family(IP)],
    case gen_tcp:listen(Port, Opts) of
        {ok, Socket} ->
            Acceptor = spawn_link(fun() -> accept_loop(Socket) end),
            {ok, #state{socket = Socket, acceptor = Acceptor}};
        {error, Why} ->
            {stop, {listen, Why}}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, {error, badarg}, #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({'EXIT', Pid, Reason}, #state{acceptor = Pid} = State) ->
    %% The acceptor only dies on a listen socket error: let the supervisor
    %% open a new socket.
    {stop, {acceptor_down, Reason}, State};
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{socket = Socket}) ->
    _ = gen_tcp:close(Socket),
    ok.

%%%===================================================================
%%% Internal functions
%%%===================================================================
family({_, _, _, _}) -> [inet];
family(_) -> [inet6].

accept_loop(LSocket) ->
    case gen_tcp:accept(LSocket) of
        {ok, Socket} ->
            case pending_full() of
                false ->
                    hand_off(Socket);
                true ->
                    %% Pre-auth connections cost a process and a file each:
                    %% past max_pending_links (a flood, a scan) new ones are
                    %% closed before HELLO; each pending one has at most
                    %% handshake_timeout left.
                    mod_megaphone_stats:incr(links_refused_total),
                    mod_megaphone_stats:incr(links_refused_pending_total),
                    gen_tcp:close(Socket)
            end,
            accept_loop(LSocket);
        {error, closed} ->
            exit(normal);
        {error, Why} when Why == emfile; Why == enfile ->
            %% Out of file descriptors: back off instead of spinning.
            ?ERROR_MSG("mod_megaphone cannot accept links: ~ts",
                       [inet:format_error(Why)]),
            timer:sleep(100),
            accept_loop(LSocket);
        {error, Why} ->
            %% A peer that reset before accept() completed, and the like.
            ?DEBUG("mod_megaphone accept failed: ~p", [Why]),
            accept_loop(LSocket)
    end.

%% Whether max_pending_links connections are in their handshake: the link
%% processes alive, less the authenticated ones (links_active). One that
%% is ending may count a moment longer: the bound errs on the safe side.
pending_full() ->
    try
        #{max_pending_links := Max} = mod_megaphone:config(),
        Links = proplists:get_value(active, supervisor:count_children(mod_megaphone_links_sup), 0),
        Links - mod_megaphone_stats:value(links_active) >= Max
    catch _:_ ->
            false % module stopping: the listener goes too
    end.

%% Starts a link for Socket and makes it the socket's owner; Socket is
%% closed if that fails. Returns the link, or error.
-spec hand_off(inet:socket()) -> {ok, pid()} | error.
hand_off(Socket) ->
    case mod_megaphone_sup:start_link_link(Socket) of
        {ok, Pid} ->
            case gen_tcp:controlling_process(Socket, Pid) of
                ok ->
                    ok = mod_megaphone_link:take_socket(Pid, Socket),
                    {ok, Pid};
                {error, Why} ->
                    %% The link would wait for a socket that never comes.
                    _ = supervisor:terminate_child(mod_megaphone_links_sup, Pid),
                    _ = gen_tcp:close(Socket),
                    mod_megaphone_stats:incr(links_refused_total),
                    ?WARNING_MSG("mod_megaphone link refused: the socket could not be "
                                 "handed to its link process (~p)", [Why]),
                    error
            end;
        {error, Why} ->
            ?ERROR_MSG("mod_megaphone cannot start a link process: ~p", [Why]),
            _ = gen_tcp:close(Socket),
            error
    end.
