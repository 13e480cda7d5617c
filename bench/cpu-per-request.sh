#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CPU time per request of running processes, under a wrk load (docs/benchmarks.md, "Forwarding throughput"):
# the processes' user + system CPU (from /proc/<pid>/stat) over one wrk run, divided by the requests wrk completed.
# Less sensitive to a shared machine's noise than requests/s, since time spent waiting for a core is not counted.
#
#   bench/cpu-per-request.sh URL PID...      # env: SECONDS_PER_RUN (10), CONNS (64)
#
# e.g. an ECM and the stand-in behind it: bench/cpu-per-request.sh http://127.0.0.1:15280/http-bind 1234 1240
set -euo pipefail
URL=$1; shift
[[ $# -gt 0 ]] || { echo "usage: $0 URL PID..." >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
tick=$(getconf CLK_TCK)
cpu() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
before=$(cpu "$@")
out=$(wrk -t1 -c"${CONNS:-64}" -d"${SECONDS_PER_RUN:-10}s" -s "$REPO/bench/bosh-post.lua" "$URL")
after=$(cpu "$@")
requests=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
python3 -c "print(f'requests={$requests} req/s={$rps} cpu_ms={($after-$before)*1000/$tick:.0f} us_per_request={($after-$before)*1e6/$tick/$requests:.1f}')"
