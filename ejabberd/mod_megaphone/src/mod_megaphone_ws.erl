%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_ws.erl
%%% Purpose : One WebSocket stream of a link (protocol version 2): the
%%%           socket module of an ejabberd c2s session that has no socket
%%%           of its own.
%%%
%%% One process per stream, started by the link at STREAM_OPEN. It starts
%%% a c2s (ejabberd_c2s:start/3 with this module as its sockmod, as
%%% ejabberd_http_ws does) and is both the sockmod's process and the
%%% stream's end of the link: the c2s sees transport `websocket' (so
%%% connected_users_info and the hooks say websocket) and, as peername,
%%% the address the ECM asserted in STREAM_OPEN.
%%%
%%% In: the link hands each DATA ({megaphone_data, Bin}); its size counts
%%% against the credit this stream granted (over it: STREAM_CLOSE 1008),
%%% is checked against max_stanza_size (over it: the c2s gets "XML stanza
%%% is too big", a policy-violation stream error), then parsed as one
%%% RFC 7395 message (<open/> and <close/> become stream start and end, as
%%% ejabberd_http_ws does) and queued until the c2s asks ({active, once}).
%%% Where the c2s listener has them (ejabberd 26.07), max_stanza_elements
%%% and, until the c2s sends a SASL <success/>, pre_auth_max_stanza_size
%%% and pre_auth_max_stanza_elements apply too, as ejabberd's parser
%%% applies them to its TCP clients (its own WebSocket does not).
%%% The credit of what the c2s took goes back in a WINDOW, after the
%%% pause of the c2s's shaper (ejabberd_shaper:update/2).
%%%
%%% Out: the c2s's send_xml/2 is a call (15 s limit, as ejabberd_http_ws);
%%% the element is framed as ejabberd's own WebSocket frames it and
%%% written as DATA by this process while the ECM's credit lasts; without
%%% credit the call waits for a WINDOW (back-pressure on the c2s). An
%%% element that could never be sent (over the link's max_frame, or over
%%% the initial credit) closes the stream with 1009.
%%%
%%% Garbage: 2 s after a burst of traffic (a login, a message), the c2s is
%%% garbage-collected when its heap is above gc_heap_threshold words, as
%%% the BOSH path does (a c2s keeps its login's garbage, about 200 KB,
%%% until its next collection), and this process hibernates: an idle
%%% stream then costs its live words (about 1.2 KB in all) instead of a
%%% minimum heap (233 words, about 3 KB); the next message wakes it.
%%%
%%% Ends: the c2s's close/1 sends <close/> (unless sent) and STREAM_CLOSE
%%% 1000; the ECM's STREAM_CLOSE or the link going down sends the c2s
%%% {tcp_closed, Socket}, a lost socket (mod_stream_mgmt then keeps a
%%% session with stream management for resume_timeout). STREAM_CLOSE is
%%% written by the link ({megaphone_stream_close, ...}), which frees the id.
%%%----------------------------------------------------------------------
-module(mod_megaphone_ws).

-behaviour(gen_server).

-export([start/1]).
%% the sockmod of the c2s (xmpp_socket)
-export([send_xml/2, setopts/2, sockname/1, peername/1, controlling_process/2,
         get_owner/1, reset_stream/1, close/1, change_shaper/2, get_transport/1]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2,
         terminate/2]).
%% for tests
-export([to_c2s/2, from_c2s/1, stanza_limits/1]).

-include("logger.hrl").

-define(FRAMING, <<"urn:ietf:params:xml:ns:xmpp-framing">>).
-define(SEND_TIMEOUT, 15000).
-define(TOO_BIG, <<"XML stanza is too big">>).
-define(GC_DELAY, 2000).

-type sock() :: {megaphone_ws, pid(), {inet:ip_address(), inet:port_number()}}.
%% a stanza's limits: bytes, elements (the stanza's own included)
-type limits() :: {pos_integer() | infinity, pos_integer() | infinity}.

-record(state, {link :: pid(),
                socket :: mod_megaphone_transport:socket(),
                stream :: pos_integer(),
                sock :: sock(),
                c2s :: pid() | undefined,
                c2s_mon :: reference() | undefined,
                %% in: the stanza limits that apply now, and those that
                %% apply after authentication (until then: undefined)
                limits = {infinity, infinity} :: limits(),
                post_auth_limits :: limits() | undefined,
                max_frame :: pos_integer(),
                %% out: credit the ECM granted (DATA bytes we may send),
                %% its initial value, and the calls waiting for credit
                out_credit = 0 :: non_neg_integer(),
                out_window = 0 :: non_neg_integer(),
                waiting = queue:new() :: queue:queue({gen_server:from(), binary()}),
                %% in: credit we granted and the ECM has not used yet,
                %% parsed messages the c2s has not asked for, whether it
                %% asked (active), and its shaper
                in_credit = 0 :: non_neg_integer(),
                input = [] :: [{non_neg_integer(), list()}],
                active = false :: boolean(),
                shaper = none :: term(),
                gc_timer :: reference() | undefined,
                close_sent = false :: boolean()}).

%%%===================================================================
%%% API
%%%===================================================================
%% Starts the process of a stream (not linked: the link monitors it, it
%% monitors the link). Args: link, socket, stream, peer, client_window,
%% window, max_frame.
-spec start(map()) -> {ok, pid()} | {error, term()}.
start(Args) ->
    gen_server:start(?MODULE, Args, []).

%%%===================================================================
%%% The sockmod (called by the c2s through xmpp_socket)
%%%===================================================================
-spec send_xml(sock(), term()) -> ok | {error, term()}.
send_xml({megaphone_ws, Pid, _}, Packet) ->
    try gen_server:call(Pid, {send_xml, Packet}, ?SEND_TIMEOUT)
    catch exit:{timeout, _} -> {error, timeout};
          exit:_ -> {error, einval}
    end.

-spec setopts(sock(), list()) -> ok.
setopts({megaphone_ws, Pid, _}, Opts) ->
    case lists:member({active, once}, Opts) of
        true -> gen_server:cast(Pid, {activate, self()});
        false -> ok
    end.

-spec sockname(sock()) -> {ok, {inet:ip_address(), inet:port_number()}}.
sockname(_) -> {ok, {{0, 0, 0, 0}, 0}}.

-spec peername(sock()) -> {ok, {inet:ip_address(), inet:port_number()}}.
peername({megaphone_ws, _, Peer}) -> {ok, Peer}.

-spec controlling_process(sock(), pid()) -> ok.
controlling_process(_, _) -> ok.

-spec get_owner(sock()) -> pid().
get_owner({megaphone_ws, Pid, _}) -> Pid.

-spec reset_stream(sock()) -> sock().
reset_stream(Sock) -> Sock.

-spec close(sock()) -> ok.
close({megaphone_ws, Pid, _}) ->
    try gen_server:call(Pid, close, ?SEND_TIMEOUT)
    catch exit:_ -> ok % already gone (the link, the ECM's close)
    end.

-spec change_shaper(sock(), term()) -> ok.
change_shaper({megaphone_ws, Pid, _}, Shaper) ->
    gen_server:cast(Pid, {shaper, Shaper}).

-spec get_transport(sock()) -> websocket.
get_transport(_) -> websocket.

%%%===================================================================
%%% gen_server callbacks
%%%===================================================================
init(#{link := Link, socket := Socket, stream := Stream, peer := Peer,
       client_window := ClientWindow, window := Window, max_frame := MaxFrame}) ->
    monitor(process, Link),
    {ok, #state{link = Link, socket = Socket, stream = Stream,
                sock = {megaphone_ws, self(), Peer}, max_frame = MaxFrame,
                out_credit = ClientWindow, out_window = ClientWindow,
                in_credit = Window},
     {continue, start_c2s}}.

handle_continue(start_c2s, #state{sock = Sock, socket = Socket, stream = Stream,
                                  in_credit = Window} = State) ->
    Limits = ejabberd_c2s_config:get_c2s_limits(),
    try ejabberd_c2s:start(?MODULE, Sock, [{receiver, self()} | Limits]) of
        {ok, C2S} ->
            case mod_megaphone_transport:send(
                   Socket, mod_megaphone_codec:encode(
                             #{type => stream_opened, stream => Stream, window => Window})) of
                ok ->
                    mod_megaphone_stats:incr(streams_opened_total),
                    mod_megaphone_stats:add(streams_active, 1),
                    ejabberd_c2s:accept(C2S),
                    {PreAuth, PostAuth} = stanza_limits(Limits),
                    {noreply, State#state{c2s = C2S, c2s_mon = monitor(process, C2S),
                                          limits = PreAuth, post_auth_limits = PostAuth}};
                {error, _} ->
                    exit(C2S, kill),
                    mod_megaphone_stats:incr(streams_failed_total),
                    {stop, normal, State}
            end;
        Other ->
            stream_close(1011, <<"internal error">>, State),
            ?ERROR_MSG("mod_megaphone stream ~B: no c2s session: ~p", [Stream, Other]),
            {stop, normal, State}
    catch Class:Why ->
            stream_close(1011, <<"internal error">>, State),
            ?ERROR_MSG("mod_megaphone stream ~B: no c2s session: ~p:~p", [Stream, Class, Why]),
            {stop, normal, State}
    end.

handle_call({send_xml, Packet}, From, State0) ->
    State = case is_auth_success(Packet) of
                true -> authenticated(State0);
                false -> State0
            end,
    case from_c2s(Packet) of
        skip ->
            {reply, ok, State};
        Bin ->
            send_data(From, Bin, State)
    end;
handle_call(close, _From, #state{close_sent = true} = State) ->
    stream_close(1000, <<>>, State),
    {stop, normal, ok, State};
handle_call(close, _From, #state{out_credit = Credit} = State) ->
    Close = from_c2s({xmlstreamend, <<"stream:stream">>}),
    _ = case byte_size(Close) =< Credit andalso queue:is_empty(State#state.waiting) of
            true -> write_data(Close, State);
            false -> ok % no credit for it: the close code says it
        end,
    stream_close(1000, <<>>, State),
    {stop, normal, ok, State};
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

handle_cast({activate, C2S}, #state{input = []} = State) ->
    {noreply, State#state{active = true, c2s = C2S}};
handle_cast({activate, C2S}, State) ->
    {noreply, gc_later(deliver(State#state{c2s = C2S}))};
handle_cast({shaper, Shaper}, State) ->
    {noreply, State#state{shaper = Shaper}};
handle_cast(_Msg, State) ->
    {noreply, State}.

handle_info({megaphone_data, Data}, #state{in_credit = Credit} = State)
  when byte_size(Data) > Credit ->
    ?WARNING_MSG("mod_megaphone stream ~B closed: DATA of ~B bytes over its credit ~B",
                 [State#state.stream, byte_size(Data), Credit]),
    lost(State),
    stream_close(1008, <<"credit exceeded">>, State),
    {stop, normal, State};
handle_info({megaphone_data, <<>>}, State) ->
    {noreply, State};
handle_info({megaphone_data, Data}, #state{in_credit = Credit, input = Input} = State) ->
    Items = to_c2s(Data, State#state.limits),
    State1 = State#state{in_credit = Credit - byte_size(Data),
                         input = Input ++ [{byte_size(Data), Items}]},
    case State1#state.active of
        true -> {noreply, gc_later(deliver(State1))};
        false -> {noreply, State1}
    end;
handle_info({megaphone_window, More}, #state{out_credit = Credit} = State) ->
    flush(State#state{out_credit = Credit + More});
handle_info({megaphone_credit, Bytes}, State) ->
    {noreply, give_credit(Bytes, State)};
handle_info(megaphone_stream_closed, State) ->
    %% The ECM closed the stream (its client's WebSocket is gone).
    mod_megaphone_stats:incr(streams_closed_client_total),
    lost(State),
    {stop, normal, State};
handle_info({'DOWN', _, process, Link, _}, #state{link = Link} = State) ->
    %% The link is gone, and the client's WebSocket with it: a lost socket.
    mod_megaphone_stats:incr(streams_closed_link_lost_total),
    lost(State),
    {stop, normal, State};
handle_info({'DOWN', Mon, process, _, Reason}, #state{c2s_mon = Mon} = State) ->
    Code = case Reason of
               normal -> 1000;
               shutdown -> 1001;
               {shutdown, _} -> 1001;
               _ -> 1011
           end,
    stream_close(Code, <<>>, State),
    {stop, normal, State};
handle_info({timeout, Timer, gc}, #state{gc_timer = Timer, c2s = C2S} = State) ->
    case mod_megaphone:gc_heap_threshold() of
        0 ->
            {noreply, State#state{gc_timer = undefined}};
        Threshold ->
            %% twice, as mod_megaphone_worker does: the second collection
            %% shrinks the heap the first one sized from the garbage
            _ = [erlang:garbage_collect(C2S, [{async, {megaphone_gc, C2S}}])
                 || is_pid(C2S), node(C2S) == node(),
                    {total_heap_size, W} <- [process_info(C2S, total_heap_size)],
                    W > Threshold],
            %% hibernating collects this process and leaves it only its
            %% live words (a forced GC of a hibernated process keeps it so)
            {noreply, State#state{gc_timer = undefined}, hibernate}
    end;
handle_info({garbage_collect, {megaphone_gc, C2S}, _}, State) ->
    mod_megaphone_worker:collect_again(C2S),
    {noreply, State};
handle_info({garbage_collect, megaphone_gc_done, _}, State) ->
    {noreply, State, hibernate}; % it woke for the second collection's answer only
handle_info(_Info, State) ->
    {noreply, State}.

%% The streams_active gauge goes back down here, on every way out; a
%% crash is a close of reason error (the link sends its 1011).
terminate(Reason, #state{c2s = C2S}) ->
    Opened = C2S /= undefined,
    Opened andalso mod_megaphone_stats:add(streams_active, -1),
    case Reason of
        normal -> ok;
        _ when Opened -> mod_megaphone_stats:incr(streams_closed_error_total);
        _ -> mod_megaphone_stats:incr(streams_failed_total)
    end,
    ok.

%%%===================================================================
%%% Out: c2s -> ECM
%%%===================================================================
send_data(From, Bin, #state{max_frame = MaxFrame, out_window = Window} = State)
  when 5 + byte_size(Bin) > MaxFrame; byte_size(Bin) > Window ->
    ?WARNING_MSG("mod_megaphone stream ~B closed: an element of ~B bytes cannot be sent "
                 "(max_frame ~B, window ~B)",
                 [State#state.stream, byte_size(Bin), MaxFrame, Window]),
    gen_server:reply(From, {error, einval}),
    stream_close(1009, <<"message too big">>, State),
    {stop, normal, State};
send_data(From, Bin, #state{out_credit = Credit, waiting = Waiting} = State) ->
    case byte_size(Bin) =< Credit andalso queue:is_empty(Waiting) of
        true ->
            Reply = write_data(Bin, State),
            {reply, Reply, gc_later(sent(Bin, State))};
        false ->
            {noreply, State#state{waiting = queue:in({From, Bin}, Waiting)}}
    end.

%% The calls waiting for credit, in order, while it lasts.
flush(#state{waiting = Waiting, out_credit = Credit} = State) ->
    case queue:peek(Waiting) of
        {value, {From, Bin}} when byte_size(Bin) =< Credit ->
            gen_server:reply(From, write_data(Bin, State)),
            flush(sent(Bin, State#state{waiting = queue:drop(Waiting)}));
        _ ->
            {noreply, State}
    end.

sent(Bin, #state{out_credit = Credit} = State) ->
    State#state{out_credit = Credit - byte_size(Bin),
                close_sent = State#state.close_sent orelse is_close(Bin)}.

write_data(Bin, #state{socket = Socket, stream = Stream}) ->
    case mod_megaphone_transport:send(
           Socket, mod_megaphone_codec:encode(#{type => data, stream => Stream, data => Bin})) of
        ok -> ok;
        {error, _} -> {error, closed}
    end.

is_close(<<"<close ", _/binary>>) -> true;
is_close(_) -> false.

%% What ejabberd_http_ws writes for what the c2s sends (RFC 7395
%% framing): the stream header as <open/>, its end as <close/>, an
%% element with jabber:client when it has no namespace; nothing for a
%% whitespace keepalive.
-spec from_c2s(term()) -> binary() | skip.
from_c2s({xmlstreamstart, _Name, Attrs}) ->
    Attrs1 = [{<<"xmlns">>, ?FRAMING} |
              lists:keydelete(<<"xmlns">>, 1, lists:keydelete(<<"xmlns:stream">>, 1, Attrs))],
    fxml:element_to_binary({xmlel, <<"open">>, Attrs1, []});
from_c2s({xmlstreamend, _}) ->
    fxml:element_to_binary({xmlel, <<"close">>, [{<<"xmlns">>, ?FRAMING}], []});
from_c2s({xmlstreamraw, <<"\r\n\r\n">>}) ->
    skip;
from_c2s({xmlstreamelement, {xmlel, <<"stream:", _/binary>>, _, _} = El}) ->
    fxml:element_to_binary(
      fxml:replace_tag_attr(<<"xmlns:stream">>, <<"http://etherx.jabber.org/streams">>, El));
from_c2s({xmlstreamelement, El}) ->
    case fxml:get_tag_attr_s(<<"xmlns">>, El) of
        <<>> -> fxml:element_to_binary(fxml:replace_tag_attr(<<"xmlns">>, <<"jabber:client">>, El));
        _ -> fxml:element_to_binary(El)
    end;
from_c2s({xmlstreamraw, Bin}) ->
    Bin;
from_c2s({xmlstreamcdata, Bin}) ->
    Bin.

%%%===================================================================
%%% In: ECM -> c2s
%%%===================================================================
%% The c2s's stanza limits (ejabberd_c2s_config:get_c2s_limits/0, the first
%% c2s listener's) before authentication and after it. The pre_auth_ and
%% _elements options exist from ejabberd 26.07 on; without them the
%% limits are max_stanza_size's, the same before and after.
-spec stanza_limits([{atom(), term()}]) -> {limits(), limits()}.
stanza_limits(Opts) ->
    Size = proplists:get_value(max_stanza_size, Opts, infinity),
    Elements = proplists:get_value(max_stanza_elements, Opts, infinity),
    {{proplists:get_value(pre_auth_max_stanza_size, Opts, Size),
      proplists:get_value(pre_auth_max_stanza_elements, Opts, Elements)},
     {Size, Elements}}.

%% What xmpp_stream_in sends when SASL (RFC 6120, or XEP-0388's SASL2)
%% authenticated the client; it raises its parser's limits then.
is_auth_success({xmlstreamelement, {xmlel, <<"success">>, Attrs, _}}) ->
    case lists:keyfind(<<"xmlns">>, 1, Attrs) of
        {_, <<"urn:ietf:params:xml:ns:xmpp-sasl">>} -> true;
        {_, <<"urn:xmpp:sasl:2">>} -> true;
        _ -> false
    end;
is_auth_success(_) ->
    false.

authenticated(#state{post_auth_limits = undefined} = State) ->
    State;
authenticated(#state{post_auth_limits = Limits} = State) ->
    State#state{limits = Limits, post_auth_limits = undefined}.

%% One WebSocket message as the c2s's events (xmpp_socket:parse/2 takes
%% them as a list): size-checked, parsed as one element, its elements
%% counted. Over a limit it is "XML stanza is too big", the one error
%% text xmpp_stream_in makes a policy-violation (fast_xml's for both
%% limits; a stanza of as many elements as the limit is over it there).
-spec to_c2s(binary(), limits()) -> list().
to_c2s(Data, {Max, _}) when is_integer(Max), byte_size(Data) > Max ->
    [{xmlstreamerror, ?TOO_BIG}];
to_c2s(Data, {_, MaxElements}) ->
    case fxml_stream:parse_element(Data) of
        {xmlel, <<"open">>, Attrs, _} ->
            [{xmlstreamstart, <<"stream:stream">>,
              [{<<"xmlns:stream">>, <<"http://etherx.jabber.org/streams">>},
               {<<"xmlns">>, <<"jabber:client">>} |
               lists:keydelete(<<"xmlns">>, 1, lists:keydelete(<<"xmlns:stream">>, 1, Attrs))]}];
        {xmlel, <<"close">>, _, _} ->
            [{xmlstreamend, <<"stream:stream">>}];
        {xmlel, _, _, _} = El when is_integer(MaxElements) ->
            case elements(El, 0) >= MaxElements of
                true -> [{xmlstreamerror, ?TOO_BIG}];
                false -> [El]
            end;
        {xmlel, _, _, _} = El ->
            [El];
        {error, {_, Txt}} when is_binary(Txt) ->
            [{xmlstreamerror, {0, Txt}}];
        {error, _} ->
            [{xmlstreamerror, {0, <<"XML not well-formed">>}}]
    end.

elements({xmlel, _, _, Children}, N) ->
    lists:foldl(fun elements/2, N + 1, Children);
elements(_, N) ->
    N.

%% Everything queued goes to the c2s in one message (as ejabberd_http_ws
%% does); its credit goes back to the ECM after the shaper's pause.
deliver(#state{c2s = C2S, sock = Sock, input = Input, shaper = Shaper} = State) ->
    Bytes = lists:sum([B || {B, _} <- Input]),
    C2S ! {tcp, Sock, lists:append([Items || {_, Items} <- Input])},
    {Shaper1, Pause} = shape(Shaper, Bytes),
    State1 = State#state{input = [], active = false, shaper = Shaper1},
    case Pause > 0 of
        true ->
            erlang:send_after(Pause, self(), {megaphone_credit, Bytes}),
            State1;
        false ->
            give_credit(Bytes, State1)
    end.

shape(none, _) -> {none, 0};
shape(Shaper, Bytes) ->
    {Shaper1, Pause} = ejabberd_shaper:update(Shaper, Bytes),
    {Shaper1, round(Pause)}.

give_credit(0, State) ->
    State;
give_credit(Bytes, #state{socket = Socket, stream = Stream, in_credit = Credit} = State) ->
    _ = mod_megaphone_transport:send(
          Socket, mod_megaphone_codec:encode(
                    #{type => window, stream => Stream, credit => Bytes})),
    State#state{in_credit = Credit + Bytes}.

gc_later(#state{gc_timer = undefined} = State) ->
    State#state{gc_timer = erlang:start_timer(?GC_DELAY, self(), gc)};
gc_later(State) ->
    State.

%%%===================================================================
%%% Ends
%%%===================================================================
%% The c2s loses its socket (SM may keep the session).
lost(#state{c2s = undefined}) -> ok;
lost(#state{c2s = C2S, sock = Sock}) -> C2S ! {tcp_closed, Sock}, ok.

%% The link writes STREAM_CLOSE (and frees the id). Counted here: a stream
%% whose c2s never started as failed, else as closed by the reason of Code.
stream_close(Code, Reason, #state{link = Link, stream = Stream, c2s = C2S}) ->
    mod_megaphone_stats:incr(case C2S of
                                 undefined -> streams_failed_total;
                                 _ -> closed_by(Code)
                             end),
    Link ! {megaphone_stream_close, Stream, self(), Code, Reason},
    ok.

%% The c2s ended the session (1000, 1001 when it was shut down), the ECM
%% sent more than its credit (1008), an element too big (1009), else error.
closed_by(Code) when Code == 1000; Code == 1001 -> streams_closed_server_total;
closed_by(1008) -> streams_closed_credit_total;
closed_by(1009) -> streams_closed_too_big_total;
closed_by(_) -> streams_closed_error_total.
