%% SPDX-License-Identifier: GPL-2.0-or-later
%%% Helpers shared by the eunit modules: a counter's value, and waiting for a condition.
-module(mod_megaphone_test_util).

-include_lib("eunit/include/eunit.hrl").

-export([stat/1, wait_until/1, wait_until/2]).

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
