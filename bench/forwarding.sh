#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Forwarding throughput and added latency (docs/benchmarks.md, "Forwarding throughput"):
#  1. wrk (closed loop, keep-alive, POST of a small BOSH body, bench/bosh-post.lua) against
#     a) io.megaphone.bench.HelloWorldServer: bare Reactor Netty answering at once (the ceiling),
#     b) io.megaphone.bench.WebFluxHelloWorld: the smallest WebFlux functional endpoint on Boot's server (reads the
#        body with bodyToMono(String), answers at once): the card's shape before the ECM adds anything,
#     c) the ECM with io.megaphone.bench.InstantUpstream behind it (answers every REQUEST at once), and
#     d) the ECM's GET on the same path (its functional endpoint's plain-text description, answered at once: no
#        body, no link, no stand-in),
#     alternated ROUNDS times in one run, so that the ratios are measured side by side on the same load. The report
#     gives the ECM / WebFlux endpoint ratio (budget >= 0.9x) and each one's ratio to bare Reactor Netty.
#  2. the load generator's raw mode (open loop at a fixed RATE, latency from the intended send time) against (a),
#     (b) and (c), alternated: the p50/p99/p99.9 the ECM adds at that rate = ECM minus hello world (and the same
#     for the WebFlux hello world).
# Writes bench/results/<date>-forwarding/ (report.md, wrk-*.txt, raw-*.json, logs).
#   bench/forwarding.sh    # env: SOURCE, ROUNDS (2), WRK_CONNS (64), WRK_THREADS (1), WRK_SECONDS (10),
#                          #      RATES ("5000 20000"), RAW_SECONDS (20), RAW_CONNS (64), ECM_JVM_OPTS,
#                          #      LINKS (unset: the ECM's default, one link per event loop),
#                          #      WARMUP_SECONDS (40: WebFlux's larger code needs about that long under load to be
#                          #      compiled; with 10 s the ECM measured 2-3x below its warmed-up rate)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_needs "${BENCH_BASE_NEEDS[@]}" wrk
ROUNDS=${ROUNDS:-2}; WRK_CONNS=${WRK_CONNS:-64}; WRK_THREADS=${WRK_THREADS:-1}; WRK_SECONDS=${WRK_SECONDS:-10}
RATES=${RATES:-5000 20000}; RAW_SECONDS=${RAW_SECONDS:-20}; RAW_CONNS=${RAW_CONNS:-64}; LINKS=${LINKS:-}
WARMUP_SECONDS=${WARMUP_SECONDS:-40}
SECRET=bench-secret-$$-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")
OUT=${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)-forwarding}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
trap 'stop_all; [[ -n "${KEEP_WORK:-}" ]] || rm -rf "${WORK:-/nonexistent}"' EXIT
trap 'exit 130' INT TERM
build_scratch
build_loadgen
machine_info | tee "$OUT/machine.txt" >&2

UP=$(free_port); HW=$(free_port); WF=$(free_port); ECM_HTTP=$(free_port); ECM_MGMT=$(free_port)
"$JAVA" -Xmx256m -cp "$TOOL_CP" io.megaphone.bench.InstantUpstream "$UP" "$SECRET" >"$OUT/upstream.log" 2>&1 &
PIDS+=($!)
"$JAVA" -Xms64m -Xmx1g -XX:+UseSerialGC -cp "$TOOL_CP" io.megaphone.bench.HelloWorldServer "$HW" >"$OUT/helloworld.log" 2>&1 &
PIDS+=($!)
# the WebFlux endpoint runs with the ECM's JVM options (ECM_JVM_OPTS), so that their ratio compares like with like
# shellcheck disable=SC2086
"$JAVA" ${ECM_JVM_OPTS:--Xms64m -Xmx1g -XX:+UseSerialGC} -cp "$TOOL_CP" io.megaphone.bench.WebFluxHelloWorld "$WF" >"$OUT/webflux.log" 2>&1 &
PIDS+=($!)
sleep 2
start_ecm fwd "$ECM_HTTP" "$ECM_MGMT" "127.0.0.1:$UP" ${LINKS:+--megaphone.link.links-per-node=$LINKS}
wait_ready "$ECM_MGMT" "$LINKS"
log "ECM up ($(curl -s "http://127.0.0.1:$ECM_MGMT/actuator/health" | jq -r .components.links.details.ready) links to the instant upstream); hello world on $HW"
declare -A URL=([helloworld]="http://127.0.0.1:$HW/http-bind" [webflux]="http://127.0.0.1:$WF/http-bind"
    [ecm]="http://127.0.0.1:$ECM_HTTP/http-bind"
    [ecm-get]="http://127.0.0.1:$ECM_HTTP/http-bind")
# wrk_script TARGET: the POST of a small BOSH body, or nothing for the GET
wrk_script() { [[ "$1" == ecm-get ]] || echo "-s $REPO/bench/bosh-post.lua"; }

# warm-up (JIT) of both
for t in helloworld webflux ecm; do wrk -t1 -c64 -d"${WARMUP_SECONDS}s" -s "$REPO/bench/bosh-post.lua" "${URL[$t]}" >/dev/null; done
wrk -t1 -c64 -d10s "${URL[ecm-get]}" >/dev/null # most of its path is warm already

for r in $(seq "$ROUNDS"); do
    for t in helloworld webflux ecm ecm-get; do
        # shellcheck disable=SC2046
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECONDS}s" --latency $(wrk_script "$t") "${URL[$t]}" \
            >"$OUT/wrk-$t-$r.txt" 2>&1
        log "wrk $t round $r: $(grep -E 'Requests/sec' "$OUT/wrk-$t-$r.txt") $(grep -E '^ +99%' "$OUT/wrk-$t-$r.txt" | tr -s ' ')"
    done
done
for RATE in $RATES; do
for r in $(seq "$ROUNDS"); do
    for t in helloworld webflux ecm; do
        "$JAVA" -Xmx512m -XX:+UseSerialGC -jar "$LOADGEN_JAR" --mode raw --url "${URL[$t]}" --rate "$RATE" \
            --connections "$RAW_CONNS" --duration "$RAW_SECONDS" --out "$OUT/raw-$RATE-$t-$r.json" >"$OUT/raw-$RATE-$t-$r.log" 2>&1
        log "raw $RATE/s $t round $r: $(jq -c '{achieved_rate, p50: .latency.intended_to_answer.p50, p99: .latency.intended_to_answer.p99, p999: .latency.intended_to_answer["p99.9"], errors: .error_count}' "$OUT/raw-$RATE-$t-$r.json")"
    done
done
done

python3 - "$OUT" "$ROUNDS" "$RATES" <<'PY' | tee "$OUT/report.md"
import json, re, sys
out, rounds, rates = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def wrk(t, r):
    txt = open(f"{out}/wrk-{t}-{r}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", txt).group(1))
    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, txt, re.M)
        v = float(m.group(1)); return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    sock = re.search(r"Socket errors: (.*)", txt)
    return rps, pct(50), pct(99), (int(errs.group(1)) if errs else 0), (sock.group(1) if sock else "")
print("Ratios are to the bare Reactor Netty hello world, except **ECM / WebFlux** (the ECM to the bare WebFlux functional endpoint).\n")
print("| round | hello world req/s | WebFlux hello world | ratio | ECM (BOSH POST, link) | ratio | **ECM / WebFlux** | ECM GET (no body, no link) | ratio | hello world p50 / p99 (ms) | ECM p50 / p99 (ms) | non-2xx, socket errors |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
ratios = {"webflux": [], "ecm": [], "ecm-get": [], "ecm-webflux": []}
for r in range(1, rounds + 1):
    h, w, e, g = (wrk(t, r) for t in ("helloworld", "webflux", "ecm", "ecm-get"))
    for t, x in (("webflux", w), ("ecm", e), ("ecm-get", g)):
        ratios[t].append(x[0] / h[0])
    ratios["ecm-webflux"].append(e[0] / w[0])
    print(f"| {r} | {h[0]:,.0f} | {w[0]:,.0f} | {w[0]/h[0]:.2f}× | {e[0]:,.0f} | {e[0]/h[0]:.2f}× | **{e[0]/w[0]:.2f}×** | {g[0]:,.0f} | {g[0]/h[0]:.2f}× | {h[1]:.2f} / {h[2]:.2f} | {e[1]:.2f} / {e[2]:.2f} | {h[3]+w[3]+e[3]+g[3]} {h[4]} {w[4]} {e[4]} {g[4]} |")
print()
mean = lambda xs: sum(xs) / len(xs)
xs = ratios["ecm-webflux"]
print(f"**ECM / bare WebFlux functional endpoint: {', '.join(f'{x:.2f}' for x in xs)} (mean {mean(xs):.2f}×; "
      f"budget ≥ 0.9×: {'met' if mean(xs) >= 0.9 else 'NOT met'})**")
for t, what in (("ecm", "ECM"), ("webflux", "WebFlux hello world (the card's shape, nothing added)"),
                ("ecm-get", "ECM GET (no body, no link)")):
    xs = ratios[t]
    print(f"ratio {what} / bare Reactor Netty hello world: {', '.join(f'{x:.2f}' for x in xs)} (mean {mean(xs):.2f})")
print()
for rate in rates:
    print(f"Open loop at {rate} req/s (load generator raw mode, latency from the intended send time, ms):\n")
    print("| round | target | achieved req/s | p50 | p90 | p99 | p99.9 | max | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    added, added_webflux = [], []
    for r in range(1, rounds + 1):
        row = {}
        for t in ("helloworld", "webflux", "ecm"):
            j = json.load(open(f"{out}/raw-{rate}-{t}-{r}.json")); l = j["latency"]["intended_to_answer"]
            if not l.get("count"):  # nothing answered within the recorded window (an overloaded or cold target)
                print(f"| {r} | {t} | {j['achieved_rate']:,.0f} | no answer recorded | | | | | {j['error_count']} |")
                continue
            row[t] = l
            print(f"| {r} | {t} | {j['achieved_rate']:,.0f} | {l['p50']/1000:.2f} | {l['p90']/1000:.2f} | {l['p99']/1000:.2f} | {l['p99.9']/1000:.2f} | {l['max']/1000:.1f} | {j['error_count']} |")
        for t, xs in (("ecm", added), ("webflux", added_webflux)):
            if t in row and "helloworld" in row:
                xs.append((r, tuple((row[t][p] - row['helloworld'][p]) / 1000 for p in ('p50', 'p99', 'p99.9'))))
    for name, xs in (("the ECM", added), ("the WebFlux hello world", added_webflux)):
        print(f"\nadded by {name} at {rate}/s (minus hello world, ms): " + ("; ".join(f"round {i}: p50 {a[0]:+.2f}, p99 {a[1]:+.2f}, p99.9 {a[2]:+.2f}" for i, a in xs) or "no round with both answered"))
    print()
PY
log "report: $OUT/report.md"
