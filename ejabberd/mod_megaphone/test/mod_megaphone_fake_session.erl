%% SPDX-License-Identifier: GPL-2.0-or-later
%%% Test doubles shared by the eunit modules: BOSH session processes that
%%% take requests the way ejabberd_bosh's do (p1_fsm's sync event) and
%%% report each to the test process, which answers when it likes; and a
%%% mod_bosh whose find_session/1 finds them.
-module(mod_megaphone_fake_session).

-include("mod_megaphone_bosh.hrl").

-define(TABLE, mod_megaphone_fake_sessions).

-export([load_mod_bosh/0, unload/0, register_session/2, start/1, start/2, called/0, called/1,
         nothing_called/1, reply/2, ok_body/1, rid/1]).


%% mod_bosh:find_session/1 answers {ok, Pid} for sessions started here
%% (in an ETS table: persistent_term would copy its whole table at every
%% new session, which bench/link-inflight.sh does 250,000 times).
load_mod_bosh() ->
    Me = self(),
    Owner = spawn(fun() ->
                          ets:new(?TABLE, [set, public, named_table]),
                          Me ! {?TABLE, ready},
                          receive stop -> ok end
                  end),
    receive {?TABLE, ready} -> ok end,
    persistent_term:put({?MODULE, owner}, Owner),
    load(mod_bosh,
         ["-module(mod_bosh).",
          "-export([find_session/1]).",
          "find_session(Sid) ->"
          "    case ets:lookup(mod_megaphone_fake_sessions, Sid) of"
          "        [] -> error;"
          "        [{_, Pid}] -> {ok, Pid}"
          "    end."]).

unload() ->
    case persistent_term:get({?MODULE, owner}, undefined) of
        undefined -> ok;
        Owner -> Owner ! stop, persistent_term:erase({?MODULE, owner})
    end,
    code:purge(mod_bosh), code:delete(mod_bosh),
    ok.

%% Sid is (now) the session Pid, for find_session/1.
register_session(Sid, Pid) ->
    ets:insert(?TABLE, {Sid, Pid}),
    ok.

%% A session process for Sid that reports every request to the calling
%% process: {bosh_called, From, Rid, Body}, in the order it takes them.
start(Sid) ->
    start(Sid, self()).

start(Sid, Reporter) ->
    Pid = spawn(fun() -> loop(Reporter) end),
    register_session(Sid, Pid),
    Pid.

loop(Reporter) ->
    receive
        {'$gen_sync_event', From, #body{} = Body} ->
            Reporter ! {bosh_called, From, rid(Body), Body},
            loop(Reporter);
        {stop, Reason} ->
            exit(Reason)
    end.

called() -> called(3000).

called(Timeout) ->
    receive {bosh_called, From, Rid, _} -> {From, Rid} after Timeout -> error(ejabberd_not_called) end.

nothing_called(Ms) ->
    receive {bosh_called, _, Rid, _} -> error({called, Rid}) after Ms -> ok end.

%% Answers a request the way p1_fsm:reply/2 does.
reply({To, Tag}, Body) ->
    To ! {Tag, Body},
    ok.

%% The answer the tests give: an empty body naming the rid.
ok_body(Rid) ->
    #body{http_reason = <<"OK">>, attrs = [{<<"rid">>, integer_to_binary(Rid)}]}.

rid(#body{attrs = Attrs}) ->
    proplists:get_value(rid, Attrs).

load(Mod, Src) ->
    {module, Mod} = mod_megaphone_test_util:load_double(Mod, Src),
    ok.
