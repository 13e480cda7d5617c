#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The open-file ceiling: one ejabberd holding N concurrent logged-in BOSH users through ECMS ECM processes
# (each ECM holds N/ECMS client connections; every process here may open at most 20,000 files), driven by
# LOADGENS load generator processes with their own 127.0.x.y source addresses. Most users are poll only (one
# connection each); SENDERS per load generator also hold a send connection and chat at MSG_RATE/s to random
# users of their process (a sample of the N), during the ramp and after it; each load generator checks that
# every message arrives exactly once (lost, duplicated). Records ejabberd's open files, erlang:memory() as is
# and after a GC of every process, its process count, the ramp time, each ECM's RSS and live heap (after a full
# GC) before and after the ramp, its held requests, and the messages.
# ejabberd runs with ERL_PROCESSES (+P) = 4 x N + 100,000 (3 processes per user through Megaphone).
# TRANSPORT=ws (bench/websocket-50k.sh): XMPP over WebSocket users instead (the load generator's --mode ws, one
# WebSocket each to an ECM's /xmpp-websocket, streams on the links); the ECM figures are then per open WebSocket
# (its open files added over the ramp) instead of per held request.
#   bench/open-files.sh     # env: TRANSPORT (bosh, or ws), N (50000), ECMS (4), LOADGENS (4), RAMP (500 users/s in total), WAIT (60),
#                           #      SENDERS (25 per load generator), MSG_RATE (5 per load generator), HOLD (60 s),
#                           #      WARMUP_USERS (0: none; else that many other users log in through every ECM,
#                           #      chat for 30 s and log out before the measured ramp, so that it does not start
#                           #      while 6+ JVMs are still compiling on 2 cores)
# Bounded: the ramp gives up after 30 min, the load generators stop HOLD s after it, and everything started
# (ejabberd, ECMs, load generators) is stopped on exit.
# Writes bench/results/<date>-open-files-<N>/ (report.md, logs, loadgen JSON).
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_needs "${BENCH_BASE_NEEDS[@]}" "${BENCH_EJABBERD_NEEDS[@]}"
N=${N:-50000}; ECMS=${ECMS:-4}; LOADGENS=${LOADGENS:-4}; RAMP=${RAMP:-500}; WAIT=${WAIT:-60}
SENDERS=${SENDERS:-25}; MSG_RATE=${MSG_RATE:-5}; HOLD=${HOLD:-60}; LINKS=${LINKS:-2}; WARMUP_USERS=${WARMUP_USERS:-0}
TRANSPORT=${TRANSPORT:-bosh}
[[ $TRANSPORT == bosh || $TRANSPORT == ws ]] || { echo "TRANSPORT=$TRANSPORT (expected: bosh or ws)" >&2; exit 2; }
SECRET=bench-secret-$$-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")
OUT=${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)-$([[ $TRANSPORT == bosh ]] && echo open-files || echo websocket)-$N}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
EJ=$(mktemp -d /tmp/ejopen.XXXXXX)
cleanup() {
    touch "$OUT/stop"; sleep 2
    stop_all
    "$REPO/scripts/private-ejabberd.sh" stop "$EJ" >/dev/null 2>&1 || true
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "${WORK:-/nonexistent}" "$EJ"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(( N / ECMS <= 18000 )) || die "N/ECMS = $((N / ECMS)) client connections per ECM: more than 18,000"
(( N / LOADGENS + SENDERS <= 18000 )) || die "N/LOADGENS: more than 18,000 connections per load generator"
build_scratch
build_loadgen
machine_info | tee "$OUT/machine.txt" >&2
echo "TRANSPORT=$TRANSPORT N=$N ECMS=$ECMS LOADGENS=$LOADGENS RAMP=$RAMP WAIT=$WAIT SENDERS=$SENDERS MSG_RATE=$MSG_RATE LINKS=$LINKS WARMUP_USERS=$WARMUP_USERS" >>"$OUT/machine.txt"

MEGAPHONE_SECRET=$SECRET EJ_MAX_INFLIGHT=200000 EJ_MAX_PROCESSES=$((4 * N + 100000)) \
    "$REPO/scripts/private-ejabberd.sh" start "$EJ" | tee -a "$OUT/run.log" >&2
EJPID=$(cat "$EJ/ejabberd.pid")
T=$SECONDS
"$REPO/bench/ejabberd-rpc.sh" "$EJ" register-range 'lg%d' 1 "$N" secret-pw | tee -a "$OUT/run.log" >&2
log "registered $N users in $((SECONDS - T)) s (bench/ejabberd-rpc.sh register-range: ejabberd_auth:try_register in one Erlang call)"
. "$EJ/instance.env"
URLS=(); MGMTS=(); ECM_PIDS=()
for e in $(seq "$ECMS"); do
    http=$(free_port); mgmt=$(free_port)
    ECM_JVM_OPTS="-Xms64m -Xmx1g -XX:+UseSerialGC" start_ecm "$e" "$http" "$mgmt" "127.0.0.1:$EJ_LINK_PORT" \
        --megaphone.link.links-per-node="$LINKS"
    if [[ $TRANSPORT == bosh ]]; then URLS+=("http://127.0.0.1:$http/http-bind"); else URLS+=("ws://127.0.0.1:$http/xmpp-websocket"); fi
    MGMTS+=("$mgmt"); ECM_PIDS+=("$LAST_PID")
done
for m in "${MGMTS[@]}"; do wait_ready "$m" "$LINKS"; done
log "$ECMS ECMs up, $LINKS links each"
JCMD=$(dirname "$(readlink -f "$JAVA")")/jcmd
# live heap after a full GC, in KB (jcmd GC.heap_info: the used of every generation)
live_heap_kb() {
    "$JCMD" "$1" GC.run >/dev/null
    "$JCMD" "$1" GC.heap_info | grep -E 'generation|garbage-first heap' | grep -oE 'used [0-9]+K' | grep -oE '[0-9]+' | awk '{s += $1} END {print s}'
}
if (( WARMUP_USERS > 0 )); then
    "$REPO/bench/ejabberd-rpc.sh" "$EJ" register-range 'lgw%d' 1 "$WARMUP_USERS" secret-pw >/dev/null
    log "warm-up: $WARMUP_USERS other users through the $ECMS ECMs (30 s of chat, then they log out)"
    "$JAVA" -Xmx512m -XX:+UseSerialGC -jar "$LOADGEN_JAR" --mode "$TRANSPORT" --url "$(IFS=,; echo "${URLS[*]}")" \
        --users "$WARMUP_USERS" --user-pattern 'lgw%d' --password secret-pw --senders 50 --msg-rate 20 \
        --ramp 50 --wait 10 --duration 30 --login-timeout 120 --source 127.0.29.1 \
        --out "$OUT/loadgen-warmup.json" >"$OUT/loadgen-warmup.log" 2>&1 || log "warm-up load generator failed (ignored)"
    log "warm-up: $(jq -c '{logged_in: .users_logged_in, failed: .users_failed, errors: .error_count}' "$OUT/loadgen-warmup.json" 2>/dev/null)"
    echo "warmup_users $WARMUP_USERS $(jq -c '{logged_in: .users_logged_in, failed: .users_failed, errors: .errors}' "$OUT/loadgen-warmup.json" 2>/dev/null)" >>"$OUT/points.txt"
fi
for i in "${!ECM_PIDS[@]}"; do
    echo "ecm_${i}_before rss_kb $(awk '/VmRSS/ {print $2}' /proc/${ECM_PIDS[i]}/status) live_heap_kb $(live_heap_kb "${ECM_PIDS[i]}") open_files $(ls /proc/${ECM_PIDS[i]}/fd | wc -l)" >>"$OUT/points.txt"
done
echo "fds_before $(ls /proc/$EJPID/fd | wc -l) memory_before $("$REPO/bench/ejabberd-rpc.sh" "$EJ" memory)" >>"$OUT/points.txt"

# CPU seconds (user + system) used so far by these processes
cpu_s() { local t=0 pid; for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo "$t $(getconf CLK_TCK)" | awk '{printf "%.1f", $1 / $2}'; }
EJ_CPU0=$(cpu_s "$EJPID"); ECM_CPU0=$(cpu_s "${ECM_PIDS[@]}")
PER=$((N / LOADGENS)); T0=$SECONDS
for k in $(seq 0 $((LOADGENS - 1))); do
    # loadgen k talks to ECM k mod ECMS .. (all of them, user i -> URL i mod ECMS); sources 127.0.(30+k).1-4
    urls=$(IFS=,; echo "${URLS[*]}")
    "$JAVA" -Xmx1500m -XX:+UseSerialGC -jar "$LOADGEN_JAR" --mode "$TRANSPORT" --url "$urls" --users "$PER" --first $((k * PER + 1)) \
        --user-pattern 'lg%d' --password secret-pw --senders "$SENDERS" --msg-rate "$MSG_RATE" \
        --chat-during-ramp --ramp "$(python3 -c "print($RAMP / $LOADGENS)")" --wait "$WAIT" --duration 100000 --stop-file "$OUT/stop" \
        --ready-file "$OUT/ready-$k" --no-terminate --login-timeout 600 --drain 15 --progress 10 \
        --source "127.0.$((30 + k)).1,127.0.$((30 + k)).2,127.0.$((30 + k)).3,127.0.$((30 + k)).4" \
        --out "$OUT/loadgen-$k.json" >"$OUT/loadgen-$k.log" 2>&1 &
    PIDS+=($!)
done
peak_fds=0
while :; do
    n_ready=$(ls "$OUT"/ready-* 2>/dev/null | wc -l || true)
    fds=$(ls /proc/$EJPID/fd | wc -l)
    if (( fds > peak_fds )); then peak_fds=$fds; fi
    if (( n_ready == LOADGENS )); then break; fi
    (( SECONDS - T0 < 1800 )) || die "ramp did not finish in 30 min"
    sleep 5
    log "ramp: $(for f in "$OUT"/loadgen-[0-9]*.log; do grep 'users started' "$f" | tail -n 1; done | sed -E 's/.*online=([0-9]+) failed=([0-9]+).*held polls=([0-9]+).*/\1 \2 \3/' | awk '{o+=$1; f+=$2; h+=$3} END {print "online " o ", failed " f ", held polls " h}' || true); ejabberd open files $fds"
done
RAMP_S=$((SECONDS - T0))
LOADGEN_PIDS=("${PIDS[@]:$ECMS}")
RAMP_CPU="ejabberd $(python3 -c "print(f'{($(cpu_s "$EJPID") - $EJ_CPU0) / $RAMP_S:.2f}')") cores, ECMs $(python3 -c "print(f'{($(cpu_s "${ECM_PIDS[@]}") - $ECM_CPU0) / $RAMP_S:.2f}')") cores, load generators $(python3 -c "print(f'{$(cpu_s "${LOADGEN_PIDS[@]}") / $RAMP_S:.2f}')") cores (of $(nproc))"
log "ramp done in $RAMP_S s: $(cat "$OUT"/ready-* | jq -s '{online: map(.online) | add, failed: map(.failed) | add}' -c)"
sleep 20
{
    echo "ramp_seconds $RAMP_S ($(python3 -c "print(f'{$N / $RAMP_S:.0f}')") users/s)"
    echo "ramp_cpu (average over the ramp) $RAMP_CPU"
    echo "ejabberd_open_files $(ls /proc/$EJPID/fd | wc -l) (peak during ramp $peak_fds)"
    echo "ejabberd_rss_kb $(awk '/VmRSS/ {print $2}' /proc/$EJPID/status)"
    echo "ejabberd_memory(total processes binary ets process_count) $("$REPO/bench/ejabberd-rpc.sh" "$EJ" memory)"
    echo "ejabberd_connected_users $("$REPO/scripts/private-ejabberd.sh" ctl "$EJ" connected_users_number)"
    for i in "${!ECM_PIDS[@]}"; do
        echo "ecm_$i rss_kb $(awk '/VmRSS/ {print $2}' /proc/${ECM_PIDS[i]}/status) live_heap_kb $(live_heap_kb "${ECM_PIDS[i]}") open_files $(ls /proc/${ECM_PIDS[i]}/fd | wc -l) inflight $(curl -s "http://127.0.0.1:${MGMTS[i]}/actuator/health" | jq -r '.components.links.details.inflight')"
    done
} | tee -a "$OUT/points.txt" >&2
"$REPO/scripts/private-ejabberd.sh" ctl "$EJ" megaphone_stats >"$OUT/megaphone-stats.txt" 2>&1 || true
"$REPO/bench/ejabberd-rpc.sh" "$EJ" profile >"$OUT/profile-nogc.txt" 2>&1 || true
"$REPO/bench/ejabberd-rpc.sh" "$EJ" eval '[erlang:garbage_collect(P) || P <- erlang:processes()], ok' >/dev/null
echo "ejabberd_memory_after_gc(total processes binary ets process_count) $("$REPO/bench/ejabberd-rpc.sh" "$EJ" memory)" | tee -a "$OUT/points.txt" >&2
echo "ejabberd_rss_kb_after_gc $(awk '/VmRSS/ {print $2}' /proc/$EJPID/status)" | tee -a "$OUT/points.txt" >&2
"$REPO/bench/ejabberd-rpc.sh" "$EJ" profile >"$OUT/profile-gc.txt" 2>&1 || true
log "holding for $HOLD s with messages"
sleep "$HOLD"
touch "$OUT/stop"
for pid in "${PIDS[@]:$ECMS}"; do wait "$pid" 2>/dev/null || true; done
jq -s '{logged_in: map(.users_logged_in) | add, failed: map(.users_failed) | add, sent: map(.messages.sent) | add,
        received: map(.messages.received) | add, duplicated: map(.messages.duplicated) | add, lost: map(.messages.lost) | add, errors: map(.error_count) | add,
        error_kinds: (map(.errors | to_entries) | add | group_by(.key) | map({(.[0].key): (map(.value) | add)}) | add),
        login_p50_ms: (map(.latency.login.p50) | max / 1000), login_p99_ms: (map(.latency.login.p99) | max / 1000),
        delivery_p50_ms: (map(.latency.delivery.p50 // 0) | max / 1000), delivery_p99_ms: (map(.latency.delivery.p99 // 0) | max / 1000)}' \
    "$OUT"/loadgen-[0-9]*.json | tee "$OUT/summary.json" >&2
# per ECM: (after - before) / held requests (BOSH) or / WebSockets opened (ws: open files added), RSS and live heap
python3 - "$OUT/points.txt" "$TRANSPORT" <<'PY' >"$OUT/per-held.txt"
import re, sys
pts = open(sys.argv[1]).read()
for m in re.finditer(r"^ecm_(\d+) rss_kb (\d+) live_heap_kb (\d+) open_files (\d+) inflight (\d+)", pts, re.M):
    i, rss, heap, fds, held = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))
    b = re.search(r"^ecm_%s_before rss_kb (\d+) live_heap_kb (\d+)(?: open_files (\d+))?" % i, pts, re.M)
    what = "held request"
    if sys.argv[2] == "ws":
        held, what = fds - int(b.group(3)), "open WebSocket"
    if held > 0:
        print(f"ecm_{i} {what}s {held}: RSS {(rss - int(b.group(1))) * 1024 / held:,.0f} B and live heap "
              f"{(heap - int(b.group(2))) * 1024 / held:,.0f} B per {what}")
PY
{ echo '```'; cat "$OUT/machine.txt" "$OUT/points.txt" "$OUT/per-held.txt"; echo; cat "$OUT/summary.json"; echo '```'; } >"$OUT/report.md"
log "report: $OUT/report.md"
