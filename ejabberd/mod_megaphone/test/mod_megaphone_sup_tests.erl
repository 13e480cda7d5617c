%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_sup_tests.erl
%%% Purpose : Supervision (issue 21): the whole module started through
%%%           mod_megaphone:start/2 under a stand-in ejabberd_gen_mod_sup
%%%           (one_for_one, 10 restarts in 1 s, as gen_mod:init/1 of
%%%           ejabberd 23.01), with doubles of ejabberd_bosh (answers at
%%%           once with the body it got), mod_bosh (every sid is one echoing
%%%           session on this node, so requests go through the sequencer
%%%           shards)
%%%           and ejabberd_commands. Crashes of a shard, a link, the
%%%           listener, crash loops, ejabberd_gen_mod_sup's restart of the
%%%           module's supervisor, stop/start/reload after them, and a link
%%%           whose socket handoff fails.
%%% The real path (the real ejabberd) is test/link_client.py and the Java
%%% suite's it/ tests.
%%%----------------------------------------------------------------------
-module(mod_megaphone_sup_tests).

-behaviour(supervisor).

-include_lib("eunit/include/eunit.hrl").

-export([init/1]).

-define(HOST, <<"localhost">>).
-define(SECRET, <<"eunit-sup-secret-eunit-sup-secret-eunit">>).
-define(GEN_MOD_SUP, ejabberd_gen_mod_sup).
-define(HANDSHAKE_TIMEOUT, 500).
-define(KEY(K), {?MODULE, K}).

%% The stand-in ejabberd_gen_mod_sup.
init(gen_mod_sup) ->
    {ok, {{one_for_one, 10, 1}, []}}.

sup_test_() ->
    {foreach, fun setup/0, fun cleanup/1,
     [{timeout, 30, fun one_crash_of_each_kind_touches_nothing_else/0},
      {timeout, 30, fun a_killed_link_is_gone_from_links_active_and_its_ecm_reconnects/0},
      {timeout, 60, fun twenty_crashes_in_a_row_leave_a_working_module/0},
      {timeout, 30, fun a_supervisor_that_gives_up_is_restarted_by_ejabberd/0},
      {timeout, 30, fun a_crash_loop_of_the_module_never_takes_down_ejabberd_gen_mod_sup/0},
      {timeout, 30, fun a_leftover_child_spec_blocks_neither_start_nor_stop/0},
      {timeout, 30, fun a_link_never_handed_its_socket_ends_and_frees_its_slot/0},
      {timeout, 30, fun a_failed_handoff_ends_the_link_at_once/0},
      {timeout, 30, fun a_stuck_shard_costs_its_callers_5_s_not_forever/0}]}.

%%%===================================================================
%%% Cases
%%%===================================================================
one_crash_of_each_kind_touches_nothing_else() ->
    %% Ensures a killed shard restarts alone (the links and the listener
    %% stay the same processes, the established link carries requests on),
    %% a killed link leaves the other link alone, and a killed listener
    %% restarts alone and accepts again (the links stay).
    {A, LA} = connect_link(), {B, LB} = connect_link(),
    ok = flows(A), ok = flows(B),
    Links = links(), Listener = whereis(mod_megaphone_listener),
    [Shard1 | Shards] = shards(),
    kill_and_wait(mod_megaphone_sequencer_1),
    ?assertNotEqual(Shard1, whereis(mod_megaphone_sequencer_1)),
    ?assertEqual(Shards, tl(shards())),
    ?assertEqual(Links, links()),
    ?assertEqual(Listener, whereis(mod_megaphone_listener)),
    ok = flows(A), ok = flows(B),
    %% a link
    exit(LA, kill),
    ?assertEqual(closed, closed_or_goaway(A)),
    ok = flows(B),
    ?assertEqual([LB], links()),
    %% the listener
    kill_and_wait(mod_megaphone_listener),
    ?assertEqual([LB], links()),
    ?assertEqual(Shards, tl(shards())),
    ok = flows(B),
    C = connect(),
    ok = flows(C),
    wait_until(fun() -> stat(links_active) == 2 end).

a_killed_link_is_gone_from_links_active_and_its_ecm_reconnects() ->
    %% Ensures links_active counts the links alive: a killed link (no
    %% terminate/2 of its own) leaves the gauge, and the pending count the
    %% listener derives from it; its ECM reconnects.
    {A, LA} = connect_link(), B = connect(),
    ?assertEqual(2, stat(links_active)),
    exit(LA, kill),
    ?assertEqual(closed, closed_or_goaway(A)),
    wait_until(fun() -> stat(links_active) == 1 end),
    C = connect(),
    ok = flows(C), ok = flows(B),
    ?assertEqual(2, stat(links_active)),
    ?assertEqual(2, length(links())).

twenty_crashes_in_a_row_leave_a_working_module() ->
    %% Ensures 20 shard crashes in a row, fast (their supervisor gives up
    %% and is restarted), never touch the links; then 20 registry crashes
    %% in a row (each closes every link; the link side's supervisor gives
    %% up and is restarted): the ECM's links come back, requests flow, the
    %% module's supervisor is the same process, ejabberd's is alive, and
    %% gen_mod's stop and start work.
    Top = whereis(mod_megaphone_sup),
    GenModSup = whereis(?GEN_MOD_SUP),
    ShardsSup = whereis(mod_megaphone_shards_sup),
    C = connect(),
    ok = flows(C),
    Links = links(),
    N = length(mod_megaphone_sequencer:shard_names()),
    [kill_and_wait(list_to_atom("mod_megaphone_sequencer_" ++ integer_to_list(1 + I rem N)))
     || I <- lists:seq(1, 20)],
    wait_until(fun() -> length(shards()) == N end),
    ?assertNotEqual(ShardsSup, whereis(mod_megaphone_shards_sup)), % it gave up
    ?assertEqual(Links, links()),
    ok = flows(C),
    Front = whereis(mod_megaphone_front_sup),
    [kill_and_wait(mod_megaphone_registry) || _ <- lists:seq(1, 20)],
    wait_until(fun() -> is_pid(whereis(mod_megaphone_listener)) end),
    ?assertNotEqual(Front, whereis(mod_megaphone_front_sup)), % it gave up
    ?assertEqual(closed, closed_or_goaway(C)),
    C2 = connect(),
    ok = flows(C2),
    ?assertEqual(1, stat(links_active)),
    ?assertEqual(Top, whereis(mod_megaphone_sup)),
    ?assertEqual(GenModSup, whereis(?GEN_MOD_SUP)),
    ?assertEqual([Top], module_children()),
    ok = mod_megaphone:stop(?HOST),
    ?assertEqual([], module_children()),
    ok = mod_megaphone:start(?HOST, opts(#{})),
    ok = flows(connect()).

a_supervisor_that_gives_up_is_restarted_by_ejabberd() ->
    %% Ensures the module's supervisor, once it gives up (a child, here
    %% the metrics cache, killed again and again; it exits 'shutdown'), is
    %% restarted by ejabberd_gen_mod_sup (permanent, not transient), links
    %% come back, and reload (a new port), stop and start work afterwards.
    Top = whereis(mod_megaphone_sup),
    GenModSup = whereis(?GEN_MOD_SUP),
    C = connect(),
    Mon = monitor(process, Top),
    Why = kill_until_down(mod_megaphone_metrics, Mon, 20),
    ?assertEqual(shutdown, Why),
    wait_until(fun() -> is_pid(whereis(mod_megaphone_listener)) end, 300),
    ?assertEqual(GenModSup, whereis(?GEN_MOD_SUP)),
    ?assertEqual([whereis(mod_megaphone_sup)], module_children()),
    ?assertEqual(closed, closed_or_goaway(C)),
    C2 = connect(),
    ok = flows(C2),
    %% reload: a new address re-opens the listen socket, the link stays
    NewPort = free_port(),
    ok = mod_megaphone:reload(?HOST, opts(#{port => NewPort}), opts(#{})),
    persistent_term:put(?KEY(port), NewPort),
    ok = flows(connect()),
    ok = flows(C2),
    ok = mod_megaphone:stop(?HOST),
    ?assertEqual([], module_children()),
    ok = mod_megaphone:start(?HOST, opts(#{port => NewPort})),
    ok = flows(connect()).

a_crash_loop_of_the_module_never_takes_down_ejabberd_gen_mod_sup() ->
    %% Ensures a tight crash loop of the module's supervisor itself (killed
    %% as soon as it is back, for 2.5 s) costs ejabberd_gen_mod_sup (10
    %% restarts in 1 s) at most one restart a second: it stays up, and the
    %% module works once the loop ends.
    GenModSup = whereis(?GEN_MOD_SUP),
    Me = self(),
    Killer = spawn(fun() -> kill_loop(Me, erlang:monotonic_time(millisecond) + 2500, []) end),
    Killed = receive {killed, Killer, Pids} -> Pids after 10000 -> error(killer_stuck) end,
    ?assert(is_process_alive(GenModSup)),
    ?assert(length(Killed) =< 4),
    wait_until(fun() -> is_pid(whereis(mod_megaphone_listener)) end, 300),
    ?assertEqual([whereis(mod_megaphone_sup)], module_children()),
    ok = flows(connect()),
    ok = mod_megaphone:stop(?HOST),
    ok = mod_megaphone:start(?HOST, opts(#{})),
    ok = flows(connect()).

a_leftover_child_spec_blocks_neither_start_nor_stop() ->
    %% Ensures a child spec left in ejabberd_gen_mod_sup without a process
    %% (as the old transient supervisor left it after giving up) neither
    %% makes the next start fail with already_present nor survives a stop.
    ok = supervisor:terminate_child(?GEN_MOD_SUP, mod_megaphone_sup),
    ?assertMatch([{mod_megaphone_sup, undefined, _, _}], supervisor:which_children(?GEN_MOD_SUP)),
    ok = mod_megaphone:start(?HOST, opts(#{})),
    ok = flows(connect()),
    ok = supervisor:terminate_child(?GEN_MOD_SUP, mod_megaphone_sup),
    ok = mod_megaphone:stop(?HOST),
    ?assertEqual([], supervisor:which_children(?GEN_MOD_SUP)),
    ok = mod_megaphone:start(?HOST, opts(#{})),
    ok = flows(connect()).

a_link_never_handed_its_socket_ends_and_frees_its_slot() ->
    %% Ensures a link process that never gets its socket (the acceptor
    %% died, the handoff failed) ends after handshake_timeout, counted as
    %% refused, and its max_pending_links slot (1 here) takes a new link.
    ok = mod_megaphone:reload(?HOST, opts(#{max_pending_links => 1}), opts(#{})),
    {ok, Link} = mod_megaphone_sup:start_link_link(undefined),
    Mon = monitor(process, Link),
    Refused = stat(links_refused_total),
    ?assertEqual(closed, hello(raw_connect())), % no slot left
    receive {'DOWN', Mon, process, Link, normal} -> ok
    after 5 * ?HANDSHAKE_TIMEOUT -> error(link_still_waiting)
    end,
    ?assertEqual(Refused + 2, stat(links_refused_total)), % the full slot, the waiting link
    ?assertEqual(0, active_links()),
    ok = flows(connect()).

a_failed_handoff_ends_the_link_at_once() ->
    %% Ensures the listener ends the link it started when the socket
    %% cannot be handed over (here: closed first), instead of leaving it
    %% waiting for a socket that never comes.
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    {ok, Port} = inet:port(L),
    {ok, _C} = gen_tcp:connect({127, 0, 0, 1}, Port, []),
    {ok, S} = gen_tcp:accept(L),
    ok = gen_tcp:close(S),
    Refused = stat(links_refused_total),
    ?assertEqual(error, mod_megaphone_listener:hand_off(S)),
    ?assertEqual(0, active_links()),
    ?assertEqual(Refused + 1, stat(links_refused_total)),
    gen_tcp:close(L).

a_stuck_shard_costs_its_callers_5_s_not_forever() ->
    %% Ensures a call into a shard that does not answer (suspended here)
    %% gives up after 5 s ('unavailable': the request goes on without its
    %% order) instead of waiting forever.
    Sid = <<"stuck">>,
    Shards = [whereis(S) || S <- mod_megaphone_sequencer:shard_names()],
    [sys:suspend(S) || S <- Shards],
    Me = self(),
    T0 = erlang:monotonic_time(millisecond),
    spawn(fun() -> Me ! {state, mod_megaphone_sequencer:session_state(Sid)} end),
    Got = receive {state, R} -> R after 10000 -> still_waiting end,
    [sys:resume(S) || S <- Shards],
    ?assertEqual(unavailable, Got),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 4900).

%%%===================================================================
%%% Fixture
%%%===================================================================
opts(Extra) ->
    maps:merge(maps:from_list(mod_megaphone:mod_options(?HOST)),
               maps:merge(#{secret => ?SECRET,
                            port => persistent_term:get(?KEY(port)),
                            handshake_timeout => ?HANDSHAKE_TIMEOUT},
                          Extra)).

setup() ->
    %% The crashes made here on purpose: no supervisor and crash reports.
    ok = logger:add_primary_filter(?MODULE, {fun logger_filters:domain/2,
                                             {stop, sub, [otp, sasl]}}),
    load(ejabberd_bosh,
         ["-module(ejabberd_bosh).",
          "-export([process_request/3]).",
          "process_request(Body, {_IP, _Port}, xml) ->"
          "    {200, <<\"OK\">>, [{<<\"Content-Type\">>, <<\"text/xml\">>}], Body}."]),
    load(mod_bosh,
         ["-module(mod_bosh).",
          "-export([find_session/1]).",
          "find_session(_Sid) -> {ok, persistent_term:get({mod_megaphone_sup_tests, session})}."]),
    load(ejabberd_commands,
         ["-module(ejabberd_commands).",
          "-export([register_commands/2, unregister_commands/1]).",
          "register_commands(_Definer, _Commands) -> ok.",
          "unregister_commands(_Commands) -> ok."]),
    Session = spawn(fun echo_session/0),
    persistent_term:put(?KEY(session), Session),
    persistent_term:put(?KEY(port), free_port()),
    {ok, GenModSup} = supervisor:start_link({local, ?GEN_MOD_SUP}, ?MODULE, gen_mod_sup),
    unlink(GenModSup),
    ok = mod_megaphone:start(?HOST, opts(#{})),
    {GenModSup, Session}.

cleanup({GenModSup, Session}) ->
    ok = mod_megaphone:stop(?HOST),
    case is_process_alive(GenModSup) of
        true -> gen_server:stop(GenModSup);
        false -> ok
    end,
    Session ! stop,
    _ = persistent_term:erase(?KEY(session)),
    _ = persistent_term:erase(?KEY(port)),
    [begin code:purge(M), code:delete(M) end
     || M <- [ejabberd_bosh, mod_bosh, ejabberd_commands]],
    ok = logger:remove_primary_filter(?MODULE).

load(Mod, Src) -> mod_megaphone_test_util:load_double(Mod, Src).

%% A BOSH session that answers every request with the request itself, as
%% p1_fsm replies to ejabberd_bosh's sync event.
echo_session() ->
    receive
        {'$gen_sync_event', {To, Tag}, Body} -> To ! {Tag, Body}, echo_session();
        stop -> ok
    end.

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Port.

%%%===================================================================
%%% Supervision helpers
%%%===================================================================
%% Kills the process registered as Name, waits until another one is.
kill_and_wait(Name) ->
    Old = whereis(Name),
    true = is_pid(Old),
    exit(Old, kill),
    wait_until(fun() ->
                       case whereis(Name) of
                           Pid when is_pid(Pid) -> Pid /= Old;
                           undefined -> false
                       end
               end, 300).

%% Kills the process registered as Name, as soon as it is back, until
%% the 'DOWN' of Mon comes (at most N kills); its reason.
kill_until_down(_Name, _Mon, 0) ->
    error(supervisor_did_not_give_up);
kill_until_down(Name, Mon, N) ->
    receive
        {'DOWN', Mon, process, _, Why} -> Why
    after 0 ->
            case whereis(Name) of
                undefined -> timer:sleep(1), kill_until_down(Name, Mon, N);
                Pid -> exit(Pid, kill), timer:sleep(5), kill_until_down(Name, Mon, N - 1)
            end
    end.

%% Kills mod_megaphone_sup whenever it is back, until Deadline; reports
%% the processes it killed.
kill_loop(Parent, Deadline, Killed) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true ->
            Parent ! {killed, self(), lists:usort(Killed)};
        false ->
            case whereis(mod_megaphone_sup) of
                undefined ->
                    timer:sleep(1),
                    kill_loop(Parent, Deadline, Killed);
                Pid ->
                    exit(Pid, kill),
                    timer:sleep(1),
                    kill_loop(Parent, Deadline, [Pid | Killed])
            end
    end.

links() ->
    [P || {_, P, _, _} <- supervisor:which_children(mod_megaphone_links_sup)].

active_links() ->
    proplists:get_value(active, supervisor:count_children(mod_megaphone_links_sup)).

%% The shards registered now, in shard order.
shards() ->
    [P || N <- mod_megaphone_sequencer:shard_names(), P <- [whereis(N)], is_pid(P)].

%% The module's supervisor as ejabberd_gen_mod_sup sees it.
module_children() ->
    [P || {mod_megaphone_sup, P, _, _} <- supervisor:which_children(?GEN_MOD_SUP)].

stat(Name) -> mod_megaphone_test_util:stat(Name).

wait_until(Cond) -> mod_megaphone_test_util:wait_until(Cond, 200).
wait_until(Cond, N) -> mod_megaphone_test_util:wait_until(Cond, N).

%%%===================================================================
%%% A minimal ECM side
%%%===================================================================
raw_connect() ->
    {ok, C} = gen_tcp:connect({127, 0, 0, 1}, persistent_term:get(?KEY(port)),
                              [binary, {packet, 4}, {active, false}]),
    C.

hello(C) ->
    case recv(C) of
        {ok, #{type := hello, nonce := Nonce}} -> {ok, Nonce};
        {error, closed} -> closed
    end.

%% A new authenticated link.
connect() ->
    C = raw_connect(),
    {ok, ServerNonce} = hello(C),
    ClientNonce = crypto:strong_rand_bytes(32),
    Mac = mod_megaphone_codec:auth_mac(?SECRET, 1, ServerNonce, ClientNonce, <<"eunit">>),
    ok = gen_tcp:send(C, mod_megaphone_codec:encode(
                           #{type => auth, version => 1, nonce => ClientNonce,
                             mac => Mac, name => <<"eunit">>})),
    {ok, #{type := welcome}} = recv(C),
    C.

%% A new authenticated link and its process.
connect_link() ->
    Before = links(),
    C = connect(),
    [L] = links() -- Before,
    {C, L}.

%% A REQUEST of a new session's first rid gets its RESPONSE (through the
%% sequencer shard of that sid and the ejabberd_bosh double).
flows(C) ->
    Sid = integer_to_binary(erlang:unique_integer([positive])),
    Body = <<"<body sid='", Sid/binary, "' rid='1' xmlns='http://jabber.org/protocol/httpbind'/>">>,
    ok = gen_tcp:send(C, mod_megaphone_codec:encode(
                           #{type => request, id => 1, rid => 1, sid => Sid,
                             ip => {127, 0, 0, 1}, port => 4000, body => Body})),
    {ok, #{type := response, id := 1, status := 200, body := Got}} = recv(C),
    ?assertEqual(<<"<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='", Sid/binary, "'/>">>,
                 iolist_to_binary(Got)),
    ok.

%% The peer closed the link (a GOAWAY may come first).
closed_or_goaway(C) ->
    case recv(C) of
        {ok, #{type := goaway}} -> closed_or_goaway(C);
        {error, closed} -> closed;
        Other -> Other
    end.

recv(C) ->
    case gen_tcp:recv(C, 0, 3000) of
        {ok, Data} -> mod_megaphone_codec:decode(Data);
        {error, _} = Err -> Err
    end.
