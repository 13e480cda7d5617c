#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ejabberd memory per logged-in idle BOSH user, direct HTTP (ejabberd's own /http-bind) against through
# Megaphone (one ECM, LINKS links), with the same load generator and the same N, side by side in one run:
# two private ejabberd instances started together (A: direct, B: behind the ECM), the same users registered on
# both, the same ramps. At each N: erlang:memory() total and processes, process count, open files of the
# ejabberd OS process, before and after a forced garbage collection of every Erlang process; at the last N a
# profile (bench/ejabberd-rpc.sh profile: processes grouped by initial call) of both. Users are poll only (one
# HTTP connection each, a held poll always outstanding, wait WAIT s), no messages.
#   bench/ejabberd-memory.sh        # env: POINTS ("2000 5000"), RAMP (400 users/s), WAIT (60), LINKS (1),
#                                   #      SETTLE (15 s after the ramp), SOURCE, OUT
# Writes bench/results/<date>-ejabberd-memory/ (report.md, points.txt, profile-*.txt, logs).
set -euo pipefail
. "$(dirname "$0")/common.sh"
POINTS=${POINTS:-2000 5000}; RAMP=${RAMP:-400}; WAIT=${WAIT:-60}; LINKS=${LINKS:-1}; SETTLE=${SETTLE:-15}
SECRET=bench-secret-$$-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")
OUT=${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)-ejabberd-memory}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
EJ_A=$(mktemp -d /tmp/ejmem-direct.XXXXXX); EJ_B=$(mktemp -d /tmp/ejmem-megaphone.XXXXXX)
cleanup() {
    touch "$OUT/stop"; sleep 1
    stop_all
    "$REPO/scripts/private-ejabberd.sh" stop "$EJ_A" >/dev/null 2>&1 || true
    "$REPO/scripts/private-ejabberd.sh" stop "$EJ_B" >/dev/null 2>&1 || true
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "${WORK:-/nonexistent}" "$EJ_A" "$EJ_B"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
build_scratch
build_loadgen
machine_info | tee "$OUT/machine.txt" >&2
MAXN=$(echo "$POINTS" | tr ' ' '\n' | sort -n | tail -1)

start_ej() { MEGAPHONE_SECRET=$SECRET EJ_MAX_INFLIGHT=200000 "$REPO/scripts/private-ejabberd.sh" start "$1" | tee -a "$OUT/run.log" >&2; }
start_ej "$EJ_A"; start_ej "$EJ_B"
for d in "$EJ_A" "$EJ_B"; do
    "$REPO/bench/ejabberd-rpc.sh" "$d" register-range 'lg%d' 1 "$MAXN" secret-pw | tee -a "$OUT/run.log" >&2
done
. "$EJ_A/instance.env"; DIRECT_URL="http://127.0.0.1:$EJ_HTTP_PORT/http-bind"
. "$EJ_B/instance.env"; LINK="127.0.0.1:$EJ_LINK_PORT"
ECM_HTTP=$(free_port); ECM_MGMT=$(free_port)
start_ecm mem "$ECM_HTTP" "$ECM_MGMT" "$LINK" --megaphone.link.links-per-node="$LINKS"
wait_ready "$ECM_MGMT" "$LINKS"
ECM_URL="http://127.0.0.1:$ECM_HTTP/http-bind"

ej_pid() { cat "$1/ejabberd.pid"; }
measure() { # mode dir n online -> appends a line to points.txt
    local mode=$1 dir=$2 n=$3 online=$4 before after fds
    before=$("$REPO/bench/ejabberd-rpc.sh" "$dir" memory)
    fds=$(ls "/proc/$(ej_pid "$dir")/fd" | wc -l)
    "$REPO/bench/ejabberd-rpc.sh" "$dir" eval '[erlang:garbage_collect(P) || P <- erlang:processes()], ok' >/dev/null
    after=$("$REPO/bench/ejabberd-rpc.sh" "$dir" memory)
    echo "$mode $n $before $after $fds $online" >>"$OUT/points.txt"
    log "$mode N=$n: total processes binary ets count = $before | after GC: $after | open files $fds"
}
echo "mode n total processes binary ets procs gc_total gc_processes gc_binary gc_ets gc_procs open_files online" >"$OUT/points.txt"
measure direct "$EJ_A" 0 0
measure megaphone "$EJ_B" 0 0
declare -A ONLINE=([direct]=0 [megaphone]=0)

PREV=0; K=0
for N in $POINTS; do
    ADD=$((N - PREV))
    for mode in direct megaphone; do
        url=$DIRECT_URL; [[ $mode == direct ]] || url=$ECM_URL
        K=$((K + 1))
        rm -f "$OUT/ready-$K"
        # one source address per 10,000 users (ports), one process per step
        "$JAVA" -Xmx1g -XX:+UseSerialGC -jar "$LOADGEN_JAR" --url "$url" --users "$ADD" --first $((PREV + 1)) \
            --user-pattern 'lg%d' --password secret-pw --senders 0 --ramp "$RAMP" --wait "$WAIT" --duration 100000 \
            --stop-file "$OUT/stop" --ready-file "$OUT/ready-$K" --no-terminate --source "127.0.$((10 + K)).1,127.0.$((10 + K)).2" \
            --login-timeout 120 --out "$OUT/loadgen-$mode-$N.json" >"$OUT/loadgen-$mode-$N.log" 2>&1 &
        PIDS+=($!)
        LGPID=$!
        for _ in $(seq 600); do [[ -f "$OUT/ready-$K" ]] && break; kill -0 $LGPID 2>/dev/null || die "loadgen exited, see $OUT/loadgen-$mode-$N.log"; sleep 1; done
        [[ -f "$OUT/ready-$K" ]] || die "ramp of $mode to $N did not finish"
        log "$mode: +$ADD users: $(cat "$OUT/ready-$K" | tr -d '\n ')"
        ONLINE[$mode]=$(( ${ONLINE[$mode]} + $(jq -r .online "$OUT/ready-$K") ))
    done
    sleep "$SETTLE"
    if [[ $N == "$MAXN" ]]; then  # where the bytes go as they are (before the forced GC of measure)
        "$REPO/bench/ejabberd-rpc.sh" "$EJ_A" profile >"$OUT/profile-direct-$MAXN-nogc.txt" 2>&1 || true
        "$REPO/bench/ejabberd-rpc.sh" "$EJ_B" profile >"$OUT/profile-megaphone-$MAXN-nogc.txt" 2>&1 || true
    fi
    measure direct "$EJ_A" "$N" "${ONLINE[direct]}"
    measure megaphone "$EJ_B" "$N" "${ONLINE[megaphone]}"
    PREV=$N
done
"$REPO/bench/ejabberd-rpc.sh" "$EJ_A" profile >"$OUT/profile-direct-$MAXN.txt" 2>&1 || true
"$REPO/bench/ejabberd-rpc.sh" "$EJ_B" profile >"$OUT/profile-megaphone-$MAXN.txt" 2>&1 || true
curl -s "http://127.0.0.1:$ECM_MGMT/actuator/health" >"$OUT/ecm-health.json" || true
"$REPO/scripts/private-ejabberd.sh" ctl "$EJ_B" megaphone_stats >"$OUT/megaphone-stats.txt" 2>&1 || true
grep -h 'steady' "$OUT"/loadgen-*.log | tail -4 >>"$OUT/run.log" || true

python3 - "$OUT" <<'PY' | tee "$OUT/report.md"
import sys
out = sys.argv[1]
rows = [l.split() for l in open(f"{out}/points.txt")][1:]
pts = {}
for r in rows:
    pts[(r[0], int(r[1]))] = [int(x) for x in r[2:]]
ns = sorted({n for (_, n) in pts})
print("| mode | N | total MB | processes MB | binary MB | ets MB | Erlang processes | total after GC MB | open files |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for mode in ("direct", "megaphone"):
    for n in ns:
        v = pts[(mode, n)]
        print(f"| {mode} | {n:,} | {v[0]/2**20:.1f} | {v[1]/2**20:.1f} | {v[2]/2**20:.1f} | {v[3]/2**20:.1f} | {v[4]:,} | {v[5]/2**20:.1f} | {v[10]:,} |")
print()
print("Per user (slope from 0 to the users actually logged in at N; bytes, KB = 1024 B):\n")
print("| N | direct total | megaphone total | ratio | direct after GC | megaphone after GC | ratio after GC | processes/user direct, megaphone |")
print("|---:|---:|---:|---:|---:|---:|---:|---|")
for n in ns[1:]:
    d = [(pts[("direct", n)][i] - pts[("direct", 0)][i]) / pts[("direct", n)][11] for i in range(11)]
    m = [(pts[("megaphone", n)][i] - pts[("megaphone", 0)][i]) / pts[("megaphone", n)][11] for i in range(11)]
    print(f"| {n:,} | {d[0]:,.0f} ({d[0]/1024:.1f} KB) | {m[0]:,.0f} ({m[0]/1024:.1f} KB) | **{m[0]/d[0]:.2f}×** | {d[5]/1024:.1f} KB | {m[5]/1024:.1f} KB | {m[5]/d[5]:.2f}× | {d[4]:.2f}, {m[4]:.2f} |")
if len(ns) > 2:
    a, b = ns[1], ns[-1]
    d = (pts[("direct", b)][0] - pts[("direct", a)][0]) / (pts[("direct", b)][11] - pts[("direct", a)][11])
    m = (pts[("megaphone", b)][0] - pts[("megaphone", a)][0]) / (pts[("megaphone", b)][11] - pts[("megaphone", a)][11])
    print(f"\nslope {a:,} → {b:,}: direct {d/1024:.1f} KB, megaphone {m/1024:.1f} KB per user ({m/d:.2f}×)")
PY
log "report: $OUT/report.md"
