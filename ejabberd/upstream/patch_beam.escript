#!/usr/bin/env escript
%%! -noinput
%% SPDX-License-Identifier: GPL-2.0-or-later
%%% Applies a unified diff of one ejabberd source file to the code of the
%%% installed .beam of that module, when its source is not at hand.
%%%
%%%   escript patch_beam.escript INSTALLED.beam FILE.patch OUT_DIR
%%%
%%% The module's code comes from the beam's debug_info (Debian's ejabberd
%%% beams carry it). Each function of it is printed (erl_pp) and scanned
%%% into tokens; each hunk of the patch is scanned too, its old side
%%% (context and '-' lines) is looked up in those tokens, compared by kind
%%% and value and not by layout, and replaced by its new side (context and
%%% '+' lines). A hunk whose old side is not found exactly once (the
%%% installed code differs from the patch's, or the hunk's old side holds a
%%% macro or a comment-only change) stops the script with an error, so a
%%% patch never half-applies. The result is compiled and written to
%%% OUT_DIR/<module>.beam, with debug_info.
%%%
%%% Exit status: 0 written, 1 anything else (with a message on stderr).
-mode(compile).

main([Beam, Patch, OutDir]) ->
    try
        run(Beam, Patch, OutDir)
    catch
        throw:{fail, Fmt, Args} ->
            io:format(standard_error, "patch_beam: " ++ Fmt ++ "~n", Args),
            halt(1)
    end;
main(_) ->
    io:format(standard_error,
              "usage: escript patch_beam.escript INSTALLED.beam FILE.patch OUT_DIR~n", []),
    halt(1).

run(Beam, Patch, OutDir) ->
    {Mod, Forms} = forms(Beam),
    Hunks = hunks(Patch),
    Hunks =/= [] orelse fail("no hunk in ~ts", [Patch]),
    Forms1 = lists:foldl(fun apply_hunk/2, Forms, Hunks),
    %% The modules that the code calls or implements (xmpp_socket, p1_fsm):
    %% found next to the beam, and through ERL_LIBS as ejabberdctl sets it.
    code:add_patha(filename:dirname(Beam)),
    add_libs(filename:dirname(filename:dirname(filename:dirname(Beam)))),
    case compile:forms(Forms1, [debug_info, return_errors, return_warnings]) of
        {ok, Mod, Bin, Warnings} ->
            [io:format(standard_error, "patch_beam: warning: ~ts~n", [format_issue(W)])
             || {_, Ws} <- Warnings, W <- Ws],
            ok = filelib:ensure_dir(filename:join(OutDir, "x")),
            Out = filename:join(OutDir, atom_to_list(Mod) ++ ".beam"),
            ok = file:write_file(Out, Bin),
            io:format("patch_beam: ~ts: ~b hunk(s) of ~ts applied to ~ts~n",
                      [Out, length(Hunks), Patch, Beam]);
        {error, Errors, _} ->
            fail("the patched ~p does not compile: ~ts",
                 [Mod, string:join([format_issue(E) || {_, Es} <- Errors, E <- Es], "; ")])
    end.

fail(Fmt, Args) -> throw({fail, Fmt, Args}).

%% The module's forms, from the beam's debug_info.
forms(Beam) ->
    case beam_lib:chunks(Beam, [debug_info]) of
        {ok, {Mod, [{debug_info, {debug_info_v1, Backend, Data}}]}} ->
            case Backend:debug_info(erlang_v1, Mod, Data, []) of
                {ok, Forms} -> {Mod, Forms};
                {error, Why} -> fail("no Erlang code in the debug_info of ~ts: ~p", [Beam, Why])
            end;
        {ok, {_, [{debug_info, _}]}} ->
            fail("~ts was compiled without debug_info: its code cannot be patched", [Beam]);
        {error, beam_lib, Why} ->
            fail("cannot read ~ts: ~p", [Beam, Why])
    end.

add_libs(Dir) ->
    [code:add_pathz(E) || E <- filelib:wildcard(filename:join([Dir, "*", "ebin"]))],
    ok.

%% The hunks of a unified diff of one file: [{OldText, NewText, Header}].
hunks(Patch) ->
    Text = case file:read_file(Patch) of
               {ok, Bin} -> unicode:characters_to_list(Bin);
               {error, Why} -> fail("cannot read ~ts: ~p", [Patch, Why])
           end,
    Lines = string:split(Text, "\n", all),
    Files = [L || "+++ " ++ _ = L <- Lines],
    length(Files) =< 1 orelse fail("~ts changes ~b files; give it one at a time", [Patch, length(Files)]),
    hunks(Lines, []).

hunks([], Acc) ->
    lists:reverse(Acc);
hunks(["@@ " ++ _ = Header | Rest], Acc) ->
    {OldCount, NewCount} = counts(Header),
    {Old, New, Rest1} = hunk_body(Rest, OldCount, NewCount, [], [], Header),
    hunks(Rest1, [{Old, New, Header} | Acc]);
hunks([_ | Rest], Acc) ->
    hunks(Rest, Acc).

%% "@@ -429,8 +429,14 @@ ...": the old and new line counts (1 when left out).
counts(Header) ->
    case re:run(Header, "^@@ -\\d+(?:,(\\d+))? \\+\\d+(?:,(\\d+))? @@",
                [{capture, all_but_first, list}]) of
        {match, [O, N]} -> {count(O), count(N)};
        {match, [O]} -> {count(O), 1};
        _ -> fail("not a unified diff hunk header: ~ts", [Header])
    end.

count("") -> 1;
count(S) -> list_to_integer(S).

hunk_body(Rest, 0, 0, Old, New, _) ->
    {join(lists:reverse(Old)), join(lists:reverse(New)), Rest};
hunk_body([" " ++ L | Rest], O, N, Old, New, H) when O > 0, N > 0 ->
    hunk_body(Rest, O - 1, N - 1, [L | Old], [L | New], H);
hunk_body(["" | Rest], O, N, Old, New, H) when O > 0, N > 0 ->
    hunk_body(Rest, O - 1, N - 1, ["" | Old], ["" | New], H);
hunk_body(["-" ++ L | Rest], O, N, Old, New, H) when O > 0 ->
    hunk_body(Rest, O - 1, N, [L | Old], New, H);
hunk_body(["+" ++ L | Rest], O, N, Old, New, H) when N > 0 ->
    hunk_body(Rest, O, N - 1, Old, [L | New], H);
hunk_body(["\\" ++ _ | Rest], O, N, Old, New, H) ->
    hunk_body(Rest, O, N, Old, New, H);
hunk_body(_, _, _, _, _, H) ->
    fail("hunk ~ts is cut short or its line counts are wrong", [H]).

join(Lines) -> lists:append([L ++ "\n" || L <- Lines]).

%% Replaces the old side of one hunk, found in exactly one function, by its
%% new side.
apply_hunk({OldText, NewText, Header}, Forms) ->
    Old = scan(OldText, Header),
    New = scan(NewText, Header),
    Old =/= [] orelse fail("hunk ~ts has no code on its old side", [Header]),
    Found = [{I, F, Toks, At} || {I, F} <- lists:enumerate(Forms),
                                 element(1, F) =:= function,
                                 Toks <- [form_tokens(F)],
                                 At <- positions(key(Old), key(Toks))],
    case Found of
        [{I, F, Toks, At}] ->
            {Before, Rest} = lists:split(At - 1, Toks),
            After = lists:nthtail(length(Old), Rest),
            Line = erl_anno:line(element(2, F)),
            Tokens = Before ++ [set_line(T, Line) || T <- New] ++ After,
            case erl_parse:parse_form(Tokens) of
                {ok, Form} ->
                    {Name, Arity} = {element(3, F), element(4, F)},
                    io:format("patch_beam: hunk ~ts -> ~p/~b~n", [Header, Name, Arity]),
                    lists:sublist(Forms, I - 1) ++ [Form] ++ lists:nthtail(I, Forms);
                {error, {_, _, Why}} ->
                    fail("hunk ~ts: the patched function does not parse: ~ts",
                         [Header, erl_parse:format_error(Why)])
            end;
        [] ->
            fail("hunk ~ts: its old side is not in the installed code (another version?)", [Header]);
        _ ->
            fail("hunk ~ts: its old side is in the installed code ~b times; give it more context",
                 [Header, length(Found)])
    end.

scan(Text, Header) ->
    case erl_scan:string(Text) of
        {ok, Tokens, _} -> Tokens;
        {error, {_, _, Why}, _} ->
            fail("hunk ~ts does not scan as Erlang: ~ts", [Header, erl_scan:format_error(Why)])
    end.

form_tokens(Form) ->
    {ok, Tokens, _} = erl_scan:string(lists:flatten(erl_pp:form(Form))),
    Tokens.

%% Tokens compared by kind and value.
key(Tokens) -> [{element(1, T), token_value(T)} || T <- Tokens].

token_value(T) when tuple_size(T) =:= 3 -> element(3, T);
token_value(_) -> none.

set_line(T, Line) -> setelement(2, T, erl_anno:new(Line)).

%% The 1-based positions where Needle occurs in Haystack.
positions(Needle, Haystack) -> positions(Needle, Haystack, 1, length(Needle), length(Haystack)).

positions(_, _, _, N, H) when N > H -> [];
positions(Needle, [_ | Rest] = Haystack, At, N, H) ->
    Here = case lists:prefix(Needle, Haystack) of true -> [At]; false -> [] end,
    Here ++ positions(Needle, Rest, At + 1, N, H - 1).

format_issue({Anno, Module, Desc}) ->
    io_lib:format("line ~p: ~ts", [Anno, Module:format_error(Desc)]);
format_issue(Other) ->
    io_lib:format("~p", [Other]).
