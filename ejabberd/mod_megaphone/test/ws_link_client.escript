#!/usr/bin/env escript
%%! -noinput
%% SPDX-License-Identifier: GPL-2.0-or-later
%%% A live check of link protocol version 2 against a running ejabberd with
%%% mod_megaphone (e.g. scripts/private-ejabberd.sh): a v2 link, one
%%% WebSocket stream from the asserted address 203.0.113.9:41000, the
%%% RFC 7395 <open/>, SASL PLAIN, the stream restart, bind, a message to
%%% itself that comes back as DATA, then <close/>; and a v1 link that is
%%% welcomed exactly as before.
%%%
%%%   escript ws_link_client.escript HOST:PORT SECRET DOMAIN USER PASSWORD [CTL_DIR]
%%%
%%% With CTL_DIR (a private-ejabberd.sh instance) it also checks, while the
%%% session is bound, that `connected_users_info` lists it as websocket
%%% from 203.0.113.9, and that a killed link ends the session (no stream
%%% management here). Uses the module's codec (ebin/ next to test/).
%%% Prints one ok / FAIL line per check; exit status = failures.
-mode(compile).

-define(FRAMING, "urn:ietf:params:xml:ns:xmpp-framing").

main([HostPort, Secret, Domain, User, Password | Rest]) ->
    Here = filename:dirname(escript:script_name()),
    true = code:add_patha(filename:join([Here, "..", "ebin"])),
    [Host, PortS] = string:split(HostPort, ":", trailing),
    Addr = {Host, list_to_integer(PortS)},
    put(failures, 0),
    v1_link(Addr, list_to_binary(Secret)),
    v2_stream(Addr, list_to_binary(Secret), list_to_binary(Domain), list_to_binary(User),
              list_to_binary(Password), Rest),
    case Rest of
        [Ctl | _] ->
            sm_resume(Addr, list_to_binary(Secret), list_to_binary(Domain), list_to_binary(User),
                      list_to_binary(Password), Ctl);
        [] -> ok
    end,
    halt(get(failures));
main(_) ->
    io:format(standard_error,
              "usage: escript ws_link_client.escript HOST:PORT SECRET DOMAIN USER PASSWORD [CTL_DIR]~n", []),
    halt(2).

v1_link(Addr, Secret) ->
    {C, Hello} = connect(Addr, Secret, 1),
    check("HELLO offers versions 1 to 2", maps:get(max_version, Hello) == 2
          andalso maps:get(min_version, Hello) == 1),
    {ok, W} = recv(C),
    check("a v1 AUTH gets a v1 WELCOME (no stream fields)",
          maps:get(type, W) == welcome andalso not maps:is_key(max_streams, W)),
    gen_tcp:close(C).

v2_stream(Addr, Secret, Domain, User, Password, Rest) ->
    {C, _} = connect(Addr, Secret, 2),
    {ok, W} = recv(C),
    check("a v2 AUTH gets WELCOME with max_streams and stream_window",
          maps:is_key(max_streams, W) andalso maps:is_key(stream_window, W)),
    send(C, #{type => stream_open, stream => 1, ip => {203, 0, 113, 9}, port => 41000,
              window => 65536}),
    {ok, Opened} = recv(C),
    check("STREAM_OPEN is answered STREAM_OPENED with stream_window",
          Opened == #{type => stream_opened, stream => 1,
                      window => maps:get(stream_window, W)}),
    Open = <<"<open xmlns='" ?FRAMING "' to='", Domain/binary, "' version='1.0'/>">>,
    data(C, Open),
    Header = data_in(C),
    check("the stream header comes back as <open xmlns=framing/>",
          match(Header, <<"^<open ">>) andalso match(Header, <<?FRAMING>>)),
    Features = data_in(C),
    check("then stream features with PLAIN", match(Features, <<"PLAIN">>)),
    Plain = base64:encode(<<0, User/binary, 0, Password/binary>>),
    data(C, <<"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>",
              Plain/binary, "</auth>">>),
    check("SASL PLAIN succeeds", match(data_in(C), <<"^<success">>)),
    data(C, Open),
    check("the restart's header is an <open/> again", match(data_in(C), <<"^<open ">>)),
    check("features after auth offer bind", match(data_in(C), <<"bind">>)),
    data(C, <<"<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              "<resource>ws</resource></bind></iq>">>),
    Bound = data_in(C),
    check("bind answers a full JID", match(Bound, <<"<jid>", User/binary, "@">>)),
    Jid = <<User/binary, "@", Domain/binary, "/ws">>,
    case Rest of
        [Ctl | _] ->
            Info = ctl(Ctl, "connected_users_info"),
            check("connected_users_info says websocket from 203.0.113.9",
                  match(list_to_binary(Info), <<"ws\\s+websocket\\s+203\\.0\\.113\\.9\\s+41000">>)
                  orelse match(list_to_binary(Info), <<"websocket.*203\\.0\\.113\\.9">>)),
            io:format("    ~ts", [Info]);
        [] -> ok
    end,
    data(C, <<"<message to='", Jid/binary, "' id='m1' type='chat' xmlns='jabber:client'>"
              "<body>hello over a megaphone stream</body></message>">>),
    Echo = data_in_matching(C, <<"<message">>),
    check("a message to itself comes back as DATA",
          match(Echo, <<"hello over a megaphone stream">>)),
    case Rest of
        [Ctl2 | _] ->
            %% the link dies: the session (no SM) must end
            gen_tcp:close(C),
            Gone = wait(fun() -> not match(list_to_binary(ctl(Ctl2, "connected_users_info")),
                                           <<"203\\.0\\.113\\.9">>) end, 50),
            check("a lost link ends the session (no stream management)", Gone);
        [] ->
            data(C, <<"<close xmlns='" ?FRAMING "'/>">>),
            check("<close/> is answered <close/>",
                  match(data_in(C), <<"^<close ">>)),
            {ok, Closed} = recv(C),
            check("then STREAM_CLOSE 1000",
                  maps:with([type, stream, code], Closed) ==
                      #{type => stream_close, stream => 1, code => 1000}),
            gen_tcp:close(C)
    end.

%% Stream management over a stream: the link dies, the session is kept
%% (pending), and a stream on a new link resumes it.
sm_resume(Addr, Secret, Domain, User, Password, Ctl) ->
    C = logged_in(Addr, Secret, Domain, User, Password, <<"sm">>),
    data(C, <<"<enable xmlns='urn:xmpp:sm:3' resume='true'/>">>),
    Enabled = data_in_matching(C, <<"<enabled">>),
    {match, [Id]} = re:run(Enabled, <<"id='([^']+)'">>, [{capture, all_but_first, binary}]),
    gen_tcp:close(C),
    timer:sleep(500),
    check("with stream management a lost link keeps the session",
          match(list_to_binary(ctl(Ctl, "connected_users_info")), <<"/sm">>)),
    C2 = authenticated(Addr, Secret, Domain, User, Password),
    data(C2, <<"<resume xmlns='urn:xmpp:sm:3' previd='", Id/binary, "' h='0'/>">>),
    check("a stream on a new link resumes it", match(data_in_matching(C2, <<"<resumed|<failed">>),
                                                     <<"^<resumed">>)),
    data(C2, <<"<close xmlns='" ?FRAMING "'/>">>),
    gen_tcp:close(C2).

authenticated(Addr, Secret, Domain, User, Password) ->
    {C, _} = connect(Addr, Secret, 2),
    {ok, #{type := welcome}} = recv(C),
    send(C, #{type => stream_open, stream => 1, ip => {203, 0, 113, 9}, port => 41001,
              window => 65536}),
    {ok, #{type := stream_opened}} = recv(C),
    Open = <<"<open xmlns='" ?FRAMING "' to='", Domain/binary, "' version='1.0'/>">>,
    data(C, Open),
    _ = data_in_matching(C, <<"<stream:features|<features">>),
    Plain = base64:encode(<<0, User/binary, 0, Password/binary>>),
    data(C, <<"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>",
              Plain/binary, "</auth>">>),
    <<"<success", _/binary>> = data_in(C),
    data(C, Open),
    _ = data_in_matching(C, <<"bind">>),
    C.

logged_in(Addr, Secret, Domain, User, Password, Resource) ->
    C = authenticated(Addr, Secret, Domain, User, Password),
    data(C, <<"<iq type='set' id='b1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              "<resource>", Resource/binary, "</resource></bind></iq>">>),
    _ = data_in_matching(C, <<"<jid>">>),
    C.

%%% A minimal ECM side
connect({Host, Port}, Secret, Version) ->
    {ok, C} = gen_tcp:connect(Host, Port, [binary, {packet, 4}, {active, false}]),
    {ok, #{type := hello, nonce := SN} = Hello} = recv(C),
    CN = crypto:strong_rand_bytes(32),
    send(C, #{type => auth, version => Version, nonce => CN,
              mac => mod_megaphone_codec:auth_mac(Secret, Version, SN, CN, <<"ws-escript">>),
              name => <<"ws-escript">>}),
    {C, Hello}.

send(C, Frame) -> ok = gen_tcp:send(C, mod_megaphone_codec:encode(Frame)).

data(C, Bin) -> send(C, #{type => data, stream => 1, data => Bin}).

recv(C) ->
    case gen_tcp:recv(C, 0, 5000) of
        {ok, B} -> mod_megaphone_codec:decode(B);
        Err -> Err
    end.

%% The next DATA of stream 1 (WINDOW frames skipped).
data_in(C) ->
    case recv(C) of
        {ok, #{type := data, stream := 1, data := D}} -> iolist_to_binary(D);
        {ok, #{type := window}} -> data_in(C);
        Other -> io:format("    unexpected: ~p~n", [Other]), <<>>
    end.

%% The next DATA that matches Re (presence and the like skipped).
data_in_matching(C, Re) ->
    case data_in(C) of
        <<>> -> <<>>;
        D -> case match(D, Re) of true -> D; false -> data_in_matching(C, Re) end
    end.

match(Bin, Re) -> re:run(Bin, Re, [dotall]) /= nomatch.

ctl(Dir, Cmd) ->
    Script = filename:join([filename:dirname(escript:script_name()), "..", "..", "..",
                            "scripts", "private-ejabberd.sh"]),
    os:cmd(Script ++ " ctl " ++ Dir ++ " " ++ Cmd).

wait(_, 0) -> false;
wait(F, N) -> case F() of true -> true; false -> timer:sleep(100), wait(F, N - 1) end.

check(Name, true) -> io:format("ok   ~ts~n", [Name]);
check(Name, _) ->
    io:format("FAIL ~ts~n", [Name]),
    put(failures, get(failures) + 1).
