%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_worker.erl
%%% Purpose : One process per REQUEST: calls ejabberd's BOSH handler
%%%           (which blocks for the whole long poll) through
%%%           mod_megaphone_sequencer (rid order per session, on the
%%%           session's node) and sends the RESPONSE to every recipient.
%%%
%%% A recipient is {LinkPid, Socket, Id, Ref}. For each live recipient the
%%% worker first tells the link the id is done, then writes the RESPONSE
%%% frame itself (mod_megaphone_transport:send/2: one call per frame,
%%% atomic on TCP and on TLS).
%%% In that order the link never sees a reused id while the old one is
%%% still on its books: the ECM can only reuse an id after it read the
%%% RESPONSE.
%%%
%%% Every worker is registered in mod_megaphone_registry before it starts
%%% (under its (sid, rid), or a unique key for a session creation): it
%%% waits for 'go' (registered) or 'abandon' (a twin already runs) from
%%% its link. At the end it takes its row, which yields every recipient
%%% attached meanwhile. If neither comes (the link died between starting
%%% the worker and telling it), the worker looks itself up after
%%% GO_TIMEOUT: registered, it runs (copies may be attached to it, and the
%%% row would otherwise leak); not registered, it ends without calling
%%% ejabberd, since a twin may be running that (sid, rid) meanwhile.
%%%
%%% Workers are unlinked; each link monitors the workers of its ids. A
%%% worker that dies without answering (killed, or a crash outside the
%%% BOSH call) is answered for by those links, each for its own ids, with
%%% failure/1 (mod_megaphone_link).
%%%
%%% After the RESPONSE is written (off the request's timing), a worker
%%% whose request named a sid looks at that session's processes: the BOSH
%%% session process (mod_bosh:find_session/1, an ets lookup) and its c2s
%%% (in ejabberd 23.01 the one proc_lib process monitoring the BOSH
%%% process; workers waiting on the session monitor it too and are
%%% skipped). Each local one whose total heap is above gc_heap_threshold
%%% words is garbage-collected, asynchronously: ejabberd's session
%%% processes do their login work in a burst and then sit idle on a heap
%%% sized for it, and an idle process never collects. A process is only
%%% collected again once it has grown past the threshold again.
%%%----------------------------------------------------------------------
-module(mod_megaphone_worker).

-export([start/2, start/3, go/1, abandon/1, cancel/1, failure/1]).
-export([collect_session/2, session_processes/1]).

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
%% not entered ejabberd yet (waiting for its predecessor, for a twin, or
%% for a remote node) ends without calling it; one that has entered
%% finishes the call, and its answer is dropped. It is never killed: a
%% copy inside ejabberd stays known to mod_megaphone_sequencer until
%% ejabberd answers it, so a re-sent copy joins it instead of becoming a
%% second live copy (docs/protocol.md, section 4).
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

%% Garbage-collects (asynchronously) every process of the BOSH session
%% process Bosh (itself and its c2s) whose total heap is above Threshold
%% words; returns how many. Remote or dead processes are left alone.
-spec collect_session(pid(), pos_integer()) -> non_neg_integer().
collect_session(Bosh, Threshold) ->
    length([P || P <- session_processes(Bosh), collect(P, Threshold)]).

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
        go -> finish(Key, run(Request)), collect_garbage(Key)
    after GoTimeout ->
            %% Only the registered worker of Key may call ejabberd: an
            %% unregistered one could be a second live copy of its rid.
            case registered(Key) of
                true -> finish(Key, run(Request)), collect_garbage(Key);
                false -> ok
            end
    end.

%% After the RESPONSE went out: collect the session's processes that are
%% above gc_heap_threshold (see the module header). A session creation
%% has no sid yet (its processes have done nothing so far).
collect_garbage({new, _}) ->
    ok;
collect_garbage({Sid, _Rid}) ->
    case mod_megaphone:gc_heap_threshold() of
        0 ->
            ok;
        Threshold ->
            try mod_bosh:find_session(Sid) of
                {ok, Bosh} when is_pid(Bosh) ->
                    count_collected(collect_session(Bosh, Threshold));
                _ ->
                    ok % session gone (a terminate answer, a timeout)
            catch _:_ ->
                    ok % mod_bosh stopped meanwhile
            end
    end.

count_collected(0) -> ok;
count_collected(N) ->
    mod_megaphone_stats:incr(gc_collections_total),
    count_collected(N - 1).

collect(P, Threshold) ->
    case erlang:process_info(P, total_heap_size) of
        {total_heap_size, Words} when Words > Threshold ->
            %% async: the worker does not wait; the result message goes
            %% to a process that has ended by then, and is dropped.
            _ = erlang:garbage_collect(P, [{async, make_ref()}]),
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
    case Frame of
        cancelled -> ok; % the row went with the CANCEL: nobody to answer
        {failed, Failure} -> reply(Recipients, Failure);
        {answered, Answer} -> reply(Recipients, fit(Answer))
    end.

%% An answer over max_frame_size would make the ECM close the link (and
%% a re-sent rid gets the same answer from ejabberd's buffer, closing the
%% next one): it becomes the "answer too large" RESPONSE, counted.
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

%% The BOSH call goes through mod_megaphone_sequencer (rid order, one
%% live copy per (sid, rid) in the cluster); requests_total is counted
%% there, where ejabberd is called.
run(#{id := Id, body := Body, ip := IP, port := Port, sid := Sid, rid := Rid}) ->
    try mod_megaphone_sequencer:process(Body, IP, Port, Sid, Rid) of
        cancelled ->
            cancelled;
        {Status, _Reason, Headers, RespBody} ->
            {answered, #{type => response, id => Id, status => Status,
                         content_type => content_type(Headers),
                         body => iolist_to_binary(RespBody)}};
        {error, Why} ->
            failed(Id, IP, Why)
    catch Class:Reason:Stack ->
            failed(Id, IP, {Class, Reason, Stack})
    end.

failed(Id, IP, Why) ->
    ?ERROR_MSG("mod_megaphone: BOSH request from ~ts failed: ~p", [inet:ntoa(IP), Why]),
    mod_megaphone_stats:incr(responses_failed_total),
    {failed, failure(Id)}.

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
                            Socket, mod_megaphone_codec:encode(Frame#{id := Id})),
                      ok;
                  false ->
                      ok
              end
      end, Recipients).
