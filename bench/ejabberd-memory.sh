#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ejabberd memory per logged-in idle BOSH user, direct HTTP (ejabberd's own /http-bind) against through
# Megaphone (one ECM, LINKS links), with the same load generator and the same N, side by side in one run;
# TRANSPORT=ws (bench/ejabberd-memory-ws.sh): per XMPP over WebSocket user, ejabberd's own /ws against the
# ECMs' /xmpp-websocket (streams on the links, mod_megaphone_ws), the load generator's --mode ws:
# two private ejabberd instances started together (A: direct, B: behind the ECM), the same users registered on
# both, the same ramps. At each N: erlang:memory() total and processes, process count, open files of the
# ejabberd OS process, before and after a forced garbage collection of every Erlang process, and after a second
# one (a first forced GC sizes each new heap from the words in use before it, garbage included, and shrinks it
# only when the live words are under a quarter of that: a second one sizes it from the live words); at the last N a
# profile (bench/ejabberd-rpc.sh profile: processes grouped by initial call), the per-user processes in detail
# (bench/ejabberd-rpc.sh sessions: heap, live heap, monitors...) and the largest ETS tables (bench/ejabberd-rpc.sh
# tables) of both. Users are poll only (one HTTP connection each, a held poll always outstanding, wait WAIT s),
# no messages; with TRANSPORT=ws idle (one WebSocket each).
#   bench/ejabberd-memory.sh        # env: TRANSPORT (bosh, or ws), POINTS ("2000 5000"), RAMP (400 users/s), WAIT (60), LINKS (1 per ECM),
#                                   #      ECMS (1), DIRECT_MAX (none), SETTLE (15 s after the ramp), SOURCE, OUT,
#                                   #      KEEP_UP (0 s)
# Open files: every process here may open at most 20,000 files. Direct, ejabberd holds one socket per user, so
# direct stops at DIRECT_MAX users (the points above it measure direct at DIRECT_MAX; the report sets each point
# through Megaphone beside the largest direct point not above it); more than 19,900 direct users is refused.
# An ECM holds one socket per user too: at most 18,000 users per ECM (ECMS). Each step of the ramp is one load
# generator process (at most 18,000 users) with two source addresses of its own.
# KEEP_UP=S keeps everything running S s after the report (for bench/ejabberd-rpc.sh by hand), or until
# OUT/done exists.
# Writes bench/results/<date>-ejabberd-memory/ (report.md, points.txt, profile-*.txt, sessions-*.txt,
# tables-*.txt, logs).
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_needs "${BENCH_BASE_NEEDS[@]}" "${BENCH_EJABBERD_NEEDS[@]}"
POINTS=${POINTS:-2000 5000}; RAMP=${RAMP:-400}; WAIT=${WAIT:-60}; LINKS=${LINKS:-1}; SETTLE=${SETTLE:-15}
ECMS=${ECMS:-1}; DIRECT_MAX=${DIRECT_MAX:-}; KEEP_UP=${KEEP_UP:-0}; TRANSPORT=${TRANSPORT:-bosh}
[[ $TRANSPORT == bosh || $TRANSPORT == ws ]] || { echo "TRANSPORT=$TRANSPORT (expected: bosh or ws)" >&2; exit 2; }
SECRET=bench-secret-$$-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")
OUT=${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)-ejabberd-memory$([[ $TRANSPORT == bosh ]] || echo -ws)}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
EJ_A=$(mktemp -d /tmp/ejmem-direct.XXXXXX); EJ_B=$(mktemp -d /tmp/ejmem-megaphone.XXXXXX)
LG_PIDS=()
cleanup() {
    touch "$OUT/stop"; sleep 1
    # the load generators end their steady state, drain and write their JSON (18,000 connections take a while)
    local pid alive
    for _ in $(seq 40); do
        alive=0
        for pid in "${LG_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 1
    done
    stop_all
    "$REPO/scripts/private-ejabberd.sh" stop "$EJ_A" >/dev/null 2>&1 || true
    "$REPO/scripts/private-ejabberd.sh" stop "$EJ_B" >/dev/null 2>&1 || true
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "${WORK:-/nonexistent}" "$EJ_A" "$EJ_B"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
MAXN=$(echo "$POINTS" | tr ' ' '\n' | sort -n | tail -1)
# direct users at point N
direct_n() { if [[ -n "$DIRECT_MAX" ]] && (( $1 > DIRECT_MAX )); then echo "$DIRECT_MAX"; else echo "$1"; fi; }
(( $(direct_n "$MAXN") <= 19900 )) || die "$(direct_n "$MAXN") direct users: ejabberd holds one socket each, at most 20,000 open files per process here (set DIRECT_MAX, at most 19900)"
(( (MAXN + ECMS - 1) / ECMS <= 18000 )) || die "$MAXN users through $ECMS ECM(s): more than 18,000 client connections per ECM (set ECMS)"
P0=0; for N in $POINTS; do
    (( N - P0 <= 18000 )) || die "a step of $((N - P0)) users: more than 18,000 connections for one load generator (add a point)"
    P0=$N
done
build_scratch
build_loadgen
machine_info | tee "$OUT/machine.txt" >&2
echo "TRANSPORT=$TRANSPORT POINTS=\"$POINTS\" DIRECT_MAX=${DIRECT_MAX:-none} RAMP=$RAMP WAIT=$WAIT ECMS=$ECMS LINKS=$LINKS SETTLE=$SETTLE" >>"$OUT/machine.txt"

start_ej() { MEGAPHONE_SECRET=$SECRET EJ_MAX_INFLIGHT=200000 "$REPO/scripts/private-ejabberd.sh" start "$1" | tee -a "$OUT/run.log" >&2; }
start_ej "$EJ_A"; start_ej "$EJ_B"
for d in "$EJ_A" "$EJ_B"; do
    "$REPO/bench/ejabberd-rpc.sh" "$d" register-range 'lg%d' 1 "$MAXN" secret-pw | tee -a "$OUT/run.log" >&2
done
. "$EJ_A/instance.env"; DIRECT_URL="http://127.0.0.1:$EJ_HTTP_PORT/http-bind"
[[ $TRANSPORT == bosh ]] || DIRECT_URL="ws://127.0.0.1:$EJ_HTTP_PORT/ws"
. "$EJ_B/instance.env"; LINK="127.0.0.1:$EJ_LINK_PORT"
ECM_URLS=(); ECM_MGMTS=()
for e in $(seq "$ECMS"); do
    http=$(free_port); mgmt=$(free_port)
    start_ecm "mem$e" "$http" "$mgmt" "$LINK" --megaphone.link.links-per-node="$LINKS"
    if [[ $TRANSPORT == bosh ]]; then ECM_URLS+=("http://127.0.0.1:$http/http-bind"); else ECM_URLS+=("ws://127.0.0.1:$http/xmpp-websocket"); fi
    ECM_MGMTS+=("$mgmt")
done
for m in "${ECM_MGMTS[@]}"; do wait_ready "$m" "$LINKS"; done
ECM_URL=$(IFS=,; echo "${ECM_URLS[*]}")   # user i goes to ECM i mod ECMS

ej_pid() { cat "$1/ejabberd.pid"; }
gc_all() { "$REPO/bench/ejabberd-rpc.sh" "$1" eval '[erlang:garbage_collect(P) || P <- erlang:processes()], ok' >/dev/null; }
measure() { # mode dir n online -> appends a line to points.txt
    local mode=$1 dir=$2 n=$3 online=$4 before after after2 fds
    before=$("$REPO/bench/ejabberd-rpc.sh" "$dir" memory)
    fds=$(ls "/proc/$(ej_pid "$dir")/fd" | wc -l)
    gc_all "$dir"
    after=$("$REPO/bench/ejabberd-rpc.sh" "$dir" memory)
    gc_all "$dir"
    after2=$("$REPO/bench/ejabberd-rpc.sh" "$dir" memory)
    echo "$mode $n $before $after $fds $online $after2" >>"$OUT/points.txt"
    log "$mode N=$n: total processes binary ets count = $before | after GC: $after | after a 2nd GC: $after2 | open files $fds"
}
echo "mode n total processes binary ets procs gc_total gc_processes gc_binary gc_ets gc_procs open_files online gc2_total gc2_processes gc2_binary gc2_ets gc2_procs" >"$OUT/points.txt"
measure direct "$EJ_A" 0 0
measure megaphone "$EJ_B" 0 0
declare -A ONLINE=([direct]=0 [megaphone]=0) PREV=([direct]=0 [megaphone]=0) AT=([direct]=0 [megaphone]=0)

K=0
for N in $POINTS; do
    AT[direct]=$(direct_n "$N"); AT[megaphone]=$N
    for mode in direct megaphone; do
        url=$DIRECT_URL; [[ $mode == direct ]] || url=$ECM_URL
        ADD=$(( ${AT[$mode]} - ${PREV[$mode]} ))
        (( ADD > 0 )) || continue
        K=$((K + 1))
        rm -f "$OUT/ready-$K"
        T0=$SECONDS
        # two source addresses (ports), one process per step
        "$JAVA" -Xmx1500m -XX:+UseSerialGC -jar "$LOADGEN_JAR" --mode "$TRANSPORT" --url "$url" --users "$ADD" --first $(( ${PREV[$mode]} + 1 )) \
            --user-pattern 'lg%d' --password secret-pw --senders 0 --ramp "$RAMP" --wait "$WAIT" --duration 100000 \
            --stop-file "$OUT/stop" --ready-file "$OUT/ready-$K" --no-terminate --source "127.0.$((10 + K)).1,127.0.$((10 + K)).2" \
            --login-timeout 120 --out "$OUT/loadgen-$mode-${AT[$mode]}.json" >"$OUT/loadgen-$mode-${AT[$mode]}.log" 2>&1 &
        PIDS+=($!)
        LG_PIDS+=($!)
        LGPID=$!
        for _ in $(seq 600); do [[ -f "$OUT/ready-$K" ]] && break; kill -0 $LGPID 2>/dev/null || die "loadgen exited, see $OUT/loadgen-$mode-${AT[$mode]}.log"; sleep 1; done
        [[ -f "$OUT/ready-$K" ]] || die "ramp of $mode to ${AT[$mode]} did not finish"
        log "$mode: +$ADD users in $((SECONDS - T0)) s: $(cat "$OUT/ready-$K" | tr -d '\n ')"
        ONLINE[$mode]=$(( ${ONLINE[$mode]} + $(jq -r .online "$OUT/ready-$K") ))
    done
    sleep "$SETTLE"
    if [[ $N == "$MAXN" ]]; then  # where the bytes go as they are (before the forced GC of measure)
        for mode in direct megaphone; do
            dir=$EJ_A; [[ $mode == direct ]] || dir=$EJ_B
            "$REPO/bench/ejabberd-rpc.sh" "$dir" profile >"$OUT/profile-$mode-${AT[$mode]}-nogc.txt" 2>&1 || true
            "$REPO/bench/ejabberd-rpc.sh" "$dir" sessions >"$OUT/sessions-$mode-${AT[$mode]}-nogc.txt" 2>&1 || true
            "$REPO/bench/ejabberd-rpc.sh" "$dir" tables >"$OUT/tables-$mode-${AT[$mode]}.txt" 2>&1 || true
        done
    fi
    for mode in direct megaphone; do
        (( ${AT[$mode]} > ${PREV[$mode]} )) || continue
        dir=$EJ_A; [[ $mode == direct ]] || dir=$EJ_B
        measure "$mode" "$dir" "${AT[$mode]}" "${ONLINE[$mode]}"
        PREV[$mode]=${AT[$mode]}
    done
done
for mode in direct megaphone; do
    dir=$EJ_A; [[ $mode == direct ]] || dir=$EJ_B
    "$REPO/bench/ejabberd-rpc.sh" "$dir" profile >"$OUT/profile-$mode-${AT[$mode]}.txt" 2>&1 || true
    # each process read right after two GCs of its own
    "$REPO/bench/ejabberd-rpc.sh" "$dir" sessions 20 2 >"$OUT/sessions-$mode-${AT[$mode]}-gc2.txt" 2>&1 || true
done
for i in "${!ECM_MGMTS[@]}"; do curl -s "http://127.0.0.1:${ECM_MGMTS[i]}/actuator/health" >"$OUT/ecm-health-$((i + 1)).json" || true; done
"$REPO/scripts/private-ejabberd.sh" ctl "$EJ_B" megaphone_stats >"$OUT/megaphone-stats.txt" 2>&1 || true
grep -h 'steady' "$OUT"/loadgen-*.log | tail -4 >>"$OUT/run.log" || true

python3 - "$OUT" <<'PY' | tee "$OUT/report.md"
import sys
out = sys.argv[1]
rows = [l.split() for l in open(f"{out}/points.txt")][1:]
pts = {}
for r in rows:
    pts[(r[0], int(r[1]))] = [int(x) for x in r[2:]]
ns = sorted({n for (m, n) in pts if m == "megaphone"})
dns = sorted({n for (m, n) in pts if m == "direct"})
def dn(n):  # the largest direct point not above n
    return max(d for d in dns if d <= n)
print("| mode | N | total MB | processes MB | binary MB | ets MB | Erlang processes | total after GC MB | after a 2nd GC MB | open files |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for mode, mns in (("direct", dns), ("megaphone", ns)):
    for n in mns:
        v = pts[(mode, n)]
        print(f"| {mode} | {n:,} | {v[0]/2**20:.1f} | {v[1]/2**20:.1f} | {v[2]/2**20:.1f} | {v[3]/2**20:.1f} | {v[4]:,} | {v[5]/2**20:.1f} | {v[12]/2**20:.1f} | {v[10]:,} |")
print()
print("Per user (slope from 0 to the users actually logged in at N; bytes, KB = 1024 B):\n")
print("| N (direct, megaphone) | direct total | megaphone total | ratio | direct after GC | megaphone after GC | ratio after GC | after a 2nd GC: direct, megaphone | ratio | processes/user direct, megaphone |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for n in ns[1:]:
    d = [(pts[("direct", dn(n))][i] - pts[("direct", 0)][i]) / pts[("direct", dn(n))][11] for i in range(len(pts[("direct", 0)]))]
    m = [(pts[("megaphone", n)][i] - pts[("megaphone", 0)][i]) / pts[("megaphone", n)][11] for i in range(len(pts[("megaphone", 0)]))]
    print(f"| {dn(n):,}, {n:,} | {d[0]:,.0f} ({d[0]/1024:.1f} KB) | {m[0]:,.0f} ({m[0]/1024:.1f} KB) | **{m[0]/d[0]:.2f}×** | {d[5]/1024:.1f} KB | {m[5]/1024:.1f} KB | **{m[5]/d[5]:.2f}×** | {d[12]/1024:.1f} KB, {m[12]/1024:.1f} KB | {m[12]/d[12]:.2f}× | {d[4]:.2f}, {m[4]:.2f} |")
if len(ns) > 2 and len(dns) > 2:
    a, b = ns[1], ns[-1]
    da, db = dn(a), dn(b)
    for k, label in ((0, "as is"), (5, "after GC"), (12, "after a 2nd GC")):
        d = (pts[("direct", db)][k] - pts[("direct", da)][k]) / (pts[("direct", db)][11] - pts[("direct", da)][11])
        m = (pts[("megaphone", b)][k] - pts[("megaphone", a)][k]) / (pts[("megaphone", b)][11] - pts[("megaphone", a)][11])
        print(f"\nslope {label}, direct {da:,} → {db:,}, megaphone {a:,} → {b:,}: direct {d/1024:.1f} KB, megaphone {m/1024:.1f} KB per user ({m/d:.2f}×)")
PY
log "report: $OUT/report.md"
if (( KEEP_UP > 0 )); then
    log "keeping ejabberd A ($EJ_A), B ($EJ_B), the ECMs and the load generators up for $KEEP_UP s (or until $OUT/done exists)"
    for _ in $(seq "$KEEP_UP"); do [[ -f "$OUT/done" ]] && break; sleep 1; done
    rm -f "$OUT/done"
fi
