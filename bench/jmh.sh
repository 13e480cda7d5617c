#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# JMH micro-benchmarks of the hot path: the link frame codec (io.megaphone.bench.FrameCodecBenchmark), the
# BOSH start-tag parser (io.megaphone.edge.BodyStartTagBenchmark) and a link's expiry tick at 1M held requests
# (io.megaphone.link.DeadlineExpiryBenchmark). Writes bench/results/<date>-jmh/.
#   bench/jmh.sh                     # SOURCE=head|worktree|<rev>, JMH_ARGS (default: all, 1 fork),
#                                    # BENCHMARKS (a regex; default: the three)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_needs java git
OUT=${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)-jmh}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
trap 'stop_all; [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"' EXIT
build_scratch jmh
machine_info >"$OUT/machine.txt"
# shellcheck disable=SC2086
"$JAVA" -cp "$TOOL_CP" org.openjdk.jmh.Main ${JMH_ARGS:-} -rf json -rff "$OUT/jmh.json" \
    "${BENCHMARKS:-io.megaphone.bench.FrameCodecBenchmark|io.megaphone.edge.BodyStartTagBenchmark|io.megaphone.link.DeadlineExpiryBenchmark}" 2>&1 | tee "$OUT/jmh.txt" | grep -E '^(Benchmark +|i\.m\.|[A-Z][A-Za-z]+Benchmark\.)'
log "results in $OUT"
