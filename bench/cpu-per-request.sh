#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CPU time per request under a wrk load (docs/benchmarks.md, "Forwarding throughput"): a process's user + system CPU
# (from /proc/<pid>/stat) over one wrk run, divided by the requests wrk completed. Less sensitive to a shared
# machine's noise than requests/s, since time spent waiting for a core is not counted.
#
#   bench/cpu-per-request.sh             # the ECM against the bare WebFlux functional endpoint, in one run
#   bench/cpu-per-request.sh URL PID...  # only measures: wrk against URL, the CPU of the processes PID...
#
# Without arguments it builds the ECM ($SOURCE, as bench/forwarding.sh does) and starts, side by side:
#   * io.megaphone.bench.WebFluxHelloWorld: the smallest WebFlux functional endpoint on Boot's server (reads the
#     POSTed body, answers at once), the floor of any WebFlux endpoint;
#   * the ECM, with io.megaphone.bench.InstantUpstream behind its link (answers every request at once);
# warms both up, then alternates ROUNDS wrk runs against each, and reports the ECM process's CPU per forwarded
# request, the WebFlux endpoint's per request, and their ratio (budget: ECM <= 1.2x the WebFlux endpoint). The
# stand-in upstream's CPU is reported beside, not counted. Both JVMs get ECM_JVM_OPTS.
# Writes bench/results/<date>-cpu-per-request/ (report.md, wrk-*.txt, cpu.txt, logs).
#
# env: ROUNDS (3), SECONDS_PER_RUN (20), CONNS (64), WARMUP_SECONDS (40), ECM_JVM_OPTS (-Xms64m -Xmx1g
#      -XX:+UseSerialGC), LINKS (unset: the ECM's default), SOURCE (head|worktree|<rev>), OUT
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_needs "${BENCH_BASE_NEEDS[@]}" wrk
CONNS=${CONNS:-64}; SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
TICK=$(getconf CLK_TCK)

ticks() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }

# measure WRK_OUT URL PID...: one wrk run against URL; prints "requests rps cpu_ticks..." (one per PID)
measure() {
    local out=$1 url=$2 pid before=() after=() line
    shift 2
    for pid in "$@"; do before+=("$(ticks "$pid")"); done
    wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" -s "$REPO/bench/bosh-post.lua" "$url" >"$out" 2>&1
    for pid in "$@"; do after+=("$(ticks "$pid")"); done
    line="$(awk '/requests in/ {print $1}' "$out") $(awk '/Requests\/sec/ {print $2}' "$out")"
    for i in "${!before[@]}"; do line="$line $((after[i] - before[i]))"; done
    echo "$line"
}

if [[ $# -gt 0 ]]; then
    URL=$1; shift
    [[ $# -gt 0 ]] || { echo "usage: $0 [URL PID...]" >&2; exit 2; }
    read -r requests rps cpu < <(measure "$(mktemp /tmp/cpu-per-request.XXXXXX)" "$URL" "$@" \
        | awk '{s = 0; for (i = 3; i <= NF; i++) s += $i; print $1, $2, s}')
    python3 -c "print(f'requests={$requests} req/s={$rps} cpu_ms={$cpu*1000/$TICK:.0f} us_per_request={$cpu*1e6/$TICK/max($requests,1):.1f}')"
    exit 0
fi

ROUNDS=${ROUNDS:-3}; WARMUP_SECONDS=${WARMUP_SECONDS:-40}; LINKS=${LINKS:-}
ECM_JVM_OPTS=${ECM_JVM_OPTS:--Xms64m -Xmx1g -XX:+UseSerialGC}
SECRET=bench-secret-$$-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")
OUT=${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)-cpu-per-request}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
trap 'stop_all; [[ -n "${KEEP_WORK:-}" ]] || rm -rf "${WORK:-/nonexistent}"' EXIT
trap 'exit 130' INT TERM
build_scratch
machine_info | tee "$OUT/machine.txt" >&2
echo "jvm options (both): $ECM_JVM_OPTS" >>"$OUT/machine.txt"

UP=$(free_port); WF=$(free_port); ECM_HTTP=$(free_port); ECM_MGMT=$(free_port)
"$JAVA" -Xmx256m -cp "$TOOL_CP" io.megaphone.bench.InstantUpstream "$UP" "$SECRET" >"$OUT/upstream.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
# shellcheck disable=SC2086
"$JAVA" $ECM_JVM_OPTS -cp "$TOOL_CP" io.megaphone.bench.WebFluxHelloWorld "$WF" >"$OUT/webflux.log" 2>&1 &
WF_PID=$!; PIDS+=("$WF_PID")
sleep 2
start_ecm cpu "$ECM_HTTP" "$ECM_MGMT" "127.0.0.1:$UP" ${LINKS:+--megaphone.link.links-per-node=$LINKS}
ECM_PID=$LAST_PID
wait_ready "$ECM_MGMT" "$LINKS"
declare -A URL=([webflux]="http://127.0.0.1:$WF/http-bind" [ecm]="http://127.0.0.1:$ECM_HTTP/http-bind")
for t in webflux ecm; do
    for _ in $(seq 60); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
            --data "<body rid='1' xmlns='http://jabber.org/protocol/httpbind'/>" "${URL[$t]}")" == 200 ]] && break
        sleep 1
    done
done
log "ECM (pid $ECM_PID) and the WebFlux endpoint (pid $WF_PID) up; warm-up ${WARMUP_SECONDS} s each"
for t in webflux ecm; do
    wrk -t1 -c"$CONNS" -d"${WARMUP_SECONDS}s" -s "$REPO/bench/bosh-post.lua" "${URL[$t]}" >/dev/null
done

: >"$OUT/cpu.txt"
for r in $(seq "$ROUNDS"); do
    read -r req rps cpu < <(measure "$OUT/wrk-webflux-$r.txt" "${URL[webflux]}" "$WF_PID")
    echo "$r webflux $req $rps $cpu 0" >>"$OUT/cpu.txt"
    log "round $r webflux: $req requests, $rps req/s, $cpu ticks"
    read -r req rps cpu upcpu < <(measure "$OUT/wrk-ecm-$r.txt" "${URL[ecm]}" "$ECM_PID" "$UP_PID")
    echo "$r ecm $req $rps $cpu $upcpu" >>"$OUT/cpu.txt"
    log "round $r ecm: $req requests, $rps req/s, $cpu ticks (upstream stand-in $upcpu)"
done

python3 - "$OUT" "$TICK" <<'PY' | tee "$OUT/report.md"
import re, sys
from collections import defaultdict
out, tick = sys.argv[1], int(sys.argv[2])
rows = defaultdict(dict)
for line in open(f"{out}/cpu.txt"):
    r, t, req, rps, cpu, up = line.split()
    rows[int(r)][t] = (int(req), float(rps), int(cpu), int(up))
us = lambda ticks, req: ticks * 1e6 / tick / max(req, 1)
def errors(t, r):
    txt = open(f"{out}/wrk-{t}-{r}.txt").read()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    sock = re.search(r"Socket errors: (.*)", txt)
    return f"{int(bad.group(1)) if bad else 0}{', ' + sock.group(1) if sock else ''}"
print("CPU per request (µs, the process's user + system CPU over one wrk run / requests completed)\n")
print("| round | WebFlux endpoint req/s | WebFlux µs/request | ECM req/s | ECM µs/request | **ECM / WebFlux** "
      "| stand-in upstream µs/request (not counted) | non-2xx (WebFlux / ECM) |")
print("|---:|---:|---:|---:|---:|---:|---:|---|")
ratios = []
for r in sorted(rows):
    w, e = rows[r]["webflux"], rows[r]["ecm"]
    wu, eu = us(w[2], w[0]), us(e[2], e[0])
    ratios.append(eu / wu if wu else float("inf"))
    print(f"| {r} | {w[1]:,.0f} | {wu:.1f} | {e[1]:,.0f} | {eu:.1f} | **{ratios[-1]:.2f}×** | {us(e[3], e[0]):.1f} | {errors('webflux', r)} / {errors('ecm', r)} |")
mean = sum(ratios) / len(ratios)
print(f"\nECM CPU per forwarded request / bare WebFlux functional endpoint's: "
      f"{', '.join(f'{x:.2f}' for x in ratios)} (mean **{mean:.2f}×**; budget ≤ 1.2×: "
      f"{'met' if mean <= 1.2 else 'NOT met'})")
PY
log "report: $OUT/report.md"
