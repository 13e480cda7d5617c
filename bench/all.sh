#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every benchmark of docs/benchmarks.md on the current commit, one after the other (never two at once: the machine
# has 2 cores), each with the command and parameters the document gives, each into bench/results/<commit>-<name>/.
# About 100 minutes here. Run it on an otherwise idle machine; the figures of a run belong together.
#
#   bench/all.sh                  # everything
#   bench/all.sh held forwarding  # some: held held25 websocket-heap forwarding cpu ejabberd-memory ejabberd-memory-ws
#                                 #       pipeline open-files-100k websocket-50k
#
# env: JAVA25_HOME (/usr/lib/jvm/temurin-25-jdk-amd64; "held25" and "websocket-heap" are skipped without it), N (100000, open-files)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
# everything the benchmarks below need, before the first starts (each one checks again)
. "$REPO/bench/common.sh" && bench_needs "${BENCH_BASE_NEEDS[@]}" "${BENCH_EJABBERD_NEEDS[@]}" wrk
COMMIT=$(git -C "$REPO" rev-parse --short HEAD)
# every script builds this commit's ECM (git archive), even if HEAD moves while they run
export SOURCE=${SOURCE:-$COMMIT}
RESULTS=$REPO/bench/results
JAVA25_HOME=${JAVA25_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
N=${N:-100000}
WHICH=("$@")
[[ ${#WHICH[@]} -gt 0 ]] || WHICH=(held held25 websocket-heap forwarding cpu ejabberd-memory ejabberd-memory-ws pipeline
    open-files-100k websocket-50k)
[[ -z "$(git -C "$REPO" status --porcelain -- src/main ejabberd pom.xml)" ]] \
    || echo "note: uncommitted changes in src/main, ejabberd or pom.xml: the ECM measured is HEAD ($COMMIT), without them" >&2

run() { # NAME COMMAND...
    local name=$1; shift
    echo "[$(date +%H:%M:%S)] $name: $*" >&2
    local t=$SECONDS
    if "$@"; then echo "[$(date +%H:%M:%S)] $name done in $((SECONDS - t)) s" >&2
    else echo "[$(date +%H:%M:%S)] $name FAILED (exit $?) after $((SECONDS - t)) s" >&2; fi
}
for w in "${WHICH[@]}"; do
    case $w in
        held) run held env OUT="$RESULTS/$COMMIT-java17-serial" "$REPO/bench/held-requests.sh" ;;
        held25)
            if [[ -x "$JAVA25_HOME/bin/java" ]]; then
                run held25 env JAVA_HOME="$JAVA25_HOME" ECM_EXTRA_OPTS=-XX:+UseCompactObjectHeaders \
                    OUT="$RESULTS/$COMMIT-java25-coh-serial" "$REPO/bench/held-requests.sh"
            else echo "held25: no Java 25 at $JAVA25_HOME, skipped" >&2; fi ;;
        websocket-heap)
            if [[ -x "$JAVA25_HOME/bin/java" ]]; then
                run websocket-heap env JAVA_HOME="$JAVA25_HOME" OUT="$RESULTS/$COMMIT-websocket-heap" \
                    "$REPO/bench/websocket-heap.sh"
            else echo "websocket-heap: no Java 25 at $JAVA25_HOME, skipped" >&2; fi ;;
        forwarding) run forwarding env ROUNDS=3 OUT="$RESULTS/$COMMIT-forwarding" "$REPO/bench/forwarding.sh" ;;
        cpu) run cpu env OUT="$RESULTS/$COMMIT-cpu-per-request" "$REPO/bench/cpu-per-request.sh" ;;
        ejabberd-memory) run ejabberd-memory env OUT="$RESULTS/$COMMIT-ejabberd-memory" "$REPO/bench/ejabberd-memory.sh" ;;
        ejabberd-memory-ws)
            run ejabberd-memory-ws env POINTS="2000 20000" DIRECT_MAX=19800 ECMS=2 RAMP=100 \
                OUT="$RESULTS/$COMMIT-ejabberd-memory-ws-20000" "$REPO/bench/ejabberd-memory-ws.sh" ;;
        pipeline) run pipeline env OUT="$RESULTS/$COMMIT-pipeline" "$REPO/bench/pipeline.sh" ;;
        open-files-100k)
            run open-files env N="$N" ECMS=6 LOADGENS=6 RAMP=100 WARMUP_USERS=2000 OUT="$RESULTS/$COMMIT-open-files-$N" \
                "$REPO/bench/open-files.sh" ;;
        websocket-50k) run websocket-50k env OUT="$RESULTS/$COMMIT-websocket-50000" "$REPO/bench/websocket-50k.sh" ;;
        *) echo "unknown benchmark: $w" >&2; exit 2 ;;
    esac
done
