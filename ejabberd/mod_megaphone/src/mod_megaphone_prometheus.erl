%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_prometheus.erl
%%% Purpose : mod_megaphone's statistics in the Prometheus text exposition
%%%           format (version 0.0.4), as an ejabberd_http request handler:
%%%
%%%   listen:
%%%     - port: 5281
%%%       ip: "127.0.0.1"            # or a pod address Prometheus reaches
%%%       module: ejabberd_http
%%%       request_handlers:
%%%         /megaphone/metrics: mod_megaphone_prometheus
%%%
%%% Every metric is listed once, in families/2, with its type and help;
%%% docs/metrics.md explains each one. Names start with megaphone_ejabberd_
%%% (the ECM's own are megaphone_*), counters end in _total, sizes in
%%% _bytes; label values come from small fixed sets (never a sid or a JID).
%%%
%%% The counters and the 'workers' gauge (requests_inflight of
%%% mod_megaphone_stats) are read at every scrape (they cost nothing); the
%%% session counts, process memory and in-flight REQUEST ids come from
%%% mod_megaphone_metrics, whose pass over every session is cached for
%%% metrics_cache_time.
%%%
%%% Answers: GET 200 with the text; HEAD the same headers and no body;
%%% other methods 405 with Allow; a path below the handler's 404; an
%%% address refused by the module option metrics_access 403; mod_megaphone
%%% not running on this node 503. Errors are one line of text/plain.
%%%----------------------------------------------------------------------
-module(mod_megaphone_prometheus).

-export([process/2, families/2, format/1]).

-include("logger.hrl").
-include("ejabberd_http.hrl").

-define(CONTENT_TYPE, {<<"Content-Type">>, <<"text/plain; version=0.0.4; charset=utf-8">>}).
-define(PREFIX, "megaphone_ejabberd_").

-type labels() :: [{binary(), binary()}].
-type family() :: {Name :: binary(), counter | gauge, Help :: binary(),
                   [{labels(), number()}]}.
-export_type([family/0]).

%%%===================================================================
%%% API
%%%===================================================================
%% The ejabberd_http request handler.
-spec process([binary()], #request{}) -> {pos_integer(), [{binary(), binary()}], iodata()}.
process([], #request{method = Method, ip = IP}) when Method == 'GET'; Method == 'HEAD' ->
    try scrape(IP) of
        {200, Body} when Method == 'HEAD' -> _ = Body, {200, [?CONTENT_TYPE], <<>>};
        {200, Body} -> {200, [?CONTENT_TYPE], Body};
        {Status, Text} -> error_answer(Status, Text)
    catch Class:Reason:Stack ->
            ?ERROR_MSG("mod_megaphone: metrics scrape failed: ~p", [{Class, Reason, Stack}]),
            error_answer(500, "the scrape failed; see ejabberd's log")
    end;
process([], #request{}) ->
    {405, [{<<"Allow">>, <<"GET, HEAD">>} | plain()], <<"method not allowed (expected: GET or HEAD)\n">>};
process(_Path, #request{}) ->
    error_answer(404, "not found: the metrics are at the handler's own path").

%% Every metric family: Stats as mod_megaphone_stats:get/0 returns them,
%% Sample from mod_megaphone_metrics (undefined values leave the sample out).
-spec families([{binary(), integer()}], mod_megaphone_metrics:sample()) -> [family()].
families(Stats, Sample) ->
    S = fun(Name) -> proplists:get_value(atom_to_binary(Name, utf8), Stats, 0) end,
    Refused = S(links_refused_total),
    Pending = S(links_refused_pending_total),
    [{<<?PREFIX "links">>, gauge,
      <<"Authenticated megaphone links open now.">>, [{[], S(links_active)}]},
     {<<?PREFIX "links_accepted_total">>, counter,
      <<"Link handshakes accepted (WELCOME sent).">>, [{[], S(links_accepted_total)}]},
     {<<?PREFIX "links_refused_total">>, counter,
      <<"Link connections refused: a failed handshake (bad secret, version, timeout, "
        "garbage), or closed at once because max_pending_links were in their handshake.">>,
      [{[{<<"reason">>, <<"handshake">>}], max(0, Refused - Pending)},
       {[{<<"reason">>, <<"pending">>}], Pending}]},
     {<<?PREFIX "workers">>, gauge,
      <<"Distinct requests in flight on this node: session creations running, and "
        "(sid, rid) calls queued or inside ejabberd in the sequencer shards (named when "
        "each had a worker process).">>,
      [{[], S(requests_inflight)}]},
     {<<?PREFIX "requests_inflight">>, gauge,
      <<"REQUEST ids waiting for their answer on this node: session creations' and the "
        "sequencer shards', re-sent copies included (sampled, see "
        "megaphone_ejabberd_sample_age_seconds).">>,
      optional([], maps:get(requests_inflight, Sample))},
     {<<?PREFIX "requests_total">>, counter,
      <<"REQUEST frames by outcome: ejabberd (sent into ejabberd's BOSH session, or a "
        "session creation, on this node), deduplicated (a re-sent copy joined the one in "
        "flight, or got a recent session creation's answer), rejected (503), stale (rid "
        "below the window), host_unknown, forwarded (sent to the session's node).">>,
      [{[{<<"outcome">>, <<"ejabberd">>}], S(requests_total)},
       {[{<<"outcome">>, <<"deduplicated">>}], S(requests_deduplicated_total)},
       {[{<<"outcome">>, <<"rejected">>}], S(requests_rejected_total)},
       {[{<<"outcome">>, <<"stale">>}], S(requests_stale_total)},
       {[{<<"outcome">>, <<"host_unknown">>}], S(requests_host_unknown_total)},
       {[{<<"outcome">>, <<"forwarded">>}], S(requests_forwarded_total)}]},
     {<<?PREFIX "responses_total">>, counter,
      <<"BOSH answers sent as RESPONSE frames, by outcome: answered, too_large (over "
        "max_frame_size, sent as the answer-too-large RESPONSE), failed (500 with a BOSH "
        "terminate: a session creation failed or its worker died, or a session gave an "
        "unexpected answer).">>,
      [{[{<<"outcome">>, <<"answered">>}], S(responses_answered_total)},
       {[{<<"outcome">>, <<"too_large">>}], S(responses_too_large_total)},
       {[{<<"outcome">>, <<"failed">>}], S(responses_failed_total)}]},
     {<<?PREFIX "requests_reordered_total">>, counter,
      <<"Requests that arrived before their predecessor (rid - 1) and waited for it.">>,
      [{[], S(requests_reordered_total)}]},
     {<<?PREFIX "requests_order_timeout_total">>, counter,
      <<"Requests that went on without their predecessor after order_timeout.">>,
      [{[], S(requests_order_timeout_total)}]},
     {<<?PREFIX "cancels_total">>, counter,
      <<"CANCEL frames of an id in flight.">>, [{[], S(cancels_total)}]},
     {<<?PREFIX "protocol_errors_total">>, counter,
      <<"ERROR frames sent on open links (protocol_error, frame_too_large).">>,
      [{[], S(protocol_errors_total)}]},
     {<<?PREFIX "gc_collections_total">>, counter,
      <<"Garbage collections of BOSH and c2s processes started by gc_heap_threshold.">>,
      [{[], S(gc_collections_total)}]},
     {<<?PREFIX "streams">>, gauge,
      <<"WebSocket streams (link protocol version 2) open on this node: each a c2s "
        "session whose socket is a stream of a link.">>,
      [{[], S(streams_active)}]},
     {<<?PREFIX "stream_opens_total">>, counter,
      <<"STREAM_OPEN frames by result: opened (STREAM_OPENED sent, c2s started), "
        "draining and max_streams (refused with 1013), failed (no c2s: 1011).">>,
      [{[{<<"result">>, <<"opened">>}], S(streams_opened_total)},
       {[{<<"result">>, <<"draining">>}], S(streams_refused_draining_total)},
       {[{<<"result">>, <<"max_streams">>}], S(streams_refused_max_streams_total)},
       {[{<<"result">>, <<"failed">>}], S(streams_failed_total)}]},
     {<<?PREFIX "stream_closes_total">>, counter,
      <<"Opened WebSocket streams closed, by reason: client (the ECM's STREAM_CLOSE: "
        "its client left), server (the c2s ended the session: 1000, 1001), link_lost, "
        "credit (DATA over the stream's credit: 1008), too_big (an element over the "
        "ECM's window or the link's frame: 1009), error (1011, a crash).">>,
      [{[{<<"reason">>, <<"client">>}], S(streams_closed_client_total)},
       {[{<<"reason">>, <<"server">>}], S(streams_closed_server_total)},
       {[{<<"reason">>, <<"link_lost">>}], S(streams_closed_link_lost_total)},
       {[{<<"reason">>, <<"credit">>}], S(streams_closed_credit_total)},
       {[{<<"reason">>, <<"too_big">>}], S(streams_closed_too_big_total)},
       {[{<<"reason">>, <<"error">>}], S(streams_closed_error_total)}]},
     {<<?PREFIX "sessions">>, gauge,
      <<"Sessions on this node: bosh (ejabberd's BOSH session processes), c2s (logged-in "
        "sessions of every transport) (sampled).">>,
      optional([{<<"kind">>, <<"bosh">>}], maps:get(bosh_sessions, Sample))
      ++ optional([{<<"kind">>, <<"c2s">>}], maps:get(c2s_sessions, Sample))},
     {<<?PREFIX "process_memory_bytes">>, gauge,
      <<"Memory of ejabberd's BOSH session processes and c2s processes on this node, "
        "summed (erlang:process_info/2 memory; sampled).">>,
      optional([{<<"kind">>, <<"bosh">>}], maps:get(bosh_memory_bytes, Sample))
      ++ optional([{<<"kind">>, <<"c2s">>}], maps:get(c2s_memory_bytes, Sample))},
     {<<?PREFIX "sample_age_seconds">>, gauge,
      <<"Age of the sampled values (at most metrics_cache_time).">>,
      [{[], maps:get(age_seconds, Sample)}]},
     {<<?PREFIX "sample_duration_seconds">>, gauge,
      <<"How long the last pass over every session took.">>,
      [{[], maps:get(duration_seconds, Sample)}]}].

%% The text exposition format: HELP and TYPE before the samples of each
%% family; a family with no sample is left out whole.
-spec format([family()]) -> iodata().
format(Families) ->
    [[<<"# HELP ">>, Name, $\s, escape_help(Help), $\n,
      <<"# TYPE ">>, Name, $\s, atom_to_binary(Type, utf8), $\n,
      [[Name, format_labels(Labels), $\s, format_value(V), $\n] || {Labels, V} <- Samples]]
     || {Name, Type, Help, Samples} <- Families, Samples /= []].

%%%===================================================================
%%% Internal functions
%%%===================================================================
scrape(IP) ->
    case persistent_term:get({mod_megaphone, config}, undefined) of
        undefined ->
            {503, "mod_megaphone is not running on this node"};
        #{metrics_access := Access} ->
            case acl:match_rule(global, Access, #{ip => IP}) of
                allow ->
                    Sample = mod_megaphone_metrics:sample(),
                    {200, format(families(mod_megaphone_stats:get(), Sample))};
                deny ->
                    {403, "forbidden by mod_megaphone's metrics_access"}
            end
    end.

optional(_Labels, undefined) -> [];
optional(Labels, Value) -> [{Labels, Value}].

format_labels([]) ->
    [];
format_labels(Labels) ->
    [${, lists:join($,, [[K, <<"=\"">>, escape_label(V), $"] || {K, V} <- Labels]), $}].

format_value(V) when is_integer(V) -> integer_to_binary(V);
format_value(V) when is_float(V) -> float_to_binary(V, [short]).

%% HELP text: backslash and line feed escaped.
escape_help(Text) ->
    binary:replace(binary:replace(Text, <<"\\">>, <<"\\\\">>, [global]),
                   <<"\n">>, <<"\\n">>, [global]).

%% Label values: backslash, double quote and line feed escaped.
escape_label(Value) ->
    binary:replace(escape_help(Value), <<"\"">>, <<"\\\"">>, [global]).

error_answer(Status, Text) ->
    {Status, plain(), [Text, $\n]}.

plain() ->
    [{<<"Content-Type">>, <<"text/plain; charset=utf-8">>}].
