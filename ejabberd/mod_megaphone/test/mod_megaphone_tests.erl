%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_tests.erl
%%% Purpose : Start-up refusals of mod_megaphone and the (sid, rid)
%%%           registry rules, without a running ejabberd.
%%%----------------------------------------------------------------------
-module(mod_megaphone_tests).

-include_lib("eunit/include/eunit.hrl").

opts(Extra) ->
    maps:merge(maps:from_list(mod_megaphone:mod_options(<<"localhost">>)), Extra).

%%%===================================================================
%%% Start-up refusals
%%%===================================================================
no_secret_refuses_to_start_test() ->
    %% Ensures a config without secret nor secret_file is {error, no_secret}.
    ?assertEqual({error, no_secret}, mod_megaphone:start(<<"localhost">>, opts(#{}))).

unreadable_secret_file_refuses_to_start_test() ->
    %% Ensures an unreadable secret_file is an error naming the file.
    File = <<"/nonexistent/megaphone.secret">>,
    ?assertEqual({error, {secret_file, File, enoent}},
                 mod_megaphone:start(<<"localhost">>, opts(#{secret_file => File}))).

empty_secret_refuses_to_start_test() ->
    %% Ensures a secret of only whitespace is refused, not used.
    File = filename:join(temp_dir(), "blank.secret"),
    ok = file:write_file(File, <<" \n">>),
    ?assertEqual({error, empty_secret},
                 mod_megaphone:start(<<"localhost">>,
                                     opts(#{secret_file => list_to_binary(File)}))).

short_secret_refuses_to_start_test() ->
    %% Ensures a secret under 32 bytes is refused with its length (never
    %% the secret itself), and the message names the fix.
    ?assertEqual({error, {short_secret, 31}},
                 mod_megaphone:start(<<"localhost">>,
                                     opts(#{secret => binary:copy(<<"s">>, 31)}))),
    ?assertEqual("a secret of 31 bytes: at least 32 are required (e.g. openssl rand -hex 32), "
                 "in 'secret' or 'secret_file'",
                 lists:flatten(mod_megaphone:format_error({short_secret, 31}))).

every_secret_of_a_rotation_is_checked_test() ->
    %% Ensures a list of secrets (option or file lines) is checked whole:
    %% one short secret in it refuses the start.
    ?assertEqual({error, {short_secret, 5}},
                 mod_megaphone:start(<<"localhost">>,
                                     opts(#{secret => [binary:copy(<<"n">>, 32), <<"short">>]}))),
    File = filename:join(temp_dir(), "rotation.secret"),
    ok = file:write_file(File, [binary:copy(<<"n">>, 40), "\n", "short2\n"]),
    ?assertEqual({error, {short_secret, 6}},
                 mod_megaphone:start(<<"localhost">>,
                                     opts(#{secret_file => list_to_binary(File)}))).

every_option_has_a_validator_and_a_default_test() ->
    %% Ensures mod_options/1 and mod_opt_type/1 cover the same options.
    [?assert(is_function(mod_megaphone:mod_opt_type(Opt)))
     || {Opt, _} <- mod_megaphone:mod_options(<<"localhost">>)],
    ?assertEqual([{mod_bosh, hard}], mod_megaphone:depends(<<"localhost">>, #{})).

%%%===================================================================
%%% Registry
%%%===================================================================
registry_test_() ->
    {setup,
     fun() -> {ok, Pid} = mod_megaphone_registry:start_link(), unlink(Pid), Pid end,
     fun(Pid) ->
             Mon = monitor(process, Pid),
             exit(Pid, kill),
             receive {'DOWN', Mon, process, Pid, _} -> ok end
     end,
     [fun second_copy_attaches_to_the_running_worker/0,
      fun cancel_of_the_only_copy_stops_the_worker/0,
      fun cancel_of_one_of_two_copies_keeps_the_worker/0,
      fun a_closed_link_never_stops_the_worker/0,
      fun attach_after_the_worker_finished_finds_nothing/0,
      fun a_dead_worker_is_purged_whatever_its_recipients/0,
      fun a_session_creation_never_attaches_to_another/0]}.

second_copy_attaches_to_the_running_worker() ->
    %% Ensures a (sid, rid) runs once: insert_new refuses a twin, attach
    %% joins it, and take hands every recipient to the worker.
    Key = {<<"s1">>, 1}, W = self(),
    ?assert(mod_megaphone_registry:insert_new(Key, W, r1)),
    ?assertNot(mod_megaphone_registry:insert_new(Key, W, r2)),
    ?assertEqual({ok, W}, mod_megaphone_registry:attach(Key, r2)),
    ?assertEqual([r2, r1], mod_megaphone_registry:take(Key, W)),
    ?assertEqual([], mod_megaphone_registry:take(Key, W)).

cancel_of_the_only_copy_stops_the_worker() ->
    %% Ensures CANCEL of the only copy removes the row and names the worker.
    Key = {<<"s2">>, 1}, W = self(),
    true = mod_megaphone_registry:insert_new(Key, W, r1),
    ?assertEqual({stop, W}, mod_megaphone_registry:cancel(Key, r1)),
    ?assertEqual(not_found, mod_megaphone_registry:attach(Key, r2)).

cancel_of_one_of_two_copies_keeps_the_worker() ->
    %% Ensures CANCEL of one copy leaves the other waiting for the answer.
    Key = {<<"s3">>, 1}, W = self(),
    true = mod_megaphone_registry:insert_new(Key, W, r1),
    {ok, W} = mod_megaphone_registry:attach(Key, r2),
    ?assertEqual(ok, mod_megaphone_registry:cancel(Key, r1)),
    ?assertEqual([r2], mod_megaphone_registry:take(Key, W)).

a_closed_link_never_stops_the_worker() ->
    %% Ensures detach drops a recipient but keeps the row for a re-sent copy.
    Key = {<<"s4">>, 1}, W = self(),
    true = mod_megaphone_registry:insert_new(Key, W, r1),
    ok = mod_megaphone_registry:detach(Key, r1),
    ?assertEqual({ok, W}, mod_megaphone_registry:attach(Key, r2)),
    ?assertEqual([r2], mod_megaphone_registry:take(Key, W)).

attach_after_the_worker_finished_finds_nothing() ->
    %% Ensures a copy arriving after the answer starts afresh (not_found),
    %% and a take by another pid never steals a row.
    Key = {<<"s5">>, 1}, W = self(),
    true = mod_megaphone_registry:insert_new(Key, W, r1),
    ?assertEqual([], mod_megaphone_registry:take(Key, spawn(fun() -> ok end))),
    [r1] = mod_megaphone_registry:take(Key, W),
    ?assertEqual(not_found, mod_megaphone_registry:attach(Key, r2)).

a_dead_worker_is_purged_whatever_its_recipients() ->
    %% Ensures purge drops the row of a dead worker (so a re-sent copy
    %% starts afresh), but never the row of a newer worker of the same key.
    Key = {<<"s6">>, 1}, W = self(), Other = spawn(fun() -> ok end),
    true = mod_megaphone_registry:insert_new(Key, W, r1),
    {ok, W} = mod_megaphone_registry:attach(Key, r2),
    ?assertNot(mod_megaphone_registry:purge(Key, Other)),
    ?assert(mod_megaphone_registry:purge(Key, W)),
    ?assertEqual(not_found, mod_megaphone_registry:attach(Key, r3)),
    ?assertEqual(0, mod_megaphone_registry:count()).

a_session_creation_never_attaches_to_another() ->
    %% Ensures {new, Ref} keys (no sid or rid) each get their own worker,
    %% and count/0 sees one row per running worker.
    K1 = {new, make_ref()}, K2 = {new, make_ref()}, W = self(),
    true = mod_megaphone_registry:insert_new(K1, W, r1),
    ?assertEqual(not_found, mod_megaphone_registry:attach(K2, r2)),
    true = mod_megaphone_registry:insert_new(K2, W, r2),
    ?assertEqual(2, mod_megaphone_registry:count()),
    ?assertEqual({stop, W}, mod_megaphone_registry:cancel(K1, r1)),
    ?assertEqual([r2], mod_megaphone_registry:take(K2, W)),
    ?assertEqual(0, mod_megaphone_registry:count()).

temp_dir() ->
    Dir = filename:join(["/tmp", "mod_megaphone_tests." ++ os:getpid()]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.
