%% SPDX-License-Identifier: GPL-2.0-or-later
%%%----------------------------------------------------------------------
%%% File    : mod_megaphone_stats.erl
%%% Purpose : Node-global counters of what the links did, for the
%%%           ejabberdctl command megaphone_stats (mod_megaphone).
%%%
%%% One `counters' array (write_concurrency: links and workers add to it
%%% from many schedulers without contention), created at module start and
%%% found through persistent_term. Nothing is kept per user, sid or link.
%%% The two gauges are no counters. requests_inflight is the distinct
%%% requests in flight: the registry table's size (session creations, one
%%% row per worker) plus the calls of every sequencer shard, each written
%%% by its shard in a slot of its own (so a restarted shard or a killed
%%% worker can never leave the gauge too high or count twice).
%%% links_active is the number of authenticated links the registry
%%% monitors (mod_megaphone_registry:links/0; a killed link leaves it too).
%%% streams_active is the WebSocket streams with a c2s: each stream
%%% process adds 1 when its c2s starts and takes it back in terminate/2
%%% (a stream process ends through terminate/2 on every path; only an
%%% exit(Pid, kill) from outside would leave the gauge one too high).
%%%
%%% Without a running module (before start, after stop, in a worker that
%%% outlives it) every update is a no-op.
%%%----------------------------------------------------------------------
-module(mod_megaphone_stats).

-export([new/0, delete/0, incr/1, add/2, get/0, names/0, value/1, shard_calls/2]).

-define(KEY, {?MODULE, counters}).
%% one gauge per sequencer shard, after the counters
-define(SHARD_SLOTS, length(mod_megaphone_sequencer:shard_names())).

-type counter() :: links_accepted_total | links_refused_total |
                   requests_total | requests_deduplicated_total |
                   requests_rejected_total | cancels_total |
                   protocol_errors_total | gc_collections_total |
                   requests_reordered_total | requests_order_timeout_total |
                   requests_stale_total | requests_host_unknown_total |
                   requests_forwarded_total | responses_too_large_total |
                   links_refused_pending_total | responses_answered_total |
                   responses_failed_total | streams_opened_total |
                   streams_refused_draining_total | streams_refused_max_streams_total |
                   streams_failed_total | streams_closed_client_total |
                   streams_closed_server_total | streams_closed_link_lost_total |
                   streams_closed_credit_total | streams_closed_too_big_total |
                   streams_closed_error_total.
-type name() :: counter() | links_active | requests_inflight | streams_active.
-export_type([counter/0, name/0]).

%%%===================================================================
%%% API
%%%===================================================================
%% Every stat, in the order megaphone_stats prints them.
-spec names() -> [name()].
names() ->
    [links_active, links_accepted_total, links_refused_total,
     requests_total, requests_deduplicated_total, requests_inflight,
     requests_rejected_total, cancels_total, protocol_errors_total,
     gc_collections_total, requests_reordered_total,
     requests_order_timeout_total, requests_stale_total,
     requests_host_unknown_total, requests_forwarded_total,
     responses_too_large_total, links_refused_pending_total,
     responses_answered_total, responses_failed_total,
     streams_active, streams_opened_total, streams_refused_draining_total,
     streams_refused_max_streams_total, streams_failed_total,
     streams_closed_client_total, streams_closed_server_total,
     streams_closed_link_lost_total, streams_closed_credit_total,
     streams_closed_too_big_total, streams_closed_error_total].

%% Fresh counters, all zero (module start).
-spec new() -> ok.
new() ->
    persistent_term:put(?KEY, counters:new(length(counters()) + ?SHARD_SLOTS,
                                           [write_concurrency])).

%% Shard I of mod_megaphone_sequencer has N calls in flight now (each
%% shard writes its own slot, so a restarted shard starts from 0).
-spec shard_calls(pos_integer(), non_neg_integer()) -> ok.
shard_calls(I, N) ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> ok;
        Ref -> counters:put(Ref, length(counters()) + I, N)
    end.

%% Module stop: later updates are no-ops, get/0 reads zeros.
-spec delete() -> ok.
delete() ->
    _ = persistent_term:erase(?KEY),
    ok.

-spec incr(counter()) -> ok.
incr(Name) ->
    add(Name, 1).

%% Adds N (negative for the streams_active gauge, which each WebSocket
%% stream process moves up once and down once).
-spec add(counter() | streams_active, integer()) -> ok.
add(Name, N) ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> ok;
        Ref -> counters:add(Ref, index(Name), N)
    end.

%% {Name, Value} for every stat, names as binaries (ejabberdctl and the
%% HTTP API both render binaries as plain strings).
-spec get() -> [{binary(), integer()}].
get() ->
    Ref = persistent_term:get(?KEY, undefined),
    [{atom_to_binary(Name, utf8), value(Name, Ref)} || Name <- names()].

%% One stat's value now (0 without a running module).
-spec value(name()) -> integer().
value(Name) ->
    value(Name, persistent_term:get(?KEY, undefined)).

%%%===================================================================
%%% Internal functions
%%%===================================================================
counters() ->
    names() -- [links_active, requests_inflight].

value(requests_inflight, undefined) ->
    mod_megaphone_registry:count();
value(requests_inflight, Ref) ->
    Base = length(counters()),
    mod_megaphone_registry:count() +
        lists:sum([counters:get(Ref, Base + I) || I <- lists:seq(1, ?SHARD_SLOTS)]);
value(links_active, _Ref) ->
    mod_megaphone_registry:links();
value(_Name, undefined) ->
    0;
value(Name, Ref) ->
    counters:get(Ref, index(Name)).

index(links_accepted_total) -> 1;
index(links_refused_total) -> 2;
index(requests_total) -> 3;
index(requests_deduplicated_total) -> 4;
index(requests_rejected_total) -> 5;
index(cancels_total) -> 6;
index(protocol_errors_total) -> 7;
index(gc_collections_total) -> 8;
index(requests_reordered_total) -> 9;
index(requests_order_timeout_total) -> 10;
index(requests_stale_total) -> 11;
index(requests_host_unknown_total) -> 12;
index(requests_forwarded_total) -> 13;
index(responses_too_large_total) -> 14;
index(links_refused_pending_total) -> 15;
index(responses_answered_total) -> 16;
index(responses_failed_total) -> 17;
index(streams_active) -> 18;
index(streams_opened_total) -> 19;
index(streams_refused_draining_total) -> 20;
index(streams_refused_max_streams_total) -> 21;
index(streams_failed_total) -> 22;
index(streams_closed_client_total) -> 23;
index(streams_closed_server_total) -> 24;
index(streams_closed_link_lost_total) -> 25;
index(streams_closed_credit_total) -> 26;
index(streams_closed_too_big_total) -> 27;
index(streams_closed_error_total) -> 28.
