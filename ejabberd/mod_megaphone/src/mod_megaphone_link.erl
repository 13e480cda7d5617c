%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_link.erl
%%% Purpose : One process per accepted link: the handshake, then frames.
%%%
%%% Phases:
%%%   wait_socket  until the acceptor hands the socket over (at most
%%%                handshake_timeout: a handoff that never comes, the
%%%                acceptor gone, must not keep a max_pending_links slot)
%%%   handshake    HELLO sent, waiting for AUTH ({packet, 4}, packet_size
%%%                4096, {active, once}, handshake_timeout)
%%%   open         REQUEST / CANCEL / PING / GOAWAY ({active, N},
%%%                packet_size max_frame_size, heartbeat check)
%%%   draining     the ECM sent GOAWAY: REQUEST gets 503, close when idle
%%%   closing      ERROR sent and write side shut: wait for the peer's FIN
%%%                (closing at once could reset the link and lose ERROR)
%%%
%%% With the module option tls, the accepted TCP socket first runs a TLS
%%% server handshake (ssl:handshake/3, within handshake_timeout), then
%%% everything above goes on unchanged inside TLS: same frames, same HMAC
%%% handshake. Socket calls go through mod_megaphone_transport; over TLS
%%% the link splits frames itself (see there), with the same limits.
%%%
%%% Nothing received before AUTH is verified reaches ejabberd. The secret
%%% is read from mod_megaphone:config/0 when AUTH arrives and never kept
%%% in the state (so crash reports cannot print it).
%%%
%%% A REQUEST of an existing session has no process: the link decodes it
%%% and hands it to its session's shard (mod_megaphone_sequencer), which
%%% sends the link {megaphone_answer, Id, Ref, Answer} when ejabberd
%%% answers; the link writes the RESPONSE. The link monitors each shard it
%%% has ids on (one monitor per shard, not per id): when a shard ends, its
%%% ids are answered 503 (the ECM re-sends them; ejabberd answers a
%%% re-sent rid from its buffer, or holds it again).
%%%
%%% A session creation runs in a worker process (mod_megaphone_worker).
%%% Its id holds a monitor on the worker (tagged with the id). The worker's
%%% 'megaphone_done' (sent before its RESPONSE) or a CANCEL removes the
%%% monitor; a 'DOWN' for an id still in flight means the worker died
%%% without answering it: the link answers that id with 500 and drops the
%%% worker's registry row.
%%%
%%% The ids in flight are in an ETS table of the link's own, so the link's
%%% heap (copied at every garbage collection) does not grow with them.
%%%
%%% Version 2 (negotiated: HELLO says max 2, AUTH picks 1 or 2) adds
%%% WebSocket streams beside the requests (docs/protocol.md, "Version 2").
%%% Each stream is a mod_megaphone_ws process, started at STREAM_OPEN and
%%% monitored here; the link routes DATA, WINDOW and STREAM_CLOSE of the
%%% ECM to it and writes the STREAM_CLOSE it asks for ({megaphone_stream_close,
%%% ...}: the link removes the id before the ECM can reuse it). The stream
%%% writes its own STREAM_OPENED, DATA and WINDOW. Each stream monitors the
%%% link: a link that ends, however, ends every stream as a lost socket.
%%%
%%% Counters (mod_megaphone_stats) counted here: links_*_total, cancels_total,
%%% requests_deduplicated_total, requests_rejected_total,
%%% protocol_errors_total.
%%%----------------------------------------------------------------------
-module(mod_megaphone_link).

-behaviour(gen_server).

-export([start_link/1, take_socket/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include("logger.hrl").

-define(HANDSHAKE_FRAME_SIZE, 4096).
-define(ACTIVE_N, 64).
-define(CLOSING_GRACE, 2000).
-define(SEND_TIMEOUT, 30000).

-record(state, {socket :: mod_megaphone_transport:socket() | undefined,
                peer = "?" :: string(),
                phase = wait_socket :: wait_socket | handshake | open |
                                       draining | closing,
                nonce = <<>> :: binary(),
                timer :: reference() | undefined,
                name = <<>> :: binary(),
                max_inflight = 0 :: non_neg_integer(),
                %% negotiated in AUTH; 2 allows the stream frames
                version = 1 :: 1 | 2,
                %% version 2: live stream id => {Pid, Monitor}
                streams = #{} :: #{pos_integer() => {pid(), reference()}},
                heartbeat = 0 :: non_neg_integer(),
                last_rx = 0 :: integer(),
                %% TLS only: bytes of a frame not complete yet, and the
                %% largest frame accepted now (packet_size over TCP)
                buffer = <<>> :: binary(),
                max_frame = 0 :: non_neg_integer(),
                %% {Id, Ref, {worker, Key, Worker, Monitor}} for a session
                %% creation, {Id, Ref, {queued, Ticket}} for the others
                inflight :: ets:tid(),
                %% the sequencer shards with ids of this link: monitors
                shards = #{} :: #{{atom(), node()} => reference()}}).

%%%===================================================================
%%% API
%%%===================================================================
-spec start_link(inet:socket()) -> {ok, pid()} | {error, term()}.
start_link(_Socket) ->
    %% The socket arrives with take_socket/2 once this process owns it.
    gen_server:start_link(?MODULE, [], []).

-spec take_socket(pid(), inet:socket()) -> ok.
take_socket(Pid, Socket) ->
    Pid ! {megaphone_socket, Socket},
    ok.

%%%===================================================================
%%% gen_server callbacks
%%%===================================================================
-spec init([]) -> {ok, #state{}}.
init([]) ->
    %% Trap exits so a module stop runs terminate/2 (GOAWAY, then close).
    process_flag(trap_exit, true),
    Timeout = mod_megaphone:handshake_timeout(),
    {ok, #state{inflight = ets:new(?MODULE, [set, private]),
                timer = erlang:start_timer(Timeout, self(), handshake)}}.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, {error, badarg}, #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, normal, #state{}}.
handle_info({megaphone_socket, Socket}, #state{phase = wait_socket, timer = Timer} = State0) ->
    %% The handshake gets its own handshake_timeout from here.
    _ = erlang:cancel_timer(Timer),
    State = State0#state{timer = undefined},
    case mod_megaphone:config() of
        #{tls := true} = Config -> tls_handshake(Socket, Config, State);
        #{} -> hello(State#state{socket = Socket, peer = peer(Socket)})
    end;
handle_info({timeout, Timer, handshake}, #state{timer = Timer, phase = wait_socket} = State) ->
    %% No socket came: the acceptor died, or the handoff failed and the
    %% listener could not end this process. The socket, if any, closes
    %% with its owner (the acceptor, or this process).
    mod_megaphone_stats:incr(links_refused_total),
    ?WARNING_MSG("mod_megaphone link process ended: no socket handed over "
                 "within handshake_timeout", []),
    {stop, normal, State};
handle_info({tcp, Socket, Data}, #state{socket = Socket, phase = closing} = State) ->
    _ = Data,
    ok = activate(Socket, once),
    {noreply, State};
handle_info({tcp, Socket, Data}, #state{socket = Socket} = State) ->
    decode_frame(Data, State#state{last_rx = now_ms()});
handle_info({inet_reply, Socket, ok}, #state{socket = Socket} = State) ->
    {noreply, State};
handle_info({inet_reply, Socket, {error, Why}}, #state{socket = Socket} = State) ->
    closed({send, Why}, State);
handle_info({tcp_passive, Socket}, #state{socket = Socket} = State) ->
    ok = activate(Socket, ?ACTIVE_N),
    {noreply, State};
handle_info({tcp_error, Socket, emsgsize}, #state{socket = Socket} = State) ->
    %% The length prefix is above packet_size; the rest is never read.
    refuse(frame_too_large, frame_too_large, State);
handle_info({tcp_error, Socket, Why}, #state{socket = Socket} = State) ->
    closed({tcp_error, Why}, State);
handle_info({tcp_closed, Socket}, #state{socket = Socket} = State) ->
    closed(tcp_closed, State);
handle_info({ssl, Socket, Data}, #state{socket = Socket, phase = closing} = State) ->
    _ = Data,
    ok = activate(Socket, once),
    {noreply, State};
handle_info({ssl, Socket, Data}, #state{socket = Socket, buffer = Buffer} = State) ->
    tls_frames(State#state{buffer = <<Buffer/binary, Data/binary>>, last_rx = now_ms()});
handle_info({ssl_passive, Socket}, #state{socket = Socket} = State) ->
    ok = activate(Socket, ?ACTIVE_N),
    {noreply, State};
handle_info({ssl_error, Socket, Why}, #state{socket = Socket} = State) ->
    closed({ssl_error, Why}, State);
handle_info({ssl_closed, Socket}, #state{socket = Socket} = State) ->
    closed(ssl_closed, State);
handle_info({megaphone_answer, Id, Ref, Answer}, #state{inflight = T} = State) ->
    case ets:lookup(T, Id) of
        [{Id, Ref, {queued, {_, Sid, _}}}] ->
            ets:delete(T, Id),
            answer(Id, Sid, Answer, State),
            maybe_drained(State);
        _ -> {noreply, State} % cancelled meanwhile (or reused id)
    end;
handle_info({megaphone_done, Id, Ref}, #state{inflight = T} = State) ->
    case ets:lookup(T, Id) of
        [{Id, Ref, {worker, _, _, Mon}}] ->
            demonitor(Mon, [flush]),
            ets:delete(T, Id),
            maybe_drained(State);
        _ -> {noreply, State} % cancelled meanwhile (or reused id)
    end;
handle_info({{megaphone_worker, Id}, Mon, process, Worker, Reason},
            #state{inflight = T} = State) ->
    case ets:lookup(T, Id) of
        [{Id, _, {worker, Key, Worker, Mon}}] ->
            worker_died(Id, Key, Worker, Reason, State),
            ets:delete(T, Id),
            maybe_drained(State);
        _ -> {noreply, State} % a monitor of an id already answered
    end;
handle_info({{megaphone_shard, Shard}, Mon, process, _, Reason},
            #state{shards = Shards} = State) ->
    case Shards of
        #{Shard := Mon} ->
            shard_down(Shard, Reason, State),
            maybe_drained(State#state{shards = maps:remove(Shard, Shards)});
        #{} ->
            {noreply, State}
    end;
handle_info({megaphone_stream_close, Stream, Pid, Code, Reason},
            #state{streams = Streams, socket = Socket} = State) ->
    case Streams of
        #{Stream := {Pid, Mon}} ->
            demonitor(Mon, [flush]),
            _ = send(Socket, #{type => stream_close, stream => Stream, code => Code,
                               reason => Reason}),
            maybe_drained(State#state{streams = maps:remove(Stream, Streams)});
        #{} ->
            {noreply, State} % the ECM's STREAM_CLOSE crossed it
    end;
handle_info({{megaphone_stream, Stream}, Mon, process, _, Reason},
            #state{streams = Streams, socket = Socket} = State) ->
    case Streams of
        #{Stream := {_, Mon}} ->
            %% It ended without asking for its STREAM_CLOSE: a crash.
            ?WARNING_MSG("mod_megaphone link ~ts (~ts): stream ~B ended (~p)",
                         [State#state.peer, State#state.name, Stream, Reason]),
            _ = send(Socket, #{type => stream_close, stream => Stream, code => 1011,
                               reason => <<"internal error">>}),
            maybe_drained(State#state{streams = maps:remove(Stream, Streams)});
        #{} ->
            {noreply, State}
    end;
handle_info({timeout, Timer, handshake}, #state{timer = Timer} = State) ->
    refuse(handshake_timeout, handshake_timeout, State);
handle_info({timeout, Timer, heartbeat}, #state{timer = Timer, heartbeat = Hb} = State) ->
    Idle = now_ms() - State#state.last_rx,
    case Idle >= 3 * Hb of
        true ->
            ?WARNING_MSG("mod_megaphone link ~ts (~ts) closed: no frame for ~B ms",
                         [State#state.peer, State#state.name, Idle]),
            {stop, normal, State};
        false ->
            {noreply, State#state{timer = erlang:start_timer(Hb, self(), heartbeat)}}
    end;
handle_info({timeout, Timer, closing}, #state{timer = Timer} = State) ->
    {stop, normal, State};
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(Reason, #state{socket = Socket, phase = Phase} = State) ->
    case Socket of
        undefined -> ok;
        _ ->
            case {Reason, Phase} of
                {shutdown, open} ->
                    %% Module stop: tell the ECM to move its traffic away.
                    _ = send(Socket, #{type => goaway, code => 0,
                                       reason => <<"shutdown">>});
                _ -> ok
            end,
            _ = mod_megaphone_transport:close(Socket)
    end,
    detach_all(State).

%%%===================================================================
%%% Handshake
%%%===================================================================
%% TLS first (module option tls): a failed or slow TLS handshake is a
%% refused link, like a failed AUTH; nothing was read from the peer.
tls_handshake(TcpSocket, #{handshake_timeout := Timeout} = Config, State) ->
    Peer = peer(TcpSocket),
    case ssl:handshake(TcpSocket, mod_megaphone_transport:tls_options(Config), Timeout) of
        {ok, Socket} ->
            hello(State#state{socket = Socket, peer = Peer});
        {error, Why} ->
            _ = gen_tcp:close(TcpSocket),
            mod_megaphone_stats:incr(links_refused_total),
            ?WARNING_MSG("mod_megaphone link ~ts refused: TLS handshake failed (~p)",
                         [Peer, Why]),
            {stop, normal, State#state{phase = handshake}}
    end.

peer(Socket) ->
    case mod_megaphone_transport:peername(Socket) of
        {ok, {IP, Port}} -> lists:flatten(io_lib:format("~ts:~B", [inet:ntoa(IP), Port]));
        {error, _} -> "?"
    end.

hello(#state{socket = Socket} = State) ->
    Nonce = crypto:strong_rand_bytes(32),
    #{handshake_timeout := Timeout} = mod_megaphone:config(),
    Hello = #{type => hello, min_version => mod_megaphone_codec:version(),
              max_version => mod_megaphone_codec:max_version(), nonce => Nonce},
    ok = mod_megaphone_transport:setopts(
           Socket, [{packet, 4}, {packet_size, ?HANDSHAKE_FRAME_SIZE},
                               {send_timeout, ?SEND_TIMEOUT},
                               {send_timeout_close, true},
                               %% Keeps the socket writable after emsgsize
                               %% (an oversize length), so ERROR
                               %% frame_too_large can still be sent.
                               {exit_on_close, false}]),
    State1 = State#state{phase = handshake, nonce = Nonce,
                         max_frame = ?HANDSHAKE_FRAME_SIZE,
                         timer = erlang:start_timer(Timeout, self(), handshake)},
    case send(Socket, Hello) of
        ok ->
            ok = activate(Socket, once),
            {noreply, State1};
        {error, Why} ->
            closed({send, Why}, State1)
    end.

auth(#{version := Version}, State) when Version /= 1, Version /= 2 ->
    refuse(unsupported_version, {unsupported_version, Version}, State);
auth(#{version := Version, nonce := ClientNonce, mac := Mac, name := Name},
     #state{socket = Socket, nonce = ServerNonce} = State) ->
    #{secrets := Secrets, max_frame_size := MaxFrame, max_inflight := MaxInflight,
      heartbeat_interval := Hb} = Config = mod_megaphone:config(),
    case proving_secret(Secrets, Version, ServerNonce, ClientNonce, Name, Mac) of
        false ->
            refuse(auth_failed, {auth_failed, printable(Name)}, State);
        {value, Secret} ->
            Welcome1 = #{type => welcome,
                         mac => mod_megaphone_codec:welcome_mac(Secret, Version, ClientNonce,
                                                                ServerNonce),
                         max_frame => MaxFrame, max_inflight => MaxInflight,
                         heartbeat_ms => Hb,
                         node => atom_to_binary(node(), utf8)},
            Welcome = case Version of
                          1 -> Welcome1;
                          2 -> Welcome1#{max_streams => max_streams(Config),
                                         stream_window => stream_window(Config)}
                      end,
            _ = erlang:cancel_timer(State#state.timer),
            ok = mod_megaphone_transport:setopts(Socket, [{packet_size, MaxFrame}]),
            %% Counted before WELCOME goes out, so that a peer that has read
            %% WELCOME finds its link in links_active (seen as a flaky eunit
            %% run on a loaded machine). The registry counts this process
            %% until it ends, however it ends (a failed send, a kill).
            mod_megaphone_stats:incr(links_accepted_total),
            ok = mod_megaphone_registry:link_up(self()),
            case send(Socket, Welcome) of
                ok ->
                    ?INFO_MSG("mod_megaphone link ~ts authenticated: ECM '~ts', "
                              "protocol version ~B", [State#state.peer, printable(Name), Version]),
                    ok = activate(Socket, ?ACTIVE_N),
                    {noreply, State#state{phase = open, nonce = <<>>,
                                          max_frame = MaxFrame, version = Version,
                                          name = printable(Name),
                                          max_inflight = MaxInflight,
                                          heartbeat = Hb,
                                          timer = erlang:start_timer(Hb, self(), heartbeat)}};
                {error, Why} ->
                    closed({send, Why}, State#state{phase = open,
                                                    name = printable(Name)})
            end
    end.

%% The secret of the list (a rotation: any is accepted) that the ECM's
%% AUTH mac proves, or false. WELCOME is then proved with that same one.
proving_secret(Secrets, Version, ServerNonce, ClientNonce, Name, Mac) ->
    lists:search(
      fun(Secret) ->
              Expected = mod_megaphone_codec:auth_mac(Secret, Version, ServerNonce,
                                                      ClientNonce, Name),
              mod_megaphone_codec:verify_mac(Expected, Mac)
      end, Secrets).

%%%===================================================================
%%% Frames
%%%===================================================================
%% TLS: the frames complete in the buffer, one at a time (each may change
%% the phase and the size limit), as {packet, 4} would deliver them.
tls_frames(#state{buffer = Buffer, max_frame = Max} = State) ->
    case mod_megaphone_transport:next_frame(Buffer, Max) of
        {ok, Data, Rest} ->
            case decode_frame(Data, State#state{buffer = Rest}) of
                {noreply, #state{phase = closing} = State1} ->
                    {noreply, State1#state{buffer = <<>>}};
                {noreply, State1} ->
                    tls_frames(State1);
                Stop ->
                    Stop
            end;
        more when State#state.phase == handshake ->
            %% AUTH not complete yet ({active, once} in this phase).
            ok = activate(State#state.socket, once),
            {noreply, State};
        more ->
            {noreply, State};
        {error, frame_too_large} ->
            refuse(frame_too_large, frame_too_large, State#state{buffer = <<>>})
    end.

decode_frame(Data, State) ->
    case mod_megaphone_codec:decode(Data) of
        {ok, Frame} -> frame(Frame, State);
        {error, Why} -> refuse(protocol_error, {malformed_frame, Why}, State)
    end.

frame(#{type := auth} = Auth, #state{phase = handshake} = State) ->
    auth(Auth, State);
frame(#{type := Type}, #state{phase = handshake} = State) ->
    refuse(protocol_error, {before_auth, Type}, State);
frame(#{type := request} = Request, State) ->
    request(Request, State);
frame(#{type := cancel, id := Id}, #state{inflight = T} = State) ->
    case ets:take(T, Id) of
        [Entry] ->
            mod_megaphone_stats:incr(cancels_total),
            cancel(Entry, State),
            maybe_drained(State);
        [] ->
            {noreply, State} % crossed its RESPONSE on the wire
    end;
frame(#{type := ping, opaque := Opaque}, #state{socket = Socket} = State) ->
    _ = send(Socket, #{type => pong, opaque => Opaque}),
    {noreply, State};
frame(#{type := pong}, State) ->
    {noreply, State};
frame(#{type := goaway, code := Code}, State) ->
    ?INFO_MSG("mod_megaphone link ~ts (~ts) draining: GOAWAY ~B",
              [State#state.peer, State#state.name, Code]),
    maybe_drained(State#state{phase = draining});
frame(#{type := Type} = Frame, #state{version = 2} = State)
  when Type == stream_open; Type == data; Type == window; Type == stream_close ->
    stream_frame(Frame, State);
frame(#{type := error, code := Code, reason := Reason}, State) ->
    ?WARNING_MSG("mod_megaphone link ~ts (~ts) closed by the ECM: ERROR ~ts '~ts'",
                 [State#state.peer, State#state.name,
                  mod_megaphone_codec:error_name(Code), printable(Reason)]),
    {stop, normal, State};
frame(#{type := Type}, State) ->
    refuse(protocol_error, {unexpected_frame, Type}, State).

request(#{id := Id} = Request, #state{inflight = T, max_inflight = Max} = State) ->
    case ets:member(T, Id) of
        true -> refuse(protocol_error, {id_in_flight, Id}, State);
        false when State#state.phase == draining -> unavailable(Id, State);
        false ->
            case ets:info(T, size) >= Max of
                true -> unavailable(Id, State);
                false -> submit(Request, State)
            end
    end.

submit(#{id := Id, body := Body} = Request, #state{socket = Socket, inflight = T} = State) ->
    Ref = make_ref(),
    case mod_megaphone_sequencer:submit(Body, {self(), Id, Ref}) of
        {queued, {Shard, _, _} = Ticket} ->
            ets:insert(T, {Id, Ref, {queued, Ticket}}),
            {noreply, monitor_shard(Shard, State)};
        {create, Rid} ->
            %% a re-sent copy of a creation gets the same session: the
            %% answer of a recent one (5-10 s), or the running worker's
            Key = mod_megaphone_registry:creation_key(maps:get(ip, Request), Rid, Body),
            case mod_megaphone_registry:created(Key) of
                {ok, Result} ->
                    mod_megaphone_stats:incr(requests_deduplicated_total),
                    _ = send(Socket, mod_megaphone_worker:for_link(
                                       mod_megaphone_worker:response(Id, Result), Socket)),
                    {noreply, State};
                none ->
                    Worker = dispatch(Key, Request#{rid := Rid}, {self(), Socket, Id, Ref}),
                    Mon = monitor(process, Worker, [{tag, {megaphone_worker, Id}}]),
                    ets:insert(T, {Id, Ref, {worker, Key, Worker, Mon}}),
                    {noreply, State}
            end;
        {answer, Result} ->
            _ = send_answer(Socket, mod_megaphone_worker:response(Id, Result)),
            {noreply, State};
        unavailable ->
            unavailable(Id, State)
    end.

monitor_shard(Shard, #state{shards = Shards} = State) when is_map_key(Shard, Shards) ->
    State;
monitor_shard(Shard, #state{shards = Shards} = State) ->
    Mon = monitor(process, Shard, [{tag, {megaphone_shard, Shard}}]),
    State#state{shards = Shards#{Shard => Mon}}.

%% The answer of a queued id: ejabberd's BOSH answer, or 500 for anything
%% else (a session in a state that refuses the request). An answer too
%% large for a frame ends the session too: the ECM answers the client with
%% a terminate, and ejabberd has taken the rid, so no request of the
%% client would end it.
answer(Id, Sid, Answer, #state{socket = Socket}) ->
    Frame = try mod_megaphone_worker:response(Id, mod_megaphone_bosh:encode(Answer))
            catch _:_ ->
                    ?ERROR_MSG("mod_megaphone: unexpected answer of a BOSH session: ~p", [Answer]),
                    mod_megaphone_stats:incr(responses_failed_total),
                    mod_megaphone_worker:failure(Id)
            end,
    _ = send_answer(Socket, Frame),
    case Frame == mod_megaphone_codec:answer_too_large(Id) of
        true -> mod_megaphone_sequencer:close_session(Sid);
        false -> ok
    end,
    ok.

%% A shard ended (its order state with it): its ids here will not be
%% answered by it; 503 lets the ECM re-send them.
shard_down({Name, Node} = Shard, Reason, #state{inflight = T, socket = Socket} = State) ->
    Ids = ets:select(T, [{{'$1', '_', {queued, {Shard, '_', '_'}}}, [], ['$1']}]),
    [ets:delete(T, Id) || Id <- Ids],
    case Ids of
        [] -> ok;
        _ -> ?WARNING_MSG("mod_megaphone link ~ts (~ts): ~ts on ~ts ended (~p); "
                          "answering its ~B request(s) 503",
                          [State#state.peer, State#state.name, Name, Node, Reason, length(Ids)])
    end,
    lists:foreach(fun(Id) ->
                          mod_megaphone_stats:incr(requests_rejected_total),
                          send_answer(Socket, unavailable_frame(Id))
                  end, Ids).

%% Starts a worker, or attaches Recipient to the worker already running
%% the same (sid, rid) on any link.
dispatch(Key, Request, Recipient) ->
    case mod_megaphone_registry:attach(Key, Recipient) of
        {ok, Worker} ->
            mod_megaphone_stats:incr(requests_deduplicated_total),
            Worker;
        not_found ->
            dispatch(Key, Request, Recipient, mod_megaphone_worker:start(Request, Key))
    end.

dispatch(Key, Request, Recipient, New) ->
    case mod_megaphone_registry:insert_new(Key, New, Recipient) of
        true ->
            mod_megaphone_worker:go(New),
            New;
        false ->
            %% A twin started between attach and insert_new: join it, or,
            %% if it finished meanwhile, insert again (ejabberd then
            %% answers this copy from its buffer).
            case mod_megaphone_registry:attach(Key, Recipient) of
                {ok, Worker} ->
                    mod_megaphone_worker:abandon(New),
                    mod_megaphone_stats:incr(requests_deduplicated_total),
                    Worker;
                not_found ->
                    dispatch(Key, Request, Recipient, New)
            end
    end.

cancel({Id, Ref, {queued, Ticket}}, _State) ->
    mod_megaphone_sequencer:cancel(Ticket, {self(), Id, Ref});
cancel({Id, Ref, {worker, Key, _Worker, Mon}}, #state{socket = Socket}) ->
    demonitor(Mon, [flush]),
    case mod_megaphone_registry:cancel(Key, {self(), Socket, Id, Ref}) of
        {stop, Worker} -> mod_megaphone_worker:cancel(Worker);
        ok -> ok
    end.

%% The worker of Id ended without answering it (a crash outside the BOSH
%% call, a kill by anything but our CANCEL). Its row goes, so a re-sent
%% copy starts a new worker; this id gets 500, the ECM may re-send it.
worker_died(Id, Key, Worker, Reason, #state{socket = Socket} = State) ->
    ?WARNING_MSG("mod_megaphone link ~ts (~ts): the worker of request ~B "
                 "ended without an answer (~p); answering 500",
                 [State#state.peer, State#state.name, Id, Reason]),
    _ = try mod_megaphone_registry:purge(Key, Worker)
        catch error:badarg -> false % module stopping: table gone
        end,
    mod_megaphone_stats:incr(responses_failed_total),
    _ = send_answer(Socket, mod_megaphone_worker:failure(Id)),
    ok.

unavailable(Id, #state{socket = Socket} = State) ->
    mod_megaphone_stats:incr(requests_rejected_total),
    _ = send_answer(Socket, unavailable_frame(Id)),
    {noreply, State}.

unavailable_frame(Id) ->
    #{type => response, id => Id, status => 503, content_type => <<>>, body => <<>>}.

maybe_drained(#state{phase = draining, inflight = T, streams = Streams} = State) ->
    case ets:info(T, size) of
        0 when map_size(Streams) == 0 -> {stop, normal, State};
        _ -> {noreply, State}
    end;
maybe_drained(State) ->
    {noreply, State}.

%%%===================================================================
%%% Streams (version 2)
%%%===================================================================
stream_frame(#{type := stream_open, stream := Stream} = Open,
             #state{streams = Streams, socket = Socket} = State) ->
    Config = mod_megaphone:config(),
    Max = max_streams(Config),
    if is_map_key(Stream, Streams) ->
            refuse(protocol_error, {stream_in_use, Stream}, State);
       State#state.phase == draining ->
            stream_refused(Stream, <<"draining">>, State);
       Max > 0, map_size(Streams) >= Max ->
            stream_refused(Stream, <<"max_streams">>, State);
       true ->
            #{ip := IP, port := Port, window := ClientWindow} = Open,
            Args = #{link => self(), socket => Socket, stream => Stream,
                     peer => {IP, Port}, client_window => ClientWindow,
                     window => stream_window(Config),
                     max_frame => State#state.max_frame},
            case mod_megaphone_ws:start(Args) of
                {ok, Pid} ->
                    Mon = monitor(process, Pid, [{tag, {megaphone_stream, Stream}}]),
                    {noreply, State#state{streams = Streams#{Stream => {Pid, Mon}}}};
                {error, Why} ->
                    ?ERROR_MSG("mod_megaphone link ~ts (~ts): stream ~B not started: ~p",
                               [State#state.peer, State#state.name, Stream, Why]),
                    mod_megaphone_stats:incr(streams_failed_total),
                    _ = send(Socket, #{type => stream_close, stream => Stream, code => 1011,
                                       reason => <<"internal error">>}),
                    {noreply, State}
            end
    end;
stream_frame(#{type := stream_close, stream := Stream}, #state{streams = Streams} = State) ->
    case maps:take(Stream, Streams) of
        {{Pid, Mon}, Streams1} ->
            demonitor(Mon, [flush]),
            Pid ! megaphone_stream_closed,
            maybe_drained(State#state{streams = Streams1});
        error ->
            {noreply, State} % crossed our STREAM_CLOSE
    end;
stream_frame(#{type := data, stream := Stream, data := Data}, State) ->
    to_stream(Stream, {megaphone_data, Data}, State);
stream_frame(#{type := window, stream := Stream, credit := Credit}, State) ->
    to_stream(Stream, {megaphone_window, Credit}, State).

%% DATA or WINDOW of a stream closed meanwhile (crossing a close) is dropped.
to_stream(Stream, Msg, #state{streams = Streams} = State) ->
    case Streams of
        #{Stream := {Pid, _}} -> Pid ! Msg;
        #{} -> ok
    end,
    {noreply, State}.

%% 1013 try again later: the ECM answers its client's handshake 503.
stream_refused(Stream, Reason, #state{socket = Socket} = State) ->
    mod_megaphone_stats:incr(case Reason of
                                 <<"draining">> -> streams_refused_draining_total;
                                 _ -> streams_refused_max_streams_total
                             end),
    _ = send(Socket, #{type => stream_close, stream => Stream, code => 1013,
                       reason => Reason}),
    {noreply, State}.

max_streams(Config) -> maps:get(max_streams, Config, 20000).

stream_window(Config) -> maps:get(stream_window, Config, 262144).

%%%===================================================================
%%% Closing
%%%===================================================================
%% ERROR, then a half-close; the process waits for the peer's FIN so the
%% ERROR frame is not lost to a reset.
refuse(Error, Why, #state{socket = Socket, phase = Phase} = State) ->
    What = case Phase of
               handshake -> "refused";
               _ -> "closed"
           end,
    ?WARNING_MSG("mod_megaphone link ~ts ~ts: ~ts ~p",
                 [State#state.peer, What, Error, Why]),
    mod_megaphone_stats:incr(case Phase of
                                 handshake -> links_refused_total;
                                 _ -> protocol_errors_total
                             end),
    _ = send(Socket, #{type => error, code => mod_megaphone_codec:error_code(Error),
                       reason => atom_to_binary(Error, utf8)}),
    _ = mod_megaphone_transport:shutdown(Socket, write),
    _ = case State#state.timer of
            undefined -> ok;
            T -> erlang:cancel_timer(T)
        end,
    _ = mod_megaphone_transport:setopts(Socket, [{active, once}]),
    {noreply, State#state{phase = closing,
                          timer = erlang:start_timer(?CLOSING_GRACE, self(), closing)}}.

closed(_Why, #state{phase = closing} = State) ->
    {stop, normal, State};
closed(Why, #state{phase = handshake} = State) ->
    mod_megaphone_stats:incr(links_refused_total),
    ?WARNING_MSG("mod_megaphone link ~ts refused: closed during the handshake (~p)",
                 [State#state.peer, Why]),
    {stop, normal, State};
closed(Why, State) ->
    ?INFO_MSG("mod_megaphone link ~ts (~ts) closed: ~p, ~B request(s) in flight",
              [State#state.peer, State#state.name, Why, ets:info(State#state.inflight, size)]),
    {stop, normal, State}.

%% The link is gone: its running workers and queued requests go on (a
%% re-sent copy on another link may still need their answer); only its
%% recipients are dropped.
detach_all(#state{socket = Socket, inflight = T}) ->
    Workers = ets:select(T, [{{'$1', '$2', {worker, '$3', '_', '_'}}, [], [{{'$1', '$2', '$3'}}]}]),
    lists:foreach(
      fun({Id, Ref, Key}) ->
              try mod_megaphone_registry:detach(Key, {self(), Socket, Id, Ref})
              catch error:badarg -> ok % module stopping: table gone
              end
      end, Workers).

%%%===================================================================
%%% Internal functions
%%%===================================================================
send(Socket, Frame) ->
    mod_megaphone_transport:send(Socket, mod_megaphone_codec:encode(Frame)).

%% A RESPONSE: the link may have many answers queued (see
%% mod_megaphone_transport:send_async/2); the driver's reply comes as
%% {inet_reply, Socket, Status} (handle_info/2).
send_answer(Socket, Frame) ->
    mod_megaphone_transport:send_async(Socket, mod_megaphone_codec:encode(Frame)).

activate(Socket, N) ->
    case mod_megaphone_transport:setopts(Socket, [{active, N}]) of
        ok -> ok;
        {error, _} -> ok % closed: tcp_closed follows
    end.

now_ms() ->
    erlang:monotonic_time(millisecond).

%% For logs: a name or reason from the wire, without control characters.
printable(Bin) ->
    case unicode:characters_to_binary(Bin) of
        Utf8 when is_binary(Utf8) ->
            << <<C/utf8>> || <<C/utf8>> <= Utf8, C >= 32, C /= 127 >>;
        _ ->
            <<"(not utf-8)">>
    end.
