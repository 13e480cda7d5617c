#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 13 under load: BOSH clients that pipeline over two connections (loadgen --pipeline: the queued
# messages go as rid N+1 on the send connection, written *before* the new empty poll N on the poll
# connection), once through the ECM + mod_megaphone and once against ejabberd's own BOSH, same ejabberd,
# same load, distinct users. Prints one summary line per run; the JSON results stay in $OUT.
#
#   bench/pipeline.sh                      USERS=200 MSG_RATE=100 DURATION=30 WAIT=2 (environment)
#   SOURCE=worktree bench/pipeline.sh      the ECM of the working tree instead of HEAD
#
# Loopback only. Bounded: DURATION s of steady state per run. Needs root (the private ejabberd).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_needs "${BENCH_BASE_NEEDS[@]}" "${BENCH_EJABBERD_NEEDS[@]}"
USERS=${USERS:-200}
MSG_RATE=${MSG_RATE:-100}
DURATION=${DURATION:-30}
WAIT=${WAIT:-2}
OUT=${OUT:-$(mktemp -d /tmp/megaphone-pipeline.XXXXXX)}
EJ_DIR="$OUT/ejabberd"
SECRET="pipeline-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PW=pipeline-pw

cleanup() {
    stop_all
    bash "$REPO/scripts/private-ejabberd.sh" stop "$EJ_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$OUT"
machine_info > "$OUT/machine.txt"
build_scratch
build_loadgen
log "starting a private ejabberd in $EJ_DIR"
started=$(MEGAPHONE_SECRET="$SECRET" bash "$REPO/scripts/private-ejabberd.sh" start "$EJ_DIR")
log "$started"
# shellcheck source=/dev/null
. "$EJ_DIR/instance.env"
bash "$REPO/bench/ejabberd-rpc.sh" "$EJ_DIR" register-range 'pl%d' 1 $((2 * USERS)) "$PW" | tee -a "$OUT/run.log"

HTTP=$(free_port); MGMT=$(free_port)
start_ecm pipeline "$HTTP" "$MGMT" "127.0.0.1:$EJ_LINK_PORT" --megaphone.link.links-per-node=2
wait_ready "$MGMT" 2

run() { # LABEL URL FIRST
    local label=$1 url=$2 first=$3
    log "loadgen --pipeline via $label: $USERS users, $MSG_RATE msg/s, ${DURATION}s, wait ${WAIT}s"
    "$JAVA" -Xmx512m -jar "$LOADGEN_JAR" --url "$url" --domain "$EJ_DOMAIN" --user-pattern 'pl%d' \
        --first "$first" --users "$USERS" --password "$PW" --ramp 100 --duration "$DURATION" \
        --msg-rate "$MSG_RATE" --wait "$WAIT" --pipeline --drain 30 --progress 10 \
        --out "$OUT/$label.json" > "$OUT/loadgen-$label.log" 2>&1 || true
    jq -c --arg name "$label" '{run: $name, users: .users, logged_in: .users_logged_in,
        lost: .users_failed, terminated: .users_terminated, pipelined_pairs: .pipelined_pairs,
        messages_sent: .messages.sent, messages_received: .messages.received, messages_duplicated: .messages.duplicated, messages_lost: .messages.lost, errors: .errors}' \
        "$OUT/$label.json" | tee -a "$OUT/summary.jsonl"
}

run megaphone "http://127.0.0.1:$HTTP/http-bind" 1
run direct "http://127.0.0.1:$EJ_HTTP_PORT/http-bind" $((USERS + 1))
bash "$REPO/scripts/private-ejabberd.sh" ctl "$EJ_DIR" megaphone_stats | tee "$OUT/megaphone_stats.txt"
log "results in $OUT"
