%% SPDX-License-Identifier: GPL-2.0-or-later
%%% Helpers shared by the eunit modules: a counter's value, and waiting for a condition.
-module(mod_megaphone_test_util).

-include_lib("eunit/include/eunit.hrl").

-export([stat/1, wait_until/1, wait_until/2, load_double/2, start_shards/0, kill/1]).

%% The value of one of mod_megaphone_stats' counters.
-spec stat(atom()) -> term().
stat(Name) ->
    proplists:get_value(atom_to_binary(Name, utf8), mod_megaphone_stats:get()).

%% Polls Cond every 10 ms until it holds; fails the test after 100 tries (about 1 s).
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(Cond) -> wait_until(Cond, 100).

-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
wait_until(Cond, 0) -> ?assert(Cond()), ok;
wait_until(Cond, N) ->
    case Cond() of
        true -> ok;
        false -> timer:sleep(10), wait_until(Cond, N - 1)
    end.

%% Compiles and loads a test double of Mod from its source lines (one
%% form per string), over the real module for the test.
-spec load_double(module(), [string()]) -> {module, module()}.
load_double(Mod, Src) ->
    Forms = [begin
                 {ok, Tokens, _} = erl_scan:string(S),
                 {ok, Form} = erl_parse:parse_form(Tokens),
                 Form
             end || S <- Src],
    {ok, Mod, Bin} = compile:forms(Forms),
    {module, Mod} = code:load_binary(Mod, atom_to_list(Mod) ++ "_double.erl", Bin).

%% Every sequencer shard, started unlinked.
-spec start_shards() -> [pid()].
start_shards() ->
    [begin {ok, P} = mod_megaphone_sequencer:start_link(I), unlink(P), P end
     || I <- lists:seq(1, length(mod_megaphone_sequencer:shard_names()))].

%% Kills each process and waits until it is gone.
-spec kill([pid()]) -> ok.
kill(Pids) ->
    lists:foreach(fun(P) ->
                          Mon = monitor(process, P),
                          exit(P, kill),
                          receive {'DOWN', Mon, process, P, _} -> ok end
                  end, Pids).
