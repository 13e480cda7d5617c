%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_worker.erl
%%% Purpose : One process per session creation (ejabberd's own
%%%           process_request/3 starts the session, through
%%%           mod_megaphone_sequencer:create/4), which sends the RESPONSE to
%%%           every recipient; and the answer frames and the post-answer
%%%           garbage collection that the links and the sequencer share.
%%%
%%% Requests of existing sessions have no process: mod_megaphone_sequencer
%%% hands them to the session and the link writes the answer.
%%%
%%% A recipient is {LinkPid, Socket, Id, Ref}. For each live recipient the
%%% worker first tells the link the id is done, then writes the RESPONSE
%%% frame itself (mod_megaphone_transport:send/2: one call per frame,
%%% atomic on TCP and on TLS). In that order the link never sees a reused
%%% id while the old one is still on its books.
%%%
%%% Every worker is registered in mod_megaphone_registry before it starts
%%% (a unique key): it waits for 'go' (registered) or 'abandon' from its
%%% link. At the end it takes its row, which yields every recipient. If
%%% neither comes (the link died between starting the worker and telling
%%% it), the worker looks itself up after GO_TIMEOUT: registered, it runs;
%%% not registered, it ends without calling ejabberd.
%%%
%%% Workers are unlinked; each link monitors the workers of its ids. A
%%% worker that dies without answering is answered for by those links with
%%% failure/1 (mod_megaphone_link).
%%%
%%% Session garbage: ejabberd's session processes do their login work in a
%%% burst and then sit idle on a heap sized for it, and an idle process
%%% never collects. After each answer of a session, the sequencer (on the
%%% session's node) collects its BOSH process and its c2s (in ejabberd
%%% 23.01 the one proc_lib process monitoring the BOSH process) where their
%%% heap is above gc_heap_threshold words, asynchronously.
%%%----------------------------------------------------------------------
-module(mod_megaphone_worker).

-export([start/2, start/3, go/1, abandon/1, cancel/1, failure/1, response/2, for_link/2]).
-export([collect_session/2, collect_again/1, session_processes/1]).

-include("logger.hrl").

-type recipient() :: {pid(), mod_megaphone_transport:socket(), non_neg_integer(), reference()}.
-export_type([recipient/0]).

%% Workers only wait; the defaults would keep them larger than needed.
-define(SPAWN_OPTS, [{fullsweep_after, 0}, {min_heap_size, 233}]).
%% If the link dies between spawn and go: run if registered, else end.
-define(GO_TIMEOUT, 5000).
-define(TERMINATE_BODY,
        <<"<body type='terminate' condition='internal-server-error' "
          "xmlns='http://jabber.org/protocol/httpbind'/>">>).

%%%===================================================================
%%% API
%%%===================================================================
%% Starts a worker for Key; it waits for go/1 or abandon/1.
-spec start(mod_megaphone_codec:frame(), mod_megaphone_registry:key()) -> pid().
start(Request, Key) ->
    start(Request, Key, ?GO_TIMEOUT).

%% start/2 with another wait for go/abandon (tests).
-spec start(mod_megaphone_codec:frame(), mod_megaphone_registry:key(), timeout()) -> pid().
start(Request, Key, GoTimeout) ->
    spawn_opt(fun() -> init(Request, Key, GoTimeout) end, ?SPAWN_OPTS).

-spec go(pid()) -> ok.
go(Worker) ->
    Worker ! go,
    ok.

-spec abandon(pid()) -> ok.
abandon(Worker) ->
    Worker ! abandon,
    ok.

%% CANCEL of the last copy (its registry row is gone): a worker that has
%% not been told to go ends without calling ejabberd; one that runs
%% finishes the call, and its answer is dropped.
-spec cancel(pid()) -> ok.
cancel(Worker) ->
    Worker ! megaphone_cancel,
    ok.

%% The RESPONSE for a request whose BOSH call failed or whose worker died:
%% 500 with a BOSH terminate body, so the client sees a proper BOSH error.
-spec failure(non_neg_integer()) -> mod_megaphone_codec:frame().
failure(Id) ->
    #{type => response, id => Id, status => 500,
      content_type => <<"text/xml; charset=utf-8">>,
      body => ?TERMINATE_BODY}.

%% The RESPONSE frame of Id for a BOSH answer. An answer over
%% max_frame_size would make the ECM close the link (and a re-sent rid gets
%% the same answer from ejabberd's buffer, closing the next one): it
%% becomes the "answer too large" RESPONSE, counted.
-spec response(non_neg_integer(), mod_megaphone_bosh:result()) -> mod_megaphone_codec:frame().
response(Id, {Status, _Reason, Headers, RespBody}) ->
    fit(#{type => response, id => Id, status => Status,
          content_type => content_type(Headers),
          body => iolist_to_binary(RespBody)}).

%% A session creation's RESPONSE Frame as it goes on the link of Socket:
%% the answer's 'secure' says whether that link is TLS.
-spec for_link(mod_megaphone_codec:frame(), mod_megaphone_transport:socket()) ->
          mod_megaphone_codec:frame().
for_link(#{status := 200, body := Body} = Frame, Socket) ->
    Secure = mod_megaphone_transport:kind(Socket) == tls,
    Frame#{body := mod_megaphone_bosh:secure(iolist_to_binary(Body), Secure)};
for_link(Frame, _Socket) ->
    Frame.

%% Garbage-collects (asynchronously) every process of the BOSH session
%% process Bosh (itself and its c2s) whose total heap is above Threshold
%% words; returns how many. Remote or dead processes are left alone.
-spec collect_session(pid(), pos_integer()) -> non_neg_integer().
collect_session(Bosh, Threshold) ->
    length([P || P <- session_processes(Bosh), collect(P, Threshold)]).

%% The second collection of P, once the first has run (the caller got
%% {garbage_collect, {megaphone_gc, P}, _}): one collection sizes the new
%% heap from the old one, garbage included, and shrinks it only when the
%% live data fills less than a quarter of it; the second leaves the heap
%% near its live size (a c2s after login: 1,598 words after one, 610
%% after two). Its own reply carries megaphone_gc_done.
-spec collect_again(pid()) -> ok.
collect_again(P) ->
    _ = erlang:garbage_collect(P, [{async, megaphone_gc_done}]),
    ok.

%% The BOSH session process and, if found, its c2s: a local proc_lib
%% process that monitors it (a waiting worker, spawned from a fun, also
%% monitors it while its call runs and is not one).
-spec session_processes(pid()) -> [pid()].
session_processes(Bosh) when node(Bosh) == node() ->
    case erlang:process_info(Bosh, monitored_by) of
        {monitored_by, Monitors} ->
            [Bosh | [P || P <- Monitors, is_pid(P), node(P) == node(),
                          P /= self(), is_proc_lib(P)]];
        undefined ->
            []
    end;
session_processes(_Remote) ->
    [].

is_proc_lib(P) ->
    case erlang:process_info(P, initial_call) of
        {initial_call, {proc_lib, init_p, _}} -> true;
        _ -> false
    end.

%%%===================================================================
%%% Internal functions
%%%===================================================================
init(Request, Key, GoTimeout) ->
    receive
        abandon -> ok;
        megaphone_cancel -> ok;
        go -> finish(Key, run(Key, Request))
    after GoTimeout ->
            %% Only the registered worker of Key may call ejabberd.
            case registered(Key) of
                true -> finish(Key, run(Key, Request));
                false -> ok
            end
    end.

collect(P, Threshold) ->
    case erlang:process_info(P, total_heap_size) of
        {total_heap_size, Words} when Words > Threshold ->
            %% Async: the caller does not wait. Its reply,
            %% {garbage_collect, {megaphone_gc, P}, _}, is the caller's cue
            %% for the second collection (collect_again/1).
            _ = erlang:garbage_collect(P, [{async, {megaphone_gc, P}}]),
            true;
        _ ->
            false
    end.

registered(Key) ->
    try mod_megaphone_registry:is_registered(Key, self())
    catch error:badarg -> false % module stopped: table gone
    end.

finish(Key, Frame) ->
    Recipients = try mod_megaphone_registry:take(Key, self())
                 catch error:badarg -> [] % module stopped: table gone
                 end,
    reply(Recipients, Frame).

fit(Frame) ->
    MaxFrame = try mod_megaphone:config() of
                   #{max_frame_size := Max} -> Max
               catch error:badarg -> 16#FFFFFFFF % module stopped
               end,
    case mod_megaphone_codec:fit_response(Frame, MaxFrame) of
        {too_large, TooLarge} ->
            mod_megaphone_stats:incr(responses_too_large_total),
            ?WARNING_MSG("mod_megaphone: answer of ~B bytes is over max_frame_size ~B: "
                         "answered as too large", [iolist_size(maps:get(body, Frame)), MaxFrame]),
            TooLarge;
        Fits ->
            mod_megaphone_stats:incr(responses_answered_total),
            Fits
    end.

%% The session creation (requests_total is counted in the sequencer,
%% where ejabberd is called).
run(Key, #{id := Id, body := Body, ip := IP, port := Port, rid := Rid}) ->
    try mod_megaphone_sequencer:create(Body, IP, Port, Rid) of
        {200, _, _, _} = Result ->
            %% kept for a re-sent copy, which gets the same session
            mod_megaphone_registry:remember_created(Key, Result),
            response(Id, Result);
        Result ->
            response(Id, Result)
    catch Class:Reason:Stack ->
            ?ERROR_MSG("mod_megaphone: BOSH request from ~ts failed: ~p",
                       [inet:ntoa(IP), {Class, Reason, Stack}]),
            mod_megaphone_stats:incr(responses_failed_total),
            failure(Id)
    end.

content_type(Headers) ->
    case [V || {K, V} <- Headers,
               string:lowercase(iolist_to_binary(K)) == <<"content-type">>] of
        [V | _] ->
            case iolist_to_binary(V) of
                Ct when byte_size(Ct) =< 255 -> Ct;
                _ -> <<>> % cannot be framed; the ECM applies its default
            end;
        [] ->
            <<>>
    end.

reply(Recipients, Frame) ->
    lists:foreach(
      fun({Link, Socket, Id, Ref}) ->
              case is_process_alive(Link) of
                  true ->
                      Link ! {megaphone_done, Id, Ref},
                      %% A closed or stuck socket is the link's problem
                      %% (send_timeout closes it); the answer is dropped.
                      _ = mod_megaphone_transport:send(
                            Socket, mod_megaphone_codec:encode(for_link(Frame#{id := Id}, Socket))),
                      ok;
                  false ->
                      ok
              end
      end, Recipients).
