%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_tls_tests.erl
%%% Purpose : The link inside TLS (module option tls): a real link process
%%%           on a loopback socket with certificates made here
%%%           (public_key:pkix_test_data/1), a test double of ejabberd_bosh;
%%%           the TLS start-up refusals; the TLS frame splitter; and a
%%%           worker that never hears from its link (GO_TIMEOUT).
%%% The real path (the real ejabberd and the real ECM) is TlsLinkTest.java.
%%%----------------------------------------------------------------------
-module(mod_megaphone_tls_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("public_key/include/public_key.hrl").

-define(SECRET, <<"eunit-tls-secret-eunit-tls-secret-eunit">>).
-define(REPORTER, mod_megaphone_fake_bosh).
-define(LISTEN, {?MODULE, listen}).
-define(PKI, {?MODULE, pki}).

%%%===================================================================
%%% Start-up refusals (pure: they fail before anything starts)
%%%===================================================================
opts(Extra) ->
    maps:merge(maps:from_list(mod_megaphone:mod_options(<<"localhost">>)),
               maps:merge(#{secret => ?SECRET}, Extra)).

start(Extra) ->
    mod_megaphone:start(<<"localhost">>, opts(Extra)).

tls_without_certfile_refuses_to_start_test() ->
    %% Ensures tls: true without certfile names the option.
    ?assertEqual({error, {tls_option_missing, certfile}}, start(#{tls => true})).

tls_without_keyfile_refuses_to_start_test() ->
    %% Ensures tls: true without keyfile names the option.
    #{cert := Cert} = pem_files(),
    ?assertEqual({error, {tls_option_missing, keyfile}},
                 start(#{tls => true, certfile => Cert})).

tls_with_an_unreadable_certfile_refuses_to_start_test() ->
    %% Ensures a certfile that cannot be read is an error naming option and file.
    #{key := Key} = pem_files(),
    File = <<"/nonexistent/megaphone.pem">>,
    ?assertEqual({error, {tls_file, certfile, File, enoent}},
                 start(#{tls => true, certfile => File, keyfile => Key})).

tls_with_a_keyfile_that_is_not_pem_refuses_to_start_test() ->
    %% Ensures a keyfile with no PEM block in it is refused at start.
    #{cert := Cert} = pem_files(),
    File = list_to_binary(filename:join(temp_dir(), "not.pem")),
    ok = file:write_file(File, <<"not a key\n">>),
    ?assertEqual({error, {tls_file, keyfile, File, not_pem}},
                 start(#{tls => true, certfile => Cert, keyfile => File})).

verify_client_without_cafile_refuses_to_start_test() ->
    %% Ensures mutual TLS needs the CA file client certificates chain to.
    #{cert := Cert, key := Key} = pem_files(),
    ?assertEqual({error, {tls_option_missing, cafile}},
                 start(#{tls => true, certfile => Cert, keyfile => Key,
                         verify_client => true})).

tls_files_are_not_checked_when_tls_is_off_test() ->
    %% Ensures certfile/keyfile are ignored with tls: false (the default),
    %% so a start fails only for what it really needs (here: no secret).
    ?assertEqual({error, no_secret},
                 mod_megaphone:start(<<"localhost">>,
                                     maps:merge(maps:from_list(mod_megaphone:mod_options(<<"localhost">>)),
                                                #{certfile => <<"/nonexistent">>}))).

%%%===================================================================
%%% The TLS frame splitter
%%%===================================================================
next_frame_test_() ->
    %% Ensures next_frame/2 splits {packet, 4} frames as the TCP driver
    %% does: whole frames only, and an oversize length as soon as seen.
    [?_assertEqual({ok, <<"abc">>, <<0, 0>>},
                   mod_megaphone_transport:next_frame(<<0, 0, 0, 3, "abc", 0, 0>>, 10)),
     ?_assertEqual(more, mod_megaphone_transport:next_frame(<<0, 0, 0, 3, "ab">>, 10)),
     ?_assertEqual(more, mod_megaphone_transport:next_frame(<<0, 0>>, 10)),
     ?_assertEqual({ok, <<>>, <<>>}, mod_megaphone_transport:next_frame(<<0, 0, 0, 0>>, 10)),
     ?_assertEqual({ok, <<"0123456789">>, <<>>},
                   mod_megaphone_transport:next_frame(<<0, 0, 0, 10, "0123456789">>, 10)),
     ?_assertEqual({error, frame_too_large},
                   mod_megaphone_transport:next_frame(<<0, 0, 0, 11>>, 10))].

tls_options_test() ->
    %% Ensures TLS 1.2/1.3 only, and a client certificate required only
    %% with verify_client (checked against cafile).
    Base = #{certfile => <<"c.pem">>, keyfile => <<"k.pem">>, cafile => undefined,
             verify_client => false},
    Plain = mod_megaphone_transport:tls_options(Base),
    ?assertEqual(['tlsv1.3', 'tlsv1.2'], proplists:get_value(versions, Plain)),
    ?assertEqual(verify_none, proplists:get_value(verify, Plain)),
    Mutual = mod_megaphone_transport:tls_options(Base#{cafile => <<"ca.pem">>,
                                                       verify_client => true}),
    ?assertEqual(verify_peer, proplists:get_value(verify, Mutual)),
    ?assertEqual(true, proplists:get_value(fail_if_no_peer_cert, Mutual)),
    ?assertEqual("ca.pem", proplists:get_value(cacertfile, Mutual)).

%%%===================================================================
%%% A worker its link never told to go (the fix of the GO_TIMEOUT race)
%%%===================================================================
worker_test_() ->
    {foreach, fun worker_setup/0, fun worker_cleanup/1,
     [fun an_unregistered_worker_never_calls_ejabberd_after_the_timeout/0,
      fun a_registered_worker_runs_after_the_timeout/0]}.

an_unregistered_worker_never_calls_ejabberd_after_the_timeout() ->
    %% Ensures a worker whose link died before registering it ends without
    %% calling ejabberd: a twin may run its (sid, rid) meanwhile.
    register(?REPORTER, self()),
    Key = {<<"sid-u">>, 1},
    W = mod_megaphone_worker:start(request(1), Key, 50),
    Mon = monitor(process, W),
    receive {'DOWN', Mon, process, W, normal} -> ok after 2000 -> error(worker_still_alive) end,
    receive {bosh_called, W} -> error(ejabberd_called) after 100 -> ok end,
    ?assertEqual(0, mod_megaphone_registry:count()).

a_registered_worker_runs_after_the_timeout() ->
    %% Ensures a worker registered by a link that died before 'go' still
    %% runs (copies may be attached to it; its row must not leak).
    register(?REPORTER, self()),
    Key = {<<"sid-r">>, 1},
    W = mod_megaphone_worker:start(request(1), Key, 50),
    DeadLink = spawn(fun() -> ok end),
    true = mod_megaphone_registry:insert_new(Key, W, {DeadLink, undefined, 1, make_ref()}),
    receive {bosh_called, W} -> ok after 2000 -> error(ejabberd_not_called) end,
    Mon = monitor(process, W),
    W ! {bosh_answer, {200, <<"OK">>, [], <<"<body/>">>}},
    receive {'DOWN', Mon, process, W, _} -> ok after 2000 -> error(worker_still_alive) end,
    ?assertEqual(0, mod_megaphone_registry:count()).

worker_setup() ->
    load_fake_bosh(),
    {ok, Registry} = mod_megaphone_registry:start_link(),
    unlink(Registry),
    mod_megaphone_stats:new(),
    Registry.

worker_cleanup(Registry) ->
    stop_registry(Registry),
    mod_megaphone_stats:delete(),
    unload_fake_bosh().

%%%===================================================================
%%% A real link inside TLS
%%%===================================================================
tls_link_test_() ->
    {foreach, fun() -> setup(false) end, fun cleanup/1,
     [fun a_request_over_tls_is_answered/0,
      fun an_oversize_frame_inside_tls_gets_error_frame_too_large/0,
      fun a_plain_tcp_peer_is_refused_without_a_hello_in_clear/0,
      fun a_client_that_does_not_trust_the_server_gets_no_link/0]}.

mutual_tls_link_test_() ->
    {foreach, fun() -> setup(true) end, fun cleanup/1,
     [fun a_client_without_a_certificate_is_refused/0,
      fun a_client_with_a_certificate_gets_its_link/0]}.

a_request_over_tls_is_answered() ->
    %% Ensures HELLO/AUTH/WELCOME and REQUEST/RESPONSE work unchanged
    %% inside TLS, with the response written by the worker (ssl:send).
    C = connect(),
    ok = request(C, 1, <<"s1">>, 10),
    W = called(),
    answer(W),
    ?assertMatch({ok, #{type := response, id := 1, status := 200, body := <<"<body/>">>}},
                 recv(C)),
    ok = ssl:send(C, mod_megaphone_codec:encode(#{type => ping, opaque => <<7:64>>})),
    ?assertMatch({ok, #{type := pong, opaque := <<7:64>>}}, recv(C)),
    ?assertEqual(1, stat(links_accepted_total)),
    ?assertEqual(1, stat(requests_total)).

an_oversize_frame_inside_tls_gets_error_frame_too_large() ->
    %% Ensures the frame limit holds inside TLS as over TCP: a length above
    %% max_frame_size gets ERROR frame_too_large (not a dropped link).
    C = connect(),
    ok = ssl:setopts(C, [{packet, raw}]),
    ok = ssl:send(C, <<70000:32, 0:8000>>),
    ok = ssl:setopts(C, [{packet, 4}]),
    ?assertMatch({ok, #{type := error, reason := <<"frame_too_large">>}}, recv(C)),
    ?assertEqual(1, stat(protocol_errors_total)).

a_plain_tcp_peer_is_refused_without_a_hello_in_clear() ->
    %% Ensures a peer that speaks plain TCP to a TLS link port never reads
    %% a HELLO in clear and is counted as a refused link.
    {C, _Link} = accept_link(),
    ok = gen_tcp:send(C, <<0, 0, 0, 4, 1, 2, 3, 4>>),
    case gen_tcp:recv(C, 0, 5000) of
        {ok, Data} -> ?assertNotMatch(<<0, 0, 0, _, 1, "MGPH", _/binary>>, Data);
        {error, _} -> ok
    end,
    wait_until(fun() -> stat(links_refused_total) == 1 end),
    ?assertEqual(0, stat(links_accepted_total)).

a_client_that_does_not_trust_the_server_gets_no_link() ->
    %% Ensures a client checking the server against another CA stops at
    %% the TLS handshake: no link.
    #{other_cacerts := Other} = persistent_term:get(?PKI),
    ?assertMatch({error, _}, tls_connect([{cacerts, Other}])),
    wait_until(fun() -> stat(links_refused_total) == 1 end).

a_client_without_a_certificate_is_refused() ->
    %% Ensures verify_client: true refuses a client with no certificate.
    Result = case tls_connect([]) of
                 {ok, C} -> ssl:recv(C, 0, 2000); % TLS 1.3: refused after the client's Finished
                 Err -> Err
             end,
    ?assertMatch({error, _}, Result),
    wait_until(fun() -> stat(links_refused_total) == 1 end),
    ?assertEqual(0, stat(links_accepted_total)).

a_client_with_a_certificate_gets_its_link() ->
    %% Ensures verify_client: true accepts a client certificate of cafile.
    #{client := ClientOpts} = persistent_term:get(?PKI),
    C = connect(ClientOpts),
    ok = request(C, 2, <<"s2">>, 20),
    answer(called()),
    ?assertMatch({ok, #{type := response, id := 2, status := 200}}, recv(C)).

%%%===================================================================
%%% Fixture
%%%===================================================================
setup(VerifyClient) ->
    {ok, _} = application:ensure_all_started(stringprep), % jid:nameprep/1 of 'to'
    load_fake_bosh(),
    {ok, Registry} = mod_megaphone_registry:start_link(),
    unlink(Registry),
    mod_megaphone_stats:new(),
    {ok, _} = application:ensure_all_started(ssl),
    #{cert := Cert, key := Key, cafile := CaFile} = pem_files(),
    persistent_term:put({mod_megaphone, config},
                        #{host => <<"localhost">>, ip => {127, 0, 0, 1}, port => 0,
                          secret => ?SECRET, secrets => [?SECRET],
                          max_pending_links => 64, max_frame_size => 65536,
                          max_inflight => 10, heartbeat_interval => 60000,
                          handshake_timeout => 5000,
                          tls => true, certfile => Cert, keyfile => Key,
                          cafile => CaFile, verify_client => VerifyClient}),
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    persistent_term:put(?LISTEN, L),
    {Registry, L}.

cleanup({Registry, L}) ->
    gen_tcp:close(L),
    _ = persistent_term:erase(?LISTEN),
    stop_registry(Registry),
    mod_megaphone_stats:delete(),
    _ = persistent_term:erase({mod_megaphone, config}),
    unload_fake_bosh().

stop_registry(Registry) ->
    Mon = monitor(process, Registry),
    exit(Registry, kill),
    receive {'DOWN', Mon, process, Registry, _} -> ok end.

%% Certificates for "localhost": a server chain, a client chain (both
%% from pkix_test_data, each with its own root), and another root no one
%% uses. Written as PEM once per test run.
pem_files() ->
    case persistent_term:get(?PKI, undefined) of
        #{files := Files} -> Files;
        undefined -> make_pki()
    end.

make_pki() ->
    Dir = temp_dir(),
    %% SHA-256 signatures: OTP 27 (ejabberd 24.12 and later in Debian) no
    %% longer accepts SHA-1 certificate signatures in TLS 1.3.
    Chain = #{root => [{key, {namedCurve, secp256r1}}, {digest, sha256}],
              peer => [{key, {namedCurve, secp256r1}}, {digest, sha256},
                       {extensions, [{'Extension', ?'id-ce-subjectAltName', false,
                                      [{dNSName, "localhost"}]}]}]},
    #{server_config := Server, client_config := Client} =
        public_key:pkix_test_data(#{server_chain => Chain, client_chain => Chain}),
    #{server_config := OtherServer} =
        public_key:pkix_test_data(#{server_chain => Chain, client_chain => Chain}),
    Cert = write_pem(Dir, "server.pem",
                     [{'Certificate', proplists:get_value(cert, Server), not_encrypted}]),
    {KeyType, KeyDer} = proplists:get_value(key, Server),
    Key = write_pem(Dir, "server.key", [{KeyType, KeyDer, not_encrypted}]),
    %% The server's cacerts are the roots of the client chain: cafile.
    CaFile = write_pem(Dir, "clients-ca.pem",
                       [{'Certificate', Der, not_encrypted}
                        || Der <- proplists:get_value(cacerts, Server)]),
    Files = #{cert => Cert, key => Key, cafile => CaFile},
    persistent_term:put(?PKI, #{files => Files,
                                server_cacerts => proplists:get_value(cacerts, Client),
                                other_cacerts => proplists:get_value(cacerts, OtherServer),
                                client => [{cert, proplists:get_value(cert, Client)},
                                           {key, proplists:get_value(key, Client)}]}),
    Files.

write_pem(Dir, Name, Entries) ->
    File = filename:join(Dir, Name),
    ok = file:write_file(File, public_key:pem_encode(Entries)),
    list_to_binary(File).

%% A TCP client socket and the link process that owns the accepted one.
accept_link() ->
    case whereis(?REPORTER) of
        Me when Me == self() -> ok;
        _ -> register(?REPORTER, self())
    end,
    L = persistent_term:get(?LISTEN),
    {ok, Port} = inet:port(L),
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    {ok, S} = gen_tcp:accept(L),
    {ok, Link} = mod_megaphone_link:start_link(S),
    unlink(Link),
    ok = gen_tcp:controlling_process(S, Link),
    ok = mod_megaphone_link:take_socket(Link, S),
    {C, Link}.

tls_connect(Extra) ->
    #{server_cacerts := CaCerts} = persistent_term:get(?PKI),
    {C, _Link} = accept_link(),
    Base = [{verify, verify_peer}, {cacerts, CaCerts}, {server_name_indication, "localhost"},
            {versions, ['tlsv1.3', 'tlsv1.2']}, {packet, 4}, {active, false}],
    Opts = Extra ++ [O || {K, _} = O <- Base, not lists:keymember(K, 1, Extra)],
    ssl:connect(C, [binary | Opts], 5000).

connect() -> connect([]).

connect(Extra) ->
    {ok, C} = tls_connect(Extra),
    {ok, #{type := hello, nonce := ServerNonce}} = recv(C),
    ClientNonce = crypto:strong_rand_bytes(32),
    Mac = mod_megaphone_codec:auth_mac(?SECRET, 1, ServerNonce, ClientNonce, <<"eunit">>),
    ok = ssl:send(C, mod_megaphone_codec:encode(
                       #{type => auth, version => 1, nonce => ClientNonce,
                         mac => Mac, name => <<"eunit">>})),
    {ok, #{type := welcome}} = recv(C),
    C.

request(C, Id, Sid, Rid) ->
    ssl:send(C, mod_megaphone_codec:encode(request(Id, Sid, Rid))).

request(Id) -> request(Id, <<"sid">>, 1).

%% A session creation: it runs in a worker, which calls the double of
%% ejabberd_bosh (requests of existing sessions go to their session).
request(Id, _Sid, Rid) ->
    #{type => request, id => Id, rid => Rid, sid => <<>>,
      ip => {127, 0, 0, 1}, port => 4000,
      body => <<"<body rid='", (integer_to_binary(Rid))/binary, "' to='localhost' "
                "xmlns='http://jabber.org/protocol/httpbind'/>">>}.

recv(C) ->
    case ssl:recv(C, 0, 2000) of
        {ok, Data} -> mod_megaphone_codec:decode(Data);
        {error, _} = Err -> Err
    end.

called() ->
    receive {bosh_called, W} -> W after 2000 -> error(ejabberd_not_called) end.

answer(W) ->
    W ! {bosh_answer, {200, <<"OK">>, [{<<"Content-Type">>, <<"text/xml">>}], <<"<body/>">>}}.

stat(Name) -> mod_megaphone_test_util:stat(Name).

wait_until(Cond) -> mod_megaphone_test_util:wait_until(Cond, 300).

%% The double of ejabberd_bosh: reports {bosh_called, Worker} and waits.
load_fake_bosh() ->
    Src = ["-module(ejabberd_bosh).",
           "-export([process_request/3]).",
           "process_request(_Body, {_IP, _Port}, xml) ->"
           "    mod_megaphone_fake_bosh ! {bosh_called, self()},"
           "    receive {bosh_answer, Reply} -> Reply end."],
    mod_megaphone_test_util:load_double(ejabberd_bosh, Src).

unload_fake_bosh() ->
    code:purge(ejabberd_bosh),
    code:delete(ejabberd_bosh).

temp_dir() ->
    Dir = filename:join(["/tmp", "mod_megaphone_tls_tests." ++ os:getpid()]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.
