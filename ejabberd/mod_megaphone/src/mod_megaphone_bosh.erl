%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_bosh.erl
%%% Purpose : The two ends of ejabberd_bosh:process_request/3 that a held
%%%           request needs without a process of its own: a request body
%%%           decoded into the event a BOSH session process takes, and that
%%%           process's answer encoded into the HTTP answer.
%%%
%%% ejabberd_bosh:process_request/3 decodes the body into a #body{} record,
%%% hands it to the session with p1_fsm:sync_send_event/3 (the message
%%% {'$gen_sync_event', From, Body}) and waits for the reply, which p1_fsm
%%% sends as To ! {Tag, Reply} for From = {To, Tag}. mod_megaphone_sequencer
%%% sends that message itself with a From of its own, so nothing waits in a
%%% process while ejabberd holds the request. The #body{} record, the
%%% attribute conversions and the encoding below behave as ejabberd_bosh's
%%% in 23.01, 24.12 and 26.07 (the same code in the three); the eunit tests
%%% compare both on generated bodies, with ejabberd's own functions taken
%%% from the installed ejabberd_bosh.beam.
%%%----------------------------------------------------------------------
-module(mod_megaphone_bosh).

-export([decode/1, encode/1, terminate/2, sync_event/2, max_stanza_size/0, secure/2]).

-include("mod_megaphone_bosh.hrl").

-define(NS_HTTP_BIND, <<"http://jabber.org/protocol/httpbind">>).
-define(NS_BOSH, <<"urn:xmpp:xbosh">>).
-define(NS_STREAM, <<"http://etherx.jabber.org/streams">>).
-define(NS_CLIENT, <<"jabber:client">>).
-define(CT_XML, <<"text/xml; charset=utf-8">>).

-type result() :: {non_neg_integer(), binary(), [{binary(), binary()}], iodata()}.
-export_type([result/0]).

%%%===================================================================
%%% API
%%%===================================================================
%% The request body as ejabberd_bosh's session process takes it, or the
%% HTTP answer that process_request/3 gives a body it refuses (403 over
%% the first c2s listener's max_stanza_size, 400 when malformed).
-spec decode(binary()) -> {ok, #body{}} | {answer, result()}.
decode(Data) ->
    Size = byte_size(Data),
    case Size > max_stanza_size() of
        true -> {answer, http_error(403, <<"Request Too Large">>)};
        false -> decode(Data, Size)
    end.

%% ejabberd_bosh's answer to a request: 200 with the encoded body.
-spec encode(#body{}) -> result().
encode(#body{http_reason = Reason} = Body) ->
    {200, Reason, [{<<"Content-Type">>, ?CT_XML}], encode_body(Body)}.

%% The terminate body ejabberd_bosh answers with Condition (for a session
%% that is not found, item-not-found; for one that failed,
%% internal-server-error).
-spec terminate(binary(), binary()) -> #body{}.
terminate(Condition, HttpReason) ->
    #body{http_reason = HttpReason,
          attrs = [{type, <<"terminate">>}, {condition, Condition}]}.

%% The message p1_fsm:sync_send_event(Pid, Body, _) sends to Pid; its
%% reply goes to To as {Tag, Reply} for From = {To, Tag}.
-spec sync_event({pid(), term()}, #body{}) -> tuple().
sync_event(From, Body) ->
    {'$gen_sync_event', From, Body}.

%% A session-creation answer whose root 'secure' attribute says Secure:
%% XEP-0124 has it tell the client whether the hop from the connection
%% manager to the server is secure, which is the link, while ejabberd
%% always writes 'true'. A body without the attribute is left as it is.
-spec secure(binary(), boolean()) -> binary().
secure(Body, Secure) ->
    StartTag = case binary:match(Body, <<">">>) of
                   {End, _} -> End;
                   nomatch -> byte_size(Body)
               end,
    case binary:match(Body, [<<" secure='">>, <<" secure=\"">>], [{scope, {0, StartTag}}]) of
        {At, Len} ->
            Quote = binary:at(Body, At + Len - 1),
            case binary:match(Body, <<Quote>>, [{scope, {At + Len, StartTag - At - Len}}]) of
                {Close, _} ->
                    Value = atom_to_binary(Secure, utf8),
                    <<(binary:part(Body, 0, At + Len))/binary, Value/binary,
                      (binary:part(Body, Close, byte_size(Body) - Close))/binary>>;
                nomatch ->
                    Body
            end;
        nomatch ->
            Body
    end.

%% The first c2s listener's max_stanza_size, as process_request/3 reads it
%% for every request (infinity without one, or without ejabberd: tests).
-spec max_stanza_size() -> pos_integer() | infinity.
max_stanza_size() ->
    try proplists:get_value(max_stanza_size, ejabberd_c2s_config:get_c2s_limits(), infinity)
    catch _:_ -> infinity
    end.

%%%===================================================================
%%% Decoding
%%%===================================================================
decode(Data, Size) ->
    try fxml_stream:parse_element(Data) of
        {xmlel, <<"body">>, Attrs, Children} ->
            case body_attrs(Attrs) of
                {error, Reason} ->
                    {answer, http_error(400, Reason)};
                BodyAttrs ->
                    case proplists:get_value(rid, BodyAttrs, <<>>) of
                        <<>> ->
                            {answer, http_error(400, <<"Missing \"rid\" attribute">>)};
                        _ ->
                            Els = [{xmlstreamelement, El} || {xmlel, _, _, _} = El <- Children],
                            {ok, #body{attrs = BodyAttrs, size = Size, els = Els}}
                    end
            end;
        {xmlel, _, _, _} ->
            {answer, http_error(400, <<"Unexpected payload">>)};
        _ ->
            {answer, http_error(400, <<"XML is not well-formed">>)}
    catch _:_ ->
            {answer, http_error(400, <<"XML is not well-formed">>)}
    end.

%% Attributes in reverse order, typed as ejabberd_bosh types them; the
%% first one that does not convert makes the body malformed.
body_attrs(Attrs) ->
    lists:foldl(
      fun(_, {error, _} = Err) -> Err;
         ({Name, Value}, Acc) ->
              try [body_attr(Name, Value) | Acc]
              catch
                  throw:skip -> Acc;
                  _:_ -> {error, <<"Invalid \"", Name/binary, "\" attribute">>}
              end
      end, [], Attrs).

body_attr(<<"ver">>, V) -> {ver, V};
body_attr(<<"xmpp:version">>, V) -> {'xmpp:version', V};
body_attr(<<"type">>, V) -> {type, V};
body_attr(<<"key">>, V) -> {key, V};
body_attr(<<"newkey">>, V) -> {newkey, V};
body_attr(<<"xmlns">>, ?NS_HTTP_BIND) -> throw(skip);
body_attr(<<"xmlns">>, _) -> error(badarg);
body_attr(<<"secure">>, V) -> {secure, bool(V)};
body_attr(<<"xmpp:restart">>, V) -> {'xmpp:restart', bool(V)};
body_attr(<<"to">>, V) -> {to, jid:nameprep(V)};
body_attr(<<"wait">>, V) -> {wait, non_neg(V)};
body_attr(<<"ack">>, V) -> {ack, non_neg(V)};
body_attr(<<"sid">>, V) -> {sid, V};
body_attr(<<"hold">>, V) -> {hold, non_neg(V)};
body_attr(<<"rid">>, V) -> {rid, non_neg(V)};
body_attr(<<"pause">>, V) -> {pause, non_neg(V)};
body_attr(Name, V) -> {Name, V}.

non_neg(V) ->
    case binary_to_integer(V) of
        I when I >= 0 -> I;
        _ -> error(badarg)
    end.

bool(<<"true">>) -> true;
bool(<<"1">>) -> true;
bool(<<"false">>) -> false;
bool(<<"0">>) -> false.

http_error(Status, Reason) ->
    {Status, Reason, [{<<"Content-Type">>, ?CT_XML}], <<>>}.

%%%===================================================================
%%% Encoding
%%%===================================================================
encode_body(#body{attrs = Attrs, els = Els}) ->
    Base = [{<<"xmlns">>, ?NS_HTTP_BIND} | [out_attr(A) || A <- Attrs]],
    %% Right to left, as ejabberd_bosh folds: stream events add attributes
    %% in front, so their order in the answer is the same.
    {BodyAttrs, Xml} = lists:foldr(fun out_el/2, {Base, []}, Els),
    case Xml of
        [] -> [<<"<body">>, xml_attrs(BodyAttrs), <<"/>">>];
        _ -> [<<"<body">>, xml_attrs(BodyAttrs), $>, Xml, <<"</body>">>]
    end.

out_attr({K, V}) when is_atom(K) ->
    Name = iolist_to_binary(atom_to_list(K)),
    case V of
        true -> {Name, <<"true">>};
        false -> {Name, <<"false">>};
        I when is_integer(I), I >= 0 -> {Name, integer_to_binary(I)};
        _ -> {Name, V}
    end;
out_attr({_, _} = Attr) ->
    Attr.

out_el({xmlstreamraw, Raw}, {Attrs, Xml}) ->
    {Attrs, [Raw | Xml]};
out_el({xmlstreamelement, {xmlel, <<"stream:error">>, _, _} = El}, {Attrs, Xml}) ->
    {[{<<"type">>, <<"terminate">>}, {<<"condition">>, <<"remote-stream-error">>},
      {<<"xmlns:stream">>, ?NS_STREAM} | Attrs],
     [fxml:element_to_binary(El) | Xml]};
out_el({xmlstreamelement, {xmlel, <<"stream:features">>, _, _} = El}, {Attrs, Xml}) ->
    {lists:keystore(<<"xmlns:stream">>, 1, Attrs, {<<"xmlns:stream">>, ?NS_STREAM}),
     [fxml:element_to_binary(El) | Xml]};
out_el({xmlstreamelement, {xmlel, Name, ElAttrs, Children}}, {Attrs, Xml})
  when Name == <<"message">>; Name == <<"presence">>; Name == <<"iq">> ->
    Client = lists:keystore(<<"xmlns">>, 1, ElAttrs, {<<"xmlns">>, ?NS_CLIENT}),
    {Attrs, [fxml:element_to_binary({xmlel, Name, Client, Children}) | Xml]};
out_el({xmlstreamelement, El}, {Attrs, Xml}) ->
    {Attrs, [fxml:element_to_binary(El) | Xml]};
out_el({xmlstreamend, _}, {Attrs, Xml}) ->
    {[{<<"type">>, <<"terminate">>}, {<<"condition">>, <<"remote-stream-error">>} | Attrs], Xml};
out_el({xmlstreamstart, <<"stream:stream">>, StreamAttrs}, {Attrs, Xml}) ->
    Id = fxml:get_attr_s(<<"id">>, StreamAttrs),
    case fxml:get_attr_s(<<"version">>, StreamAttrs) of
        <<>> ->
            {[{<<"authid">>, Id} | Attrs], Xml};
        Version ->
            {lists:keystore(<<"xmlns:xmpp">>, 1,
                            [{<<"xmpp:version">>, Version}, {<<"authid">>, Id} | Attrs],
                            {<<"xmlns:xmpp">>, ?NS_BOSH}),
             Xml}
    end;
out_el({xmlstreamerror, _}, {Attrs, Xml}) ->
    {[{<<"type">>, <<"terminate">>}, {<<"condition">>, <<"remote-stream-error">>} | Attrs], Xml};
out_el(_, Acc) ->
    Acc.

%% Every attribute is a pair: anything else raises (as in ejabberd_bosh),
%% it is not left out of the answer.
xml_attrs(Attrs) ->
    [xml_attr(Attr) || Attr <- Attrs].

xml_attr({Name, Value}) ->
    [$\s, Name, $=, $', fxml:crypt(Value), $'].
