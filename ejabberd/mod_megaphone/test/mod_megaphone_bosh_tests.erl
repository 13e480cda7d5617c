%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_bosh_tests.erl
%%% Purpose : mod_megaphone_bosh decodes and encodes BOSH bodies exactly as
%%%           ejabberd_bosh does, checked against ejabberd's own functions.
%%%
%%% The setup takes the abstract code (debug_info) of the installed
%%% ejabberd_bosh.beam, renames the module ejabberd_bosh_reference,
%%% compiles it with export_all and loads it; a beam without debug_info
%%% fails the setup (Debian's ejabberd beams carry it). Then:
%%%   * decode (PropEr): for generated request bodies (every attribute
%%%     ejabberd types, with right and wrong values, unknown ones, stanzas,
%%%     other elements, text, another root, malformed XML),
%%%     mod_megaphone_bosh:decode(Data) gives the #body{} ejabberd's
%%%     decode_body(Data, byte_size(Data), xml) gives, or the 400 answer
%%%     of its {error, Reason};
%%%   * encode (PropEr): for generated #body{} records (attributes with
%%%     atom and binary keys, stream events, stanzas, raw XML, junk),
%%%     mod_megaphone_bosh:encode/1 gives the status, reason, Content-Type
%%%     and bytes of ejabberd's bosh_response/2 (bytes: encode_body/2), or
%%%     raises where ejabberd's raises (an attribute that is not a pair:
%%%     mod_megaphone_bosh used to leave it out, found by this property and
%%%     fixed). ejabberd also sends
%%%     Access-Control-Allow-Origin/-Headers, which mod_megaphone does not
%%%     carry (a RESPONSE frame has a content type, no other header);
%%%   * literal cases, so a reader sees the XML: the session-creation
%%%     answer of ejabberd_bosh:wait_for_session/3, an item-not-found
%%%     terminate, a stanza, a stream end, a session-creation request and
%%%     the 400 refusals.
%%% ejabberd calls fxml_stream:parse_element/1 without a try, where ours
%%% answers 400 "XML is not well-formed" if it raised. No input was found
%%% that makes it raise (30000 generated requests, malformed ones among
%%% them: it returns {error, _}); the decode property would accept such a
%%% case (counted as ejabberd_raised) rather than fail on it.
%%% The properties use PropEr without eunit.hrl (the two headers clash),
%%% as mod_megaphone_sequencer_prop_tests does.
%%%----------------------------------------------------------------------
-module(mod_megaphone_bosh_tests).

-include_lib("proper/include/proper.hrl").
-include("mod_megaphone_bosh.hrl").

-export([bosh_codec_is_ejabberds_test_/0,
         prop_decode/1, prop_encode/1]).

-define(REF, ejabberd_bosh_reference).
-define(NS_HTTP_BIND, <<"http://jabber.org/protocol/httpbind">>).
-define(NS_BOSH, <<"urn:xmpp:xbosh">>).
-define(NS_STREAM, <<"http://etherx.jabber.org/streams">>).
-define(NS_CLIENT, <<"jabber:client">>).
-define(DECODE_TESTS, 500).
-define(ENCODE_TESTS, 500).

%%%===================================================================
%%% eunit entry point: everything under one setup (the reference module
%%% and stringprep)
%%%===================================================================
bosh_codec_is_ejabberds_test_() ->
    {setup, fun setup/0, fun cleanup/1,
     [{"decode equals ejabberd's decode_body/3 on generated requests",
       {timeout, 120, fun decode_property/0}},
      {"encode equals ejabberd's bosh_response/2 on generated bodies",
       {timeout, 120, fun encode_property/0}},
      {"the session-creation answer", fun session_creation_answer/0},
      {"an item-not-found terminate", fun item_not_found_terminate/0},
      {"a stanza gets jabber:client, a stream end terminates", fun stanza_and_stream_end/0},
      {"a session-creation request", fun session_creation_request/0},
      {"the refused requests", fun refused_requests/0},
      {"secure says what the link is", fun secure_says_what_the_link_is/0}]}.

setup() ->
    load_reference(),
    %% jid:nameprep/1 needs stringprep's NIF, loaded when its application
    %% starts; fxml's NIFs load with their modules.
    {ok, Started} = application:ensure_all_started(stringprep),
    <<"example.com">> = jid:nameprep(<<"Example.COM">>),
    {xmlel, <<"a">>, [], []} = fxml_stream:parse_element(<<"<a/>">>),
    Started.

cleanup(Started) ->
    _ = code:purge(?REF),
    _ = code:delete(?REF),
    _ = code:purge(?REF),
    [application:stop(App) || App <- lists:reverse(Started)],
    ok.

%% ejabberd's own ejabberd_bosh, from the installed beam's debug_info, as
%% ejabberd_bosh_reference with every function exported.
load_reference() ->
    Beam = case code:which(ejabberd_bosh) of
               Path when is_list(Path) -> Path;
               Other -> fail("ejabberd_bosh.beam is not in the code path (~p): "
                             "make test passes -pa $(EJABBERD_EBIN)", [Other])
           end,
    Forms = case beam_lib:chunks(Beam, [debug_info]) of
                {ok, {Mod, [{debug_info, {debug_info_v1, Backend, Data}}]}} ->
                    case Backend:debug_info(erlang_v1, Mod, Data, []) of
                        {ok, Fs} -> Fs;
                        {error, Why} -> no_debug_info(Beam, Why)
                    end;
                {ok, {_, [{debug_info, Other2}]}} -> no_debug_info(Beam, Other2);
                {error, beam_lib, Why} -> no_debug_info(Beam, Why)
            end,
    Renamed = [case F of
                   {attribute, A, module, ejabberd_bosh} -> {attribute, A, module, ?REF};
                   _ -> F
               end || F <- Forms],
    case compile:forms(Renamed, [binary, export_all, nowarn_export_all, return_errors]) of
        {ok, ?REF, Bin} ->
            {module, ?REF} = code:load_binary(?REF, "ejabberd_bosh_reference (" ++ Beam ++ ")", Bin),
            ok;
        {ok, ?REF, Bin, _Warnings} ->
            {module, ?REF} = code:load_binary(?REF, "ejabberd_bosh_reference (" ++ Beam ++ ")", Bin),
            ok;
        Error ->
            fail("the code of ~ts does not compile as ~p: ~p", [Beam, ?REF, Error])
    end.

no_debug_info(Beam, Why) ->
    fail("~ts carries no debug_info (~w): these tests compare mod_megaphone_bosh "
         "with ejabberd's own ejabberd_bosh code taken from it; install Debian's "
         "ejabberd (its beams have debug_info) or point EJABBERD_EBIN at beams "
         "compiled with +debug_info", [Beam, Why]).

fail(Fmt, Args) ->
    Msg = lists:flatten(io_lib:format(Fmt, Args)),
    io:format(user, "~nmod_megaphone_bosh_tests: ~ts~n", [Msg]),
    erlang:error({mod_megaphone_bosh_tests, Msg}).

%%%===================================================================
%%% The properties, run with a tally of what the cases covered
%%%===================================================================
decode_property() ->
    Tally = check(fun prop_decode/1, ?DECODE_TESTS),
    %% The generator reaches every outcome (each one has a share of a few
    %% percent or more, so a run of 500 misses none).
    [true = maps:get(K, Tally, 0) > 0 orelse fail("no decode case ended as ~p: ~p", [K, Tally])
     || K <- [ok, ok_to_error, invalid_attribute, missing_rid, unexpected_payload,
              not_well_formed]],
    true = maps:get(ok, Tally, 0) >= ?DECODE_TESTS div 5
        orelse fail("too few decoded bodies: ~p", [Tally]),
    ok.

encode_property() ->
    Tally = check(fun prop_encode/1, ?ENCODE_TESTS),
    [true = maps:get(K, Tally, 0) > 0 orelse fail("no encode case covered ~p: ~p", [K, Tally])
     || K <- [ok, raised, self_closing, stream_start, stream_error, stanza]],
    true = maps:get(ok, Tally, 0) >= ?ENCODE_TESTS div 2
        orelse fail("too few encoded bodies: ~p", [Tally]),
    ok.

check(Prop, N) ->
    T = ets:new(tally, [public, set]),
    try
        T0 = erlang:monotonic_time(millisecond),
        case proper:quickcheck(Prop(T), [{numtests, N}, {to_file, user}, long_result]) of
            true ->
                Tally = maps:from_list(ets:tab2list(T)),
                io:format(user, "~n~p cases in ~b ms: ~p~n",
                          [N, erlang:monotonic_time(millisecond) - T0, Tally]),
                Tally;
            CounterExample ->
                fail("property failed, counterexample: ~p", [CounterExample])
        end
    after
        ets:delete(T)
    end.

count(T, Keys) ->
    [ets:update_counter(T, K, 1, {K, 0}) || K <- Keys],
    ok.

%%%===================================================================
%%% decode
%%%===================================================================
prop_decode(T) ->
    ?FORALL(Data, request(),
            begin
                Ours = mod_megaphone_bosh:decode(Data),
                Theirs = try ?REF:decode_body(Data, byte_size(Data), xml)
                         catch C:R -> {raised, C, R}
                         end,
                Same = same_decode(Ours, Theirs),
                _ = Same andalso count(T, decode_keys(Theirs)),
                ?WHENFAIL(io:format(user, "~nrequest: ~p~nmod_megaphone_bosh: ~p~nejabberd: ~p~n",
                                    [Data, Ours, Theirs]),
                          Same)
            end).

same_decode({ok, Body}, {ok, Body}) ->
    true;
same_decode({answer, {400, Reason, Headers, <<>>}}, {error, Reason}) ->
    %% ejabberd answers {error, Reason} with http_error(400, Reason, xml).
    {400, Reason, TheirHeaders, <<>>} = ?REF:http_error(400, Reason, xml),
    content_type(Headers) == content_type(TheirHeaders);
same_decode({answer, {400, <<"XML is not well-formed">>, _, <<>>}}, {raised, _, _}) ->
    %% ejabberd's request would crash here; ours answers 400.
    true;
same_decode(_, _) ->
    false.

decode_keys({ok, #body{attrs = Attrs}}) ->
    [ok | [ok_to_error || lists:member({to, error}, Attrs)]];
decode_keys({error, <<"Invalid ", _/binary>>}) -> [invalid_attribute];
decode_keys({error, <<"Missing \"rid\" attribute">>}) -> [missing_rid];
decode_keys({error, <<"Unexpected payload">>}) -> [unexpected_payload];
decode_keys({error, <<"XML is not well-formed">>}) -> [not_well_formed];
decode_keys({raised, _, _}) -> [ejabberd_raised].

%% A request body: mostly a <body/> to decode, sometimes another root, or
%% one made malformed.
request() ->
    frequency([{14, ?LET(Doc, document(body_name()), iolist_to_binary(Doc))},
               {2, ?LET(Doc, document(other_root()), iolist_to_binary(Doc))},
               {4, malformed()}]).

body_name() ->
    frequency([{12, {<<"body">>, []}},
               {1, {<<"hb:body">>, [{<<"xmlns:hb">>, ?NS_HTTP_BIND}]}}]).

other_root() ->
    elements([{<<"Body">>, []}, {<<"message">>, []}, {<<"bodyx">>, []},
              {<<"stream:stream">>, [{<<"xmlns:stream">>, ?NS_STREAM}]}]).

document(RootGen) ->
    ?LET({Prolog, {Root, Decls}, Attrs, BindXmpp, Children, Quote},
         {elements([<<>>, <<"<?xml version='1.0' encoding='utf-8'?>">>, <<"\n ">>]),
          RootGen, body_attrs(), frequency([{9, true}, {1, false}]),
          short_list(4, child()), elements([$', $"])},
         [Prolog,
          el(Root, Decls ++ xmpp_binding(BindXmpp, Attrs) ++ unique(Attrs), Children, Quote)]).

%% xmpp:version and xmpp:restart need the xmpp prefix bound (else the XML
%% is malformed: unbound prefix).
xmpp_binding(true, Attrs) ->
    case [N || {<<"xmpp:", _/binary>> = N, _} <- Attrs] of
        [] -> [];
        _ -> [{<<"xmlns:xmpp">>, ?NS_BOSH}]
    end;
xmpp_binding(false, _) ->
    [].

%% A rid (most of the time, anywhere among them) and other attributes.
body_attrs() ->
    ?LET({Rid, Others, At},
         {frequency([{6, [{<<"rid">>, int_value()}]}, {1, []}]), short_list(5, attr()), nat()},
         begin
             {L1, L2} = lists:split(At rem (length(Others) + 1), Others),
             L1 ++ Rid ++ L2
         end).

attr() ->
    frequency([{1, {<<"ver">>, oneof([<<"1.6">>, <<"1.11">>, text_value()])}},
               {1, {<<"xmpp:version">>, oneof([<<"1.0">>, text_value()])}},
               {1, {<<"type">>, oneof([<<"terminate">>, text_value()])}},
               {1, {<<"key">>, text_value()}},
               {1, {<<"newkey">>, text_value()}},
               {2, {<<"xmlns">>, frequency([{4, ?NS_HTTP_BIND},
                                            {1, elements([?NS_CLIENT, <<>>, ?NS_BOSH,
                                                          <<"http://jabber.org/protocol/httpbind ">>])}])}},
               {1, {<<"secure">>, bool_value()}},
               {1, {<<"xmpp:restart">>, bool_value()}},
               {2, {<<"to">>, domain_value()}},
               {1, {<<"wait">>, int_value()}},
               {1, {<<"ack">>, int_value()}},
               {1, {<<"sid">>, text_value()}},
               {1, {<<"hold">>, int_value()}},
               {1, {<<"pause">>, int_value()}},
               {3, {unknown_name(), text_value()}}]).

unknown_name() ->
    elements([<<"xml:lang">>, <<"content">>, <<"route">>, <<"from">>, <<"charsets">>,
              <<"polling">>, <<"requests">>, <<"foo">>, <<"RID">>, <<"Wait">>,
              <<"xmlns:stream">>, <<"xmpp:restartlogic">>, <<"stream">>]).

%% Attribute values are written as XML: entities for the special
%% characters, character references sometimes.
int_value() ->
    frequency([{7, ?LET(N, oneof([range(0, 120), range(0, 1 bsl 40), range(0, 1 bsl 70)]),
                        integer_to_binary(N))},
               {1, ?LET(N, range(-1000, -1), integer_to_binary(N))},
               {2, elements([<<>>, <<"abc">>, <<"1.5">>, <<" 5">>, <<"5 ">>, <<"+7">>,
                             <<"-0">>, <<"0x1F">>, <<"007">>, <<"1e3">>, <<"&#49;">>,
                             <<"&#x661;">>, <<"9&amp;">>])}]).

bool_value() ->
    frequency([{6, elements([<<"true">>, <<"1">>, <<"false">>, <<"0">>])},
               {1, elements([<<"TRUE">>, <<"yes">>, <<>>, <<"2">>, <<" true">>, <<"&#49;">>])}]).

domain_value() ->
    frequency([{6, elements([<<"example.com">>, <<"Example.COM">>, <<"localhost">>,
                             <<"xn--bcher-kva.example">>, <<"b&#252;cher.example">>,
                             <<"B&#220;CHER.example">>, <<"user@example.com">>,
                             <<"example.com/res">>, <<"exa mple.com">>, <<>>])},
               %% nameprep refuses these (private use, bidi, control, too
               %% long): ejabberd keeps {to, error}
               {4, elements([<<"a&#xE000;b">>, <<"&#x5D0;a">>, <<"a&#x85;">>,
                             binary:copy(<<"a">>, 1024)])},
               {1, text_value()}]).

text_value() ->
    ?LET(Pieces, short_list(6, text_piece()), iolist_to_binary(Pieces)).

text_piece() ->
    elements([<<"a">>, <<"Z">>, <<"0">>, <<" ">>, <<"-">>, <<".">>, <<"@">>, <<"/">>,
              <<"&amp;">>, <<"&lt;">>, <<"&gt;">>, <<"&apos;">>, <<"&quot;">>,
              <<"é"/utf8>>, <<"中"/utf8>>, <<"&#233;">>, <<"\t">>, <<"\n">>]).

%% What a client puts in a body: stanzas, other elements, text between them.
child() ->
    frequency([{4, stanza()}, {1, other_element()}, {2, text_node()}]).

stanza() ->
    ?LET({Name, Attrs, Kids},
         {elements([<<"message">>, <<"presence">>, <<"iq">>]),
          short_list(3, {elements([<<"to">>, <<"from">>, <<"type">>, <<"id">>, <<"xmlns">>,
                                   <<"xml:lang">>]),
                         oneof([?NS_CLIENT, text_value()])}),
          short_list(2, inner())},
         el(Name, unique(Attrs), Kids, $')).

other_element() ->
    elements([<<"<foo xmlns='bar'/>">>, <<"<body/>">>, <<"<x:y xmlns:x='u'>t</x:y>">>,
              <<"<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>">>,
              <<"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNl</auth>">>]).

inner() ->
    oneof([text_node(),
           ?LET(T, text_value(), [<<"<body>">>, T, <<"</body>">>]),
           <<"<query xmlns='jabber:iq:roster'/>">>,
           <<"<x xmlns='jabber:x:data'><field var='a'/></x>">>]).

text_node() ->
    oneof([text_value(),
           elements([<<" ">>, <<"\n  ">>, <<"<![CDATA[x<y]]>">>, <<"<!-- c -->">>,
                     <<"<?pi data?>">>])]).

%% A well-formed document broken in one way (or, by chance, not broken).
malformed() ->
    ?LET({Doc, Pos, How},
         {document(body_name()), nat(),
          elements([truncate, {insert, <<"<">>}, {insert, <<"&">>}, {insert, <<255>>},
                    {insert, <<0>>}, {insert, <<"</x>">>}, duplicate_attribute, empty,
                    {append, <<"junk">>}, {append, <<"<body/>">>}, unbound_prefix])},
         break(iolist_to_binary(Doc), Pos, How)).

break(Doc, Pos, truncate) ->
    binary:part(Doc, 0, Pos rem (byte_size(Doc) + 1));
break(Doc, Pos, {insert, Bad}) ->
    At = Pos rem (byte_size(Doc) + 1),
    <<Before:At/binary, After/binary>> = Doc,
    <<Before/binary, Bad/binary, After/binary>>;
break(Doc, _, duplicate_attribute) ->
    binary:replace(Doc, <<" rid=">>, <<" rid='1' rid=">>);
break(_, _, empty) ->
    <<>>;
break(Doc, _, {append, Junk}) ->
    <<Doc/binary, Junk/binary>>;
break(Doc, _, unbound_prefix) ->
    binary:replace(Doc, <<"body">>, <<"u:body">>).

%%%===================================================================
%%% encode
%%%===================================================================
prop_encode(T) ->
    ?FORALL(Body, body_record(),
            begin
                Ours = outcome(fun() -> answer(mod_megaphone_bosh:encode(Body)) end),
                Theirs = outcome(fun() -> answer(?REF:bosh_response(Body, xml)) end),
                TheirBody = outcome(fun() -> iolist_to_binary(?REF:encode_body(Body, xml)) end),
                Same = Ours == Theirs andalso body_of(Ours) == TheirBody,
                _ = Same andalso count(T, encode_keys(Body, Theirs)),
                ?WHENFAIL(io:format(user, "~nbody: ~p~nmod_megaphone_bosh: ~p~n"
                                    "ejabberd: ~p~nejabberd's encode_body: ~p~n",
                                    [Body, Ours, Theirs, TheirBody]),
                          Same)
            end).

answer({Status, Reason, Headers, Xml}) ->
    {Status, Reason, content_type(Headers), iolist_to_binary(Xml)}.

outcome(F) ->
    try {ok, F()}
    catch _:_ -> raised
    end.

body_of({ok, {_, _, _, Xml}}) -> {ok, Xml};
body_of(raised) -> raised.

encode_keys(_, raised) ->
    [raised];
encode_keys(#body{els = Els}, {ok, {_, _, _, Xml}}) ->
    Names = [N || {xmlstreamelement, {xmlel, N, _, _}} <- Els],
    [ok] ++
        [self_closing || binary:part(Xml, byte_size(Xml) - 2, 2) == <<"/>">>] ++
        [stream_start || lists:keymember(xmlstreamstart, 1, Els)] ++
        [stream_error || lists:member(<<"stream:error">>, Names)] ++
        [stanza || lists:any(fun(N) -> lists:member(N, [<<"message">>, <<"presence">>, <<"iq">>]) end,
                             Names)].

body_record() ->
    ?LET({Reason, Attrs, Els, Size},
         {elements([<<>>, <<"OK">>, <<"Session ID mismatch">>, <<"BOSH session not found">>]),
          short_list(6, out_attr()), short_list(5, out_el()), nat()},
         #body{http_reason = Reason, attrs = Attrs, els = Els, size = Size}).

out_attr() ->
    frequency([{30, {atom_key(), out_value()}},
               {15, {binary_key(), raw_text()}},
               %% ejabberd writes neither (fxml:crypt/1 raises): both raise
               {1, {binary_key(), oneof([true, nat()])}},
               {1, {atom_key(), elements([-1, foo, 1.5, "list"])}},
               %% keys of neither kind: ejabberd writes what is iodata
               {1, {elements(["foo", [<<"x">>, $y], 42]), raw_text()}},
               %% not a pair: ejabberd raises
               {1, elements([foo, {a, <<"b">>, c}, {}, [{a, <<"b">>}]])}]).

atom_key() ->
    elements([sid, wait, ver, polling, inactivity, hold, 'xmpp:restartlogic', requests,
              secure, maxpause, 'xmlns:xmpp', 'xmlns:stream', from, type, condition,
              authid, ack, 'xmpp:version', to, xmlns, report, time]).

binary_key() ->
    elements([<<"type">>, <<"condition">>, <<"xmlns:stream">>, <<"xmlns:xmpp">>,
              <<"xmpp:version">>, <<"authid">>, <<"xmlns">>, <<"foo">>, <<"data-x">>]).

out_value() ->
    oneof([true, false, range(0, 300), range(0, 1 bsl 64), raw_text()]).

%% Text as an Erlang binary (fxml escapes it).
raw_text() ->
    ?LET(Pieces, short_list(6, elements([<<"a">>, <<"Z">>, <<"1">>, <<" ">>, <<"<">>, <<">">>,
                                         <<"&">>, <<"'">>, <<"\"">>, <<"\n">>,
                                         <<"é"/utf8>>, <<"]]>">>])),
         iolist_to_binary(Pieces)).

out_el() ->
    frequency([{8, {xmlstreamelement, out_xmlel()}},
               {1, {xmlstreamelement, {xmlcdata, raw_text()}}},
               {3, {xmlstreamstart, <<"stream:stream">>, stream_attrs()}},
               {1, {xmlstreamstart, elements([<<"stream">>, <<"stream:features">>]), stream_attrs()}},
               {1, {xmlstreamend, elements([<<"stream:stream">>, <<"x">>])}},
               {1, {xmlstreamerror, elements([<<"XML stanza is too big">>, {error, closed}])}},
               {2, {xmlstreamraw, oneof([raw_text(), [<<"<a/>">>, "<b>", [<<"c">>], <<"</b>">>]])}},
               {1, elements([foo, {foo}, 42, <<"<a/>">>, {xmlstreamelement},
                             {xmlstreamstart, <<"stream:stream">>}, {xmlstreamraw, <<"x">>, y}])},
               %% not an element: both raise
               {1, elements([{xmlstreamelement, not_an_element}, {xmlstreamraw, an_atom}])}]).

out_xmlel() ->
    ?LET({Name, Attrs, Kids},
         {elements([<<"stream:error">>, <<"stream:features">>, <<"message">>, <<"presence">>,
                    <<"iq">>, <<"foo">>, <<"body">>, <<"Message">>, <<"stream:stream">>]),
          short_list(3, oneof([{<<"xmlns">>, elements([?NS_CLIENT, <<"jabber:server">>, <<"urn:x">>])},
                               {elements([<<"to">>, <<"from">>, <<"type">>, <<"id">>, <<"xml:lang">>,
                                          <<"xmlns:stream">>]),
                                raw_text()}])),
          short_list(3, frequency([{2, {xmlcdata, raw_text()}},
                                   {1, ?LET({N, A}, {elements([<<"body">>, <<"conflict">>, <<"bind">>]),
                                                     short_list(2, {elements([<<"xmlns">>, <<"a">>]), raw_text()})},
                                            {xmlel, N, A, []})}]))},
         {xmlel, Name, Attrs, Kids}).

stream_attrs() ->
    short_list(4, oneof([{<<"id">>, elements([<<"3d1f0">>, <<>>, <<"a'b">>])},
                         {<<"version">>, elements([<<"1.0">>, <<>>, <<"0.9">>])},
                         {<<"xmlns">>, ?NS_CLIENT},
                         {<<"xmlns:stream">>, ?NS_STREAM},
                         {<<"from">>, <<"example.com">>},
                         {<<"xml:lang">>, <<"en">>}])).

%%%===================================================================
%%% Literal cases
%%%===================================================================
%% The body ejabberd_bosh:wait_for_session/3 answers a session creation
%% with (values of a default mod_bosh; the sid made up), once the c2s has
%% sent its stream header and features.
session_creation_answer() ->
    Body = #body{attrs = [{sid, <<"8c1b">>}, {wait, 60}, {ver, <<"1.11">>}, {polling, 2},
                          {inactivity, 30}, {hold, 1}, {'xmpp:restartlogic', true},
                          {requests, 2}, {secure, true}, {maxpause, 120},
                          {'xmlns:xmpp', ?NS_BOSH}, {'xmlns:stream', ?NS_STREAM},
                          {from, <<"example.com">>}],
                 els = [{xmlstreamstart, <<"stream:stream">>,
                         [{<<"xmlns">>, ?NS_CLIENT}, {<<"xmlns:stream">>, ?NS_STREAM},
                          {<<"xml:lang">>, <<"en">>}, {<<"id">>, <<"5b2e">>},
                          {<<"version">>, <<"1.0">>}, {<<"from">>, <<"example.com">>}]},
                        {xmlstreamelement,
                         {xmlel, <<"stream:features">>, [],
                          [{xmlel, <<"mechanisms">>,
                            [{<<"xmlns">>, <<"urn:ietf:params:xml:ns:xmpp-sasl">>}],
                            [{xmlel, <<"mechanism">>, [], [{xmlcdata, <<"PLAIN">>}]}]}]}}]},
    Xml = <<"<body xmpp:version='1.0' authid='5b2e'"
            " xmlns='http://jabber.org/protocol/httpbind' sid='8c1b' wait='60' ver='1.11'"
            " polling='2' inactivity='30' hold='1' xmpp:restartlogic='true' requests='2'"
            " secure='true' maxpause='120' xmlns:xmpp='urn:xmpp:xbosh'"
            " xmlns:stream='http://etherx.jabber.org/streams' from='example.com'>"
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            "<mechanism>PLAIN</mechanism></mechanisms></stream:features></body>">>,
    same_answer({200, <<>>, <<"text/xml; charset=utf-8">>, Xml}, Body).

%% The answer when the session is gone (as process_request/4 builds it).
item_not_found_terminate() ->
    Body = mod_megaphone_bosh:terminate(<<"item-not-found">>, <<"BOSH session not found">>),
    equal(#body{http_reason = <<"BOSH session not found">>,
                attrs = [{type, <<"terminate">>}, {condition, <<"item-not-found">>}]},
          Body),
    same_answer({200, <<"BOSH session not found">>, <<"text/xml; charset=utf-8">>,
                 <<"<body xmlns='http://jabber.org/protocol/httpbind' type='terminate'"
                   " condition='item-not-found'/>">>},
                Body).

stanza_and_stream_end() ->
    Message = {xmlel, <<"message">>, [{<<"to">>, <<"alice@example.com">>}, {<<"type">>, <<"chat">>}],
               [{xmlel, <<"body">>, [], [{xmlcdata, <<"hi & 'bye'">>}]}]},
    same_answer({200, <<>>, <<"text/xml; charset=utf-8">>,
                 <<"<body xmlns='http://jabber.org/protocol/httpbind' sid='8c1b'>"
                   "<message to='alice@example.com' type='chat' xmlns='jabber:client'>"
                   "<body>hi &amp; &apos;bye&apos;</body></message></body>">>},
                #body{attrs = [{sid, <<"8c1b">>}], els = [{xmlstreamelement, Message}]}),
    same_answer({200, <<>>, <<"text/xml; charset=utf-8">>,
                 <<"<body type='terminate' condition='remote-stream-error'"
                   " xmlns='http://jabber.org/protocol/httpbind' sid='8c1b'/>">>},
                #body{attrs = [{sid, <<"8c1b">>}], els = [{xmlstreamend, <<"stream:stream">>}]}).

%% XEP-0206's session request: typed attributes become atoms (to
%% nameprepped, numbers integers), others stay binaries; the list is in
%% reverse order of fxml's, which has the namespace declarations first; the
%% xmlns is checked and left out; text between elements is dropped.
session_creation_request() ->
    Data = <<"<body content='text/xml; charset=utf-8' from='user@example.com' hold='1'"
             " rid='1573741820' to='Example.COM' wait='60' xml:lang='en' xmpp:version='1.0'"
             " xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'>"
             "\n<presence/> text </body>">>,
    Expected = #body{attrs = [{'xmpp:version', <<"1.0">>}, {<<"xml:lang">>, <<"en">>},
                              {wait, 60}, {to, <<"example.com">>}, {rid, 1573741820},
                              {hold, 1}, {<<"from">>, <<"user@example.com">>},
                              {<<"content">>, <<"text/xml; charset=utf-8">>},
                              {<<"xmlns:xmpp">>, <<"urn:xmpp:xbosh">>}],
                     els = [{xmlstreamelement, {xmlel, <<"presence">>, [], []}}],
                     size = byte_size(Data)},
    equal({ok, Expected}, ?REF:decode_body(Data, byte_size(Data), xml)),
    equal({ok, Expected}, mod_megaphone_bosh:decode(Data)).

refused_requests() ->
    [begin
         equal({error, Reason}, ?REF:decode_body(Data, byte_size(Data), xml)),
         {answer, {400, Reason, _, <<>>}} = mod_megaphone_bosh:decode(Data)
     end
     || {Data, Reason} <- [{<<"<body sid='8c1b'/>">>, <<"Missing \"rid\" attribute">>},
                           {<<"<body rid='-1'/>">>, <<"Invalid \"rid\" attribute">>},
                           {<<"<body rid='1' xmlns='jabber:client'/>">>, <<"Invalid \"xmlns\" attribute">>},
                           {<<"<message rid='1'/>">>, <<"Unexpected payload">>},
                           {<<"<body rid='1'">>, <<"XML is not well-formed">>}]],
    ok.

%% Expected is {Status, Reason, ContentType, Xml}: ejabberd's answer and ours.
same_answer(Expected, Body) ->
    equal(Expected, answer(?REF:bosh_response(Body, xml))),
    equal(Expected, answer(mod_megaphone_bosh:encode(Body))).

%%%===================================================================
%%% Helpers
%%%===================================================================
equal(Expected, Expected) ->
    ok;
equal(Expected, Actual) ->
    erlang:error({not_equal, [{expected, Expected}, {actual, Actual}]}).

content_type(Headers) ->
    proplists:get_value(<<"Content-Type">>, Headers).

%% A list of at most Max elements of Gen.
short_list(Max, Gen) ->
    ?LET(N, range(0, Max), vector(N, Gen)).

%% Attributes with the first of each name (a repeated one is malformed XML,
%% which malformed/0 makes on purpose).
unique(Attrs) ->
    lists:reverse(lists:foldl(fun({N, _} = A, Acc) ->
                                      case lists:keymember(N, 1, Acc) of
                                          true -> Acc;
                                          false -> [A | Acc]
                                      end
                              end, [], Attrs)).

el(Name, Attrs, [], Quote) ->
    [$<, Name, xml_attrs(Attrs, Quote), <<"/>">>];
el(Name, Attrs, Children, Quote) ->
    [$<, Name, xml_attrs(Attrs, Quote), $>, Children, <<"</">>, Name, $>].

xml_attrs(Attrs, Quote) ->
    [[$\s, N, $=, Quote, V, Quote] || {N, V} <- Attrs].


%% Ensures the creation answer's root 'secure' is set to what the link is,
%% in either quote style, and nothing else changes (not a child's
%% attribute, not a body without one, not a truncated one).
secure_says_what_the_link_is() ->
    Created = <<"<body xmlns='http://jabber.org/protocol/httpbind' sid='s1' secure='true'"
                " requests='2'><stream:features secure='true'/></body>">>,
    <<"<body xmlns='http://jabber.org/protocol/httpbind' sid='s1' secure='false'"
      " requests='2'><stream:features secure='true'/></body>">> =
        mod_megaphone_bosh:secure(Created, false),
    Created = mod_megaphone_bosh:secure(Created, true),
    <<"<body secure=\"true\" sid='s'/>">> =
        mod_megaphone_bosh:secure(<<"<body secure=\"false\" sid='s'/>">>, true),
    <<"<body sid='s'><x secure='true'/></body>">> =
        mod_megaphone_bosh:secure(<<"<body sid='s'><x secure='true'/></body>">>, false),
    <<"<body secure='tr">> = mod_megaphone_bosh:secure(<<"<body secure='tr">>, false),
    ok.
