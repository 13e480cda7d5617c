%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone.erl
%%% Purpose : gen_mod entry point of mod_megaphone: a listener for
%%%           megaphone links (docs/protocol.md) from Megaphone ECMs, whose
%%%           REQUEST frames are answered by ejabberd's own BOSH handler.
%%%
%%% The listener is node-global: ejabberd_bosh:process_request/3 finds the
%%% vhost from the 'to'/'sid' of each body, so one listener serves every
%%% host. Configure the module on one host; a start on a second host only
%%% logs a warning (and its options are ignored) while the first runs.
%%%
%%% The owner host also owns the node-global counters (mod_megaphone_stats)
%%% and the ejabberdctl command megaphone_stats that prints them: both are
%%% made when the listener starts and removed when it stops, so a second
%%% host never registers the command twice nor removes it under the owner.
%%%----------------------------------------------------------------------
-module(mod_megaphone).

-behaviour(gen_mod).

-export([start/2, stop/1, reload/3, depends/2, mod_opt_type/1,
         mod_options/1, mod_doc/0]).
-export([config/0, gc_heap_threshold/0, order_timeout/0, metrics_cache_time/0,
         handshake_timeout/0,
         get_commands_spec/0,
         megaphone_stats/0, format_error/1]).

-include("logger.hrl").
-include("translate.hrl").
-include("ejabberd_commands.hrl").

-define(SUP, mod_megaphone_sup).
-define(CONFIG_KEY, {?MODULE, config}).
%% Shortest secret accepted, in bytes (as the ECM's megaphone.link.secret).
-define(MIN_SECRET, 32).

-type config() :: #{host := binary(),
                    ip := inet:ip_address(),
                    port := inet:port_number(),
                    secret := binary(),
                    secrets := [binary(), ...],
                    max_pending_links := pos_integer(),
                    max_frame_size := pos_integer(),
                    max_inflight := pos_integer(),
                    max_streams := non_neg_integer(),
                    stream_window := pos_integer(),
                    heartbeat_interval := pos_integer(),
                    handshake_timeout := pos_integer(),
                    gc_heap_threshold := non_neg_integer(),
                    order_timeout := pos_integer(),
                    metrics_access := atom() | list(),
                    metrics_cache_time := non_neg_integer(),
                    tls := boolean(),
                    %% with tls = true only:
                    certfile => binary(),
                    keyfile => binary(),
                    cafile => binary() | undefined,
                    verify_client => boolean()}.
-export_type([config/0]).

%%%===================================================================
%%% gen_mod callbacks
%%%===================================================================
-spec start(binary(), gen_mod:opts()) -> ok | {error, term()}.
start(Host, Opts) ->
    case owner() of
        undefined ->
            case make_config(Host, Opts) of
                {ok, Config} -> start_sup(Config);
                {error, Reason} = Err ->
                    ?CRITICAL_MSG("mod_megaphone cannot start on ~ts: ~ts",
                                  [Host, format_error(Reason)]),
                    Err
            end;
        Owner ->
            %% One listener serves every host (see the module header).
            ?WARNING_MSG("mod_megaphone already runs for host ~ts and serves "
                         "every host; its options for ~ts are ignored",
                         [Owner, Host]),
            ok
    end.

-spec stop(binary()) -> ok.
stop(Host) ->
    case persistent_term:get(?CONFIG_KEY, undefined) of
        #{host := Host} ->
            %% The owner host, whether its supervisor runs, is being
            %% restarted after a crash loop or is gone: everything goes,
            %% the child spec too, so the next start finds nothing left.
            %% The supervisor stops the listener first, then every link
            %% (each sends GOAWAY and closes), then the registry and the
            %% shards.
            unregister_commands(),
            remove_sup(),
            _ = persistent_term:erase(?CONFIG_KEY),
            mod_megaphone_sup:forget_start(),
            mod_megaphone_stats:delete();
        _ ->
            ok
    end.

-spec reload(binary(), gen_mod:opts(), gen_mod:opts()) -> ok | {error, term()}.
reload(Host, NewOpts, _OldOpts) ->
    case owner() of
        Host ->
            case make_config(Host, NewOpts) of
                {ok, #{ip := IP, port := Port} = Config} ->
                    #{ip := OldIP, port := OldPort} = config(),
                    persistent_term:put(?CONFIG_KEY, Config),
                    %% New links read the new secret and limits; a new
                    %% address needs a new listen socket.
                    case {IP, Port} == {OldIP, OldPort} of
                        true -> ok;
                        false -> restart_listener()
                    end;
                {error, Reason} = Err ->
                    ?CRITICAL_MSG("mod_megaphone keeps its old options on ~ts: ~ts",
                                  [Host, format_error(Reason)]),
                    Err
            end;
        _ ->
            ok
    end.

-spec depends(binary(), gen_mod:opts()) -> [{module(), hard | soft}].
depends(_Host, _Opts) ->
    [{mod_bosh, hard}].

-spec mod_opt_type(atom()) -> econf:validator().
mod_opt_type(ip) -> econf:ip();
mod_opt_type(port) -> econf:port();
mod_opt_type(secret) -> econf:either(econf:binary(), econf:list(econf:binary()));
mod_opt_type(secret_file) -> econf:path();
mod_opt_type(max_frame_size) -> econf:pos_int();
mod_opt_type(max_inflight) -> econf:pos_int();
mod_opt_type(max_streams) -> econf:non_neg_int();
mod_opt_type(stream_window) -> econf:pos_int();
mod_opt_type(max_pending_links) -> econf:pos_int();
mod_opt_type(heartbeat_interval) -> econf:timeout(millisecond);
mod_opt_type(handshake_timeout) -> econf:timeout(millisecond);
mod_opt_type(gc_heap_threshold) -> econf:non_neg_int();
mod_opt_type(order_timeout) -> econf:timeout(millisecond);
mod_opt_type(metrics_access) -> econf:acl();
mod_opt_type(metrics_cache_time) -> econf:timeout(millisecond);
mod_opt_type(tls) -> econf:bool();
mod_opt_type(certfile) -> econf:path();
mod_opt_type(keyfile) -> econf:path();
mod_opt_type(cafile) -> econf:path();
mod_opt_type(verify_client) -> econf:bool().

-spec mod_options(binary()) -> [{atom(), term()}].
mod_options(_Host) ->
    [{ip, {127, 0, 0, 1}},
     {port, 5290},
     {secret, undefined},
     {secret_file, undefined},
     {max_frame_size, 1048576},
     {max_inflight, 10000},
     {max_streams, 20000},
     {stream_window, 262144},
     {max_pending_links, 64},
     {heartbeat_interval, timer:seconds(15)},
     {handshake_timeout, timer:seconds(5)},
     {gc_heap_threshold, 4096},
     {order_timeout, 300},
     {metrics_access, all},
     {metrics_cache_time, timer:seconds(60)},
     {tls, false},
     {certfile, undefined},
     {keyfile, undefined},
     {cafile, undefined},
     {verify_client, false}].

-spec mod_doc() -> map().
mod_doc() ->
    #{desc =>
          [?T("Listens for megaphone links from Megaphone ECMs (external BOSH "
              "connection managers) and answers each REQUEST frame with "
              "ejabberd's own BOSH handler. The listener is node-global: "
              "configure the module on one host only.")],
      opts =>
          [{ip, #{value => ?T("IP"), desc => ?T("Address to listen on. Default: 127.0.0.1.")}},
           {port, #{value => ?T("Port"), desc => ?T("TCP port of the link listener. Default: 5290.")}},
           {secret, #{value => ?T("String | [String]"), desc => ?T("Shared secret of the link handshake, at least 32 bytes; or a list of them for a rotation: an ECM that proves any of them is accepted.")}},
           {secret_file, #{value => ?T("Path"), desc => ?T("File holding the secret (trimmed), or one secret per line for a rotation. Takes precedence over 'secret'.")}},
           {max_streams, #{value => ?T("Number"), desc => ?T("WebSocket streams run at once per link of protocol version 2; more are refused (the ECM then answers its client's handshake 503). 0 states no limit. Default: 20000.")}},
           {stream_window, #{value => ?T("Bytes"), desc => ?T("Credit granted to each WebSocket stream: bytes of client data the ECM may send before ejabberd's session has taken them. Default: 262144.")}},
           {max_pending_links, #{value => ?T("Number"), desc => ?T("Connections that have not finished the handshake at most; more are closed at once. Default: 64.")}},
           {max_frame_size, #{value => ?T("Bytes"), desc => ?T("Largest frame accepted after the handshake. Default: 1048576.")}},
           {max_inflight, #{value => ?T("Number"), desc => ?T("Requests run at once per link; more get 503. Default: 10000.")}},
           {heartbeat_interval, #{value => "timeout()", desc => ?T("PING interval suggested to clients; a link silent for 3 intervals is closed. Default: 15 seconds.")}},
           {handshake_timeout, #{value => "timeout()", desc => ?T("Time a new link has to send AUTH (and, with 'tls', to finish the TLS handshake before that). Default: 5 seconds.")}},
           {gc_heap_threshold, #{value => ?T("Words"), desc => ?T("After answering a request of a session, garbage-collect that session's BOSH and c2s processes (local ones) whose heap is above this many words; 2 s after a WebSocket stream's traffic, its c2s likewise, and the stream's process hibernates. 0 disables. Default: 4096.")}},
           {order_timeout, #{value => "timeout()", desc => ?T("How long a request of a session waits for a predecessor (rid - 1) that has not arrived before it goes on without it (ejabberd 23.01 loses the session when rid N+1 reaches it before an empty poll N). Default: 300 ms.")}},
           {metrics_access, #{value => ?T("AccessName"), desc => ?T("Access rule checked against the address of each request to the metrics handler mod_megaphone_prometheus (listed under an ejabberd_http listener's request_handlers). Default: all (bind that listener to an internal address).")}},
           {metrics_cache_time, #{value => "timeout()", desc => ?T("How long the metrics handler reuses its pass over every local BOSH and c2s session (session counts, their process memory, requests in flight); the counters are read at every scrape. Default: 60 seconds.")}},
           {tls, #{value => "true | false", desc => ?T("Run every link inside TLS (1.2 or 1.3); needs 'certfile' and 'keyfile'. Default: false.")}},
           {certfile, #{value => ?T("Path"), desc => ?T("PEM file of the server certificate (chain) for 'tls'.")}},
           {keyfile, #{value => ?T("Path"), desc => ?T("PEM file of the private key of 'certfile'.")}},
           {cafile, #{value => ?T("Path"), desc => ?T("PEM file of the CA certificates that client certificates must chain to; required by 'verify_client'.")}},
           {verify_client, #{value => "true | false", desc => ?T("Require a client certificate signed by 'cafile' (mutual TLS). Default: false.")}}]}.

%%%===================================================================
%%% API
%%%===================================================================
%% The running configuration (with the secret: never log it).
-spec config() -> config().
config() ->
    persistent_term:get(?CONFIG_KEY).

%% The gc_heap_threshold of the running module, in words; 0 (off) when
%% the module does not run (a worker that outlives it, tests).
-spec gc_heap_threshold() -> non_neg_integer().
gc_heap_threshold() ->
    running_opt(gc_heap_threshold, 0).

%% The handshake_timeout of the running module, in ms; 5000 when the
%% module does not run (a link started while it stops).
-spec handshake_timeout() -> pos_integer().
handshake_timeout() ->
    running_opt(handshake_timeout, 5000).

%% The order_timeout of the running module, in ms; 300 when the module
%% does not run (tests).
-spec order_timeout() -> pos_integer().
order_timeout() ->
    running_opt(order_timeout, 300).

%% The metrics_cache_time of the running module, in ms; 0 (no cache)
%% when the module does not run (tests).
-spec metrics_cache_time() -> non_neg_integer().
metrics_cache_time() ->
    running_opt(metrics_cache_time, 0).

%% Key of the running configuration, or Default when the module does not
%% run (a worker that outlives it, tests).
running_opt(Key, Default) ->
    case persistent_term:get(?CONFIG_KEY, undefined) of
        #{Key := Value} -> Value;
        _ -> Default
    end.

%%%===================================================================
%%% ejabberd commands
%%%===================================================================
-spec get_commands_spec() -> [ejabberd_commands()].
get_commands_spec() ->
    [#ejabberd_commands{
        name = megaphone_stats, tags = [statistics],
        desc = "Counters of mod_megaphone's links and requests on this node",
        longdesc = "One line per counter: name, tab, value. links_active and "
                   "requests_inflight are gauges; the *_total counters count "
                   "from the module's start. See mod_megaphone's README.",
        module = ?MODULE, function = megaphone_stats,
        args = [],
        result = {stats, {list, {stat, {tuple, [{name, string}, {value, integer}]}}}},
        result_desc = "Every counter, as {name, value}",
        result_example = [{<<"links_active">>, 2}, {<<"requests_total">>, 1234}]}].

%% The command's function: every counter of this node, in a fixed order.
-spec megaphone_stats() -> [{binary(), integer()}].
megaphone_stats() ->
    mod_megaphone_stats:get().

%%%===================================================================
%%% Internal functions
%%%===================================================================
%% The host whose options the running module uses, or undefined. Running:
%% its supervisor is a child of ejabberd_gen_mod_sup, alive or being
%% restarted there. A config left by a run whose supervisor is gone (a
%% spec left behind, or ejabberd_gen_mod_sup restarted without it) is no
%% owner: the next start replaces it.
owner() ->
    case persistent_term:get(?CONFIG_KEY, undefined) of
        #{host := Host} ->
            case sup_child() of
                {_, Pid, _, _} when is_pid(Pid) -> Host;
                {_, restarting, _, _} -> Host;
                _ -> undefined
            end;
        undefined -> undefined
    end.

sup_child() ->
    try lists:keyfind(?SUP, 1, supervisor:which_children(ejabberd_gen_mod_sup))
    catch exit:_ -> false % no ejabberd_gen_mod_sup (ejabberd stopping)
    end.

%% Takes the supervisor and its child spec out of ejabberd_gen_mod_sup,
%% whatever state they are in (both calls are no-ops on a missing one).
remove_sup() ->
    try
        _ = supervisor:terminate_child(ejabberd_gen_mod_sup, ?SUP),
        _ = supervisor:delete_child(ejabberd_gen_mod_sup, ?SUP)
    catch exit:_ ->
            ok % no ejabberd_gen_mod_sup (ejabberd stopping)
    end,
    ok.

%% A new ip/port: a new listen socket. While the supervisor is being
%% restarted there is no listener to restart: the new one reads the new
%% address.
restart_listener() ->
    try mod_megaphone_sup:restart_listener()
    catch exit:{noproc, _} -> ok
    end.

%% The supervisor is ejabberd_gen_mod_sup's 'permanent' child, as
%% mod_muc_sup is: restarted after any exit, also the 'shutdown' of a
%% supervisor that gave up (restart limits: mod_megaphone_sup's header).
start_sup(#{host := Host, ip := IP, port := Port} = Config) ->
    %% A spec left by an earlier run (the module's supervisor terminated
    %% but not deleted) would make start_child return already_present.
    remove_sup(),
    %% A start asked for is no restart within a crash loop: no wait.
    mod_megaphone_sup:forget_start(),
    persistent_term:put(?CONFIG_KEY, Config),
    mod_megaphone_stats:new(),
    Spec = #{id => ?SUP,
             start => {?SUP, start_link, []},
             restart => permanent,
             shutdown => infinity,
             type => supervisor,
             modules => [?SUP]},
    case supervisor:start_child(ejabberd_gen_mod_sup, Spec) of
        {ok, _Pid} ->
            ejabberd_commands:register_commands(?MODULE, get_commands_spec()),
            ?INFO_MSG("mod_megaphone listening for links on ~ts (host ~ts, ~ts)",
                      [format_addr(IP, Port), Host,
                       case Config of
                           #{tls := true, verify_client := true} -> "TLS, client certificates required";
                           #{tls := true} -> "TLS";
                           #{} -> "plain TCP"
                       end]),
            ok;
        {error, Reason} ->
            _ = supervisor:delete_child(ejabberd_gen_mod_sup, ?SUP),
            _ = persistent_term:erase(?CONFIG_KEY),
            mod_megaphone_sup:forget_start(),
            mod_megaphone_stats:delete(),
            Why = listener_error(Reason),
            ?CRITICAL_MSG("mod_megaphone cannot listen on ~ts: ~ts",
                          [format_addr(IP, Port), format_error(Why)]),
            {error, Why}
    end.

%% ejabberd 23.01 stores each command with definer = ?MODULE and
%% unregister_commands/1 deletes exact objects (mnesia bag), so the
%% records to delete must carry the same definer, or nothing is removed.
unregister_commands() ->
    ejabberd_commands:unregister_commands(
      [C#ejabberd_commands{definer = ?MODULE} || C <- get_commands_spec()]).

make_config(Host, Opts) ->
    case secret(gen_mod:get_opt(secret_file, Opts), gen_mod:get_opt(secret, Opts)) of
        {ok, Secret} ->
            case tls_config(Opts) of
                {ok, Tls} -> {ok, maps:merge(Tls, base_config(Host, Secret, Opts))};
                {error, _} = Err -> Err
            end;
        {error, _} = Err ->
            Err
    end.

base_config(Host, Secret, Opts) ->
    #{host => Host,
      ip => gen_mod:get_opt(ip, Opts),
      port => gen_mod:get_opt(port, Opts),
      secret => hd(Secret),
      secrets => Secret,
      max_pending_links => gen_mod:get_opt(max_pending_links, Opts),
      max_frame_size => gen_mod:get_opt(max_frame_size, Opts),
      max_inflight => gen_mod:get_opt(max_inflight, Opts),
      max_streams => gen_mod:get_opt(max_streams, Opts),
      stream_window => gen_mod:get_opt(stream_window, Opts),
      heartbeat_interval => gen_mod:get_opt(heartbeat_interval, Opts),
      handshake_timeout => gen_mod:get_opt(handshake_timeout, Opts),
      gc_heap_threshold => gen_mod:get_opt(gc_heap_threshold, Opts),
      order_timeout => gen_mod:get_opt(order_timeout, Opts),
      metrics_access => gen_mod:get_opt(metrics_access, Opts),
      metrics_cache_time => gen_mod:get_opt(metrics_cache_time, Opts)}.

%% TLS options: checked here, at start and reload, so a missing or bad
%% file fails the start (naming the option) instead of every handshake.
tls_config(Opts) ->
    case gen_mod:get_opt(tls, Opts) of
        false ->
            {ok, #{tls => false}};
        true ->
            VerifyClient = gen_mod:get_opt(verify_client, Opts),
            CaFile = gen_mod:get_opt(cafile, Opts),
            Checks = [{certfile, gen_mod:get_opt(certfile, Opts), required},
                      {keyfile, gen_mod:get_opt(keyfile, Opts), required},
                      {cafile, CaFile, case VerifyClient of
                                           true -> required;
                                           false -> optional
                                       end}],
            case check_pem_files(Checks) of
                ok ->
                    case application:ensure_all_started(ssl) of
                        {ok, _} ->
                            {ok, #{tls => true,
                                   certfile => gen_mod:get_opt(certfile, Opts),
                                   keyfile => gen_mod:get_opt(keyfile, Opts),
                                   cafile => CaFile,
                                   verify_client => VerifyClient}};
                        {error, Why} ->
                            {error, {ssl_application, Why}}
                    end;
                {error, _} = Err ->
                    Err
            end
    end.

check_pem_files([]) ->
    ok;
check_pem_files([{_Opt, undefined, optional} | Rest]) ->
    check_pem_files(Rest);
check_pem_files([{Opt, undefined, required} | _]) ->
    {error, {tls_option_missing, Opt}};
check_pem_files([{Opt, File, _} | Rest]) ->
    case file:read_file(File) of
        {ok, Data} ->
            %% pem_decode/1 raises on some malformed input and returns []
            %% on text without a PEM block: both mean "not PEM".
            try public_key:pem_decode(Data) of
                [_ | _] -> check_pem_files(Rest);
                [] -> {error, {tls_file, Opt, File, not_pem}}
            catch
                _:_ -> {error, {tls_file, Opt, File, not_pem}}
            end;
        {error, Why} ->
            {error, {tls_file, Opt, File, Why}}
    end.

secret(undefined, undefined) ->
    {error, no_secret};
secret(undefined, Secrets) when is_list(Secrets) ->
    check_secrets(Secrets);
secret(undefined, Secret) ->
    check_secrets([Secret]);
secret(File, _) ->
    case file:read_file(File) of
        {ok, Data} ->
            %% One secret per line (a rotation); a file of one secret, with
            %% or without its newline, is the usual case.
            check_secrets([S || Line <- binary:split(Data, [<<"\n">>, <<"\r\n">>], [global]),
                                S <- [string:trim(Line)], S /= <<>>]);
        {error, Why} -> {error, {secret_file, File, Why}}
    end.

%% Every secret of the list: at least ?MIN_SECRET bytes (the HMAC key of
%% the handshake; a short one can be guessed offline from one recorded
%% handshake). The first proves nothing here (the ECM proves), but it is
%% the one kept as `secret'. The secrets themselves are never in an error.
check_secrets([]) -> {error, empty_secret};
check_secrets(Secrets) ->
    case [byte_size(S) || S <- Secrets, byte_size(S) < ?MIN_SECRET] of
        [] -> {ok, Secrets};
        [0 | _] -> {error, empty_secret};
        [Short | _] -> {error, {short_secret, Short}}
    end.

%% Digs the listen error out of the supervisor's start error.
listener_error({shutdown, {failed_to_start_child, _, Reason}}) -> listener_error(Reason);
listener_error({{shutdown, {failed_to_start_child, _, Reason}}, _}) -> listener_error(Reason);
listener_error({listen, _} = Reason) -> Reason;
listener_error(Reason) -> Reason.

format_error(no_secret) ->
    "no secret: set option 'secret' or 'secret_file'";
format_error(empty_secret) ->
    "the secret is empty: set option 'secret' or 'secret_file'";
format_error({short_secret, Bytes}) ->
    io_lib:format("a secret of ~B bytes: at least ~B are required "
                  "(e.g. openssl rand -hex 32), in 'secret' or 'secret_file'",
                  [Bytes, ?MIN_SECRET]);
format_error({secret_file, File, Why}) ->
    io_lib:format("secret_file: ~ts (~ts)", [File, file:format_error(Why)]);
format_error({tls_option_missing, cafile}) ->
    "tls: option 'cafile' is required with verify_client: true";
format_error({tls_option_missing, Opt}) ->
    io_lib:format("tls: option '~ts' is required with tls: true", [Opt]);
format_error({tls_file, Opt, File, not_pem}) ->
    io_lib:format("tls: option '~ts': ~ts holds no PEM data", [Opt, File]);
format_error({tls_file, Opt, File, Why}) ->
    io_lib:format("tls: option '~ts': ~ts (~ts)", [Opt, File, file:format_error(Why)]);
format_error({ssl_application, Why}) ->
    io_lib:format("tls: the ssl application does not start: ~p", [Why]);
format_error({listen, Why}) ->
    io_lib:format("~ts (~p): set option 'ip'/'port' to a free local address",
                  [inet:format_error(Why), Why]);
format_error(Reason) ->
    io_lib:format("~p", [Reason]).

format_addr(IP, Port) ->
    io_lib:format("~ts:~B", [inet:ntoa(IP), Port]).
