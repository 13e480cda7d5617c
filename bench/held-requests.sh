#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ECM memory per held BOSH request: live heap (after a full GC) and RSS at N = 0, 2000, 8000, 16000 held
# requests, and the slopes (bytes per held request) between the points. See docs/benchmarks.md.
#
#   bench/held-requests.sh                                   # Java 17 (default java), SerialGC
#   JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 ECM_EXTRA_OPTS=-XX:+UseCompactObjectHeaders bench/held-requests.sh
#
# Environment (all optional):
#   JAVA_HOME        the JDK that builds and runs everything (default: the java on PATH)
#   ECM_HEAP_OPTS    heap and GC of the ECM (default: -Xms64m -Xmx2g -XX:+UseSerialGC)
#   ECM_EXTRA_OPTS   more ECM JVM flags (e.g. -XX:+UseCompactObjectHeaders on Java 24+)
#   POINTS           held-request counts to measure, increasing (default: "0 2000 8000 16000")
#   RATE             new requests per second while ramping (default: 1000)
#   WARMUP           requests held then released before the first point, to load classes and JIT (default: 2000)
#   SOURCE           the ECM to measure: head (default) builds `git archive HEAD`, so the numbers belong to a
#                    commit; any other git revision (e.g. ee817ab) the same way; worktree: the working tree as
#                    it is now. The benchmark classes always come from this checkout.
#   UPSTREAM_PORT HTTP_PORT MGMT_PORT   loopback ports (default 15290 15280 19090)
#   NMT=1            run the ECM with -XX:NativeMemoryTracking=summary and save VM.native_memory at each point
#   HEAP_DUMP=1      also write a heap dump (heap-<N>.hprof, live objects) at the last point
#   OUT              result directory (default: bench/results/<date>-<java version>)
#
# Everything listens and connects on 127.0.0.x only. Each client process holds at most 8,000 connections
# (the limit is 20,000 open files per process) from its own 127.0.<k>.x source addresses. All processes are
# stopped on exit.
set -euo pipefail
. "$(dirname "$0")/common.sh" && bench_needs "${BENCH_BASE_NEEDS[@]}" ss:iproute2

REPO=$(cd "$(dirname "$0")/.." && pwd)
if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; JCMD="$JAVA_HOME/bin/jcmd"; JSTAT="$JAVA_HOME/bin/jstat"
else JAVA=$(command -v java); JCMD=$(command -v jcmd); JSTAT=$(command -v jstat); fi
ECM_HEAP_OPTS=${ECM_HEAP_OPTS:--Xms64m -Xmx2g -XX:+UseSerialGC}
ECM_EXTRA_OPTS=${ECM_EXTRA_OPTS:-}
[[ -z "${NMT:-}" ]] || ECM_EXTRA_OPTS="$ECM_EXTRA_OPTS -XX:NativeMemoryTracking=summary"
POINTS=${POINTS:-0 2000 8000 16000}
RATE=${RATE:-1000}
WARMUP=${WARMUP:-2000}
SOURCE=${SOURCE:-head}
UPSTREAM_PORT=${UPSTREAM_PORT:-15290}
HTTP_PORT=${HTTP_PORT:-15280}
MGMT_PORT=${MGMT_PORT:-19090}
SECRET=bench-secret-$$-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")
PER_CLIENT=8000
JV=$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
OUT=${OUT:-$REPO/bench/results/$(date +%Y%m%d-%H%M%S)-java$JV}
WORK=$(mktemp -d /tmp/megaphone-bench.XXXXXX)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

PIDS=()
cleanup() {
    local i pid
    for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do  # clients first, then the ECM, the upstream last
        pid=${PIDS[i]}
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "FAILED at line $LINENO: $BASH_COMMAND"' ERR

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
die() { log "FAILED: $*"; exit 1; }

for port in "$UPSTREAM_PORT" "$HTTP_PORT" "$MGMT_PORT"; do
    ! ss -Hltn "sport = :$port" | grep -q . || die "port $port is in use (set UPSTREAM_PORT/HTTP_PORT/MGMT_PORT)"
done

# ---- build (in a scratch copy, so concurrent edits and builds in the repository do not interfere) ----
log "building ($SOURCE of $REPO) in $WORK"
# The ECM (pom.xml, src/main) comes from SOURCE; the benchmark's own classes (src/test/java/io/megaphone/bench)
# from this checkout, and no other test is compiled.
if [[ "$SOURCE" == worktree ]]; then
    tar -C "$REPO" -c pom.xml mvnw .mvn src/main | tar -x -C "$WORK"
    COMMIT="$(git -C "$REPO" rev-parse --short HEAD) + working tree"
else
    [[ "$SOURCE" != head ]] || SOURCE=HEAD
    git -C "$REPO" archive "$SOURCE" pom.xml mvnw .mvn src/main | tar -x -C "$WORK"
    COMMIT=$(git -C "$REPO" rev-parse --short "$SOURCE")
fi
mkdir -p "$WORK/src/test/java/io/megaphone"
cp -r "$REPO/src/test/java/io/megaphone/bench" "$WORK/src/test/java/io/megaphone/"
(cd "$WORK" && ./mvnw -q -DskipTests test-compile \
    && ./mvnw -q dependency:build-classpath -Dmdep.outputFile=cp-test.txt \
    && ./mvnw -q dependency:build-classpath -Dmdep.includeScope=runtime -Dmdep.outputFile=cp-runtime.txt) \
    >"$OUT/build.log" 2>&1 || die "build failed, see $OUT/build.log"
ECM_CP="$WORK/target/classes:$(cat "$WORK/cp-runtime.txt")"
TOOL_CP="$WORK/target/test-classes:$WORK/target/classes:$(cat "$WORK/cp-test.txt")"

{
    echo "commit: $COMMIT"
    echo "date: $(date -Is)"
    echo "nproc: $(nproc)"
    free -g
    "$JAVA" -version 2>&1
    echo "ECM JVM: $ECM_HEAP_OPTS $ECM_EXTRA_OPTS"
    echo "points: $POINTS; rate: $RATE/s; warm-up: $WARMUP"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" | tee -a "$OUT/run.log"

# ---- processes ----
"$JAVA" -Xmx256m -cp "$TOOL_CP" io.megaphone.bench.HoldingUpstream "$UPSTREAM_PORT" "$SECRET" >"$OUT/upstream.log" 2>&1 &
UPSTREAM=$!
PIDS+=($UPSTREAM)
# shellcheck disable=SC2086
"$JAVA" $ECM_HEAP_OPTS $ECM_EXTRA_OPTS -cp "$ECM_CP" io.megaphone.MegaphoneApplication \
    --megaphone.link.nodes=127.0.0.1:$UPSTREAM_PORT --megaphone.link.secret=$SECRET \
    --megaphone.link.links-per-node=1 --server.address=127.0.0.1 --server.port=$HTTP_PORT \
    --management.server.address=127.0.0.1 --management.server.port=$MGMT_PORT >"$OUT/ecm.log" 2>&1 &
ECM=$!
PIDS+=($ECM)

health() { curl -s --max-time 5 "http://127.0.0.1:$MGMT_PORT/actuator/health" || true; }
inflight() { health | jq -r '.components.links.details.inflight // empty' 2>/dev/null || true; }

for _ in $(seq 120); do
    [[ "$(health | jq -r '.components.links.details.ready // 0' 2>/dev/null)" == 1 ]] && break
    kill -0 "$ECM" 2>/dev/null || die "the ECM exited, see $OUT/ecm.log"
    sleep 1
done
[[ "$(health | jq -r '.components.links.details.ready // 0')" == 1 ]] || die "the link did not come up, see $OUT/ecm.log"
log "ECM pid $ECM up, link ready"

CLIENTS=0
NEXT_RID=1
start_client() { # count -> starts one client process, waits for it to have sent everything
    local count=$1 logf="$OUT/client-$CLIENTS.log"
    "$JAVA" -Xmx128m -XX:+UseSerialGC -cp "$TOOL_CP" io.megaphone.bench.HeldRequestClient 127.0.0.1 "$HTTP_PORT" \
        "$count" "$RATE" 36000 "127.0.$((CLIENTS + 1))." "$NEXT_RID" >"$logf" 2>&1 &
    PIDS+=($!)
    LAST_CLIENT=$!
    CLIENTS=$((CLIENTS + 1))
    NEXT_RID=$((NEXT_RID + count))
    for _ in $(seq $((count / RATE + 120))); do
        grep -q '^sent ' "$logf" && return 0
        kill -0 "$LAST_CLIENT" 2>/dev/null || die "client exited early, see $logf"
        sleep 1
    done
    die "client did not send its $count requests in time, see $logf"
}
wait_inflight() { # n
    local n=$1 got=""
    for _ in $(seq 120); do
        got=$(inflight)
        [[ "$got" == "$n" ]] && return 0
        sleep 1
    done
    die "ECM shows inflight=$got, expected $n"
}
hold() { # target count -> adds clients until the ECM holds that many
    local target=$1 held=$2 add
    while (( held < target )); do
        add=$(( target - held < PER_CLIENT ? target - held : PER_CLIENT ))
        start_client "$add"
        held=$((held + add))
    done
    wait_inflight "$target"
}

if (( WARMUP > 0 )); then
    log "warm-up: holding $WARMUP requests, then closing them"
    hold "$WARMUP" 0
    kill "$LAST_CLIENT"; wait "$LAST_CLIENT" 2>/dev/null || true
    wait_inflight 0
fi

jstat_heap() { # "used committed" bytes from jstat -gc: S0U+S1U+EU+OU and S0C+S1C+EC+OC (reported in KB)
    "$JSTAT" -gc "$ECM" | awk 'NR==1 {for (i=1;i<=NF;i++) c[$i]=i}
        NR==2 {printf "%d %d\n", ($c["S0U"]+$c["S1U"]+$c["EU"]+$c["OU"])*1024, ($c["S0C"]+$c["S1C"]+$c["EC"]+$c["OC"])*1024}'
}
echo "n heap_histogram_bytes heap_used_bytes rss_bytes rss_anon_bytes instances heap_committed_bytes" >"$OUT/points.txt"
HELD=0
for n in $POINTS; do
    (( n >= HELD )) || die "POINTS must increase"
    log "holding $n requests"
    hold "$n" "$HELD"
    HELD=$n
    sleep 5
    wait_inflight "$n"
    if grep -q 'NOT HELD' "$OUT"/client-*.log 2>/dev/null; then die "the ECM answered some requests (see client logs)"; fi
    "$JCMD" "$ECM" GC.run >/dev/null
    "$JCMD" "$ECM" GC.run >/dev/null
    "$JCMD" "$ECM" GC.class_histogram >"$OUT/histogram-$n.txt"
    "$JCMD" "$ECM" GC.heap_info >"$OUT/heap-info-$n.txt"
    [[ -z "${NMT:-}" ]] || "$JCMD" "$ECM" VM.native_memory summary >"$OUT/nmt-$n.txt"
    read -r used committed < <(jstat_heap)
    read -r instances bytes < <(awk '/^Total/ {print $2, $3}' "$OUT/histogram-$n.txt")
    rss=$(awk '/^VmRSS/ {print $2 * 1024}' /proc/"$ECM"/status)
    anon=$(awk '/^RssAnon/ {print $2 * 1024}' /proc/"$ECM"/status)
    echo "$n $bytes $used $rss $anon $instances $committed" >>"$OUT/points.txt"
    log "N=$n: live heap (histogram) $bytes B, heap used $used B (committed $committed B), RSS $rss B (anon $anon B), $instances objects"
done

if [[ -n "${HEAP_DUMP:-}" ]]; then
    "$JCMD" "$ECM" GC.heap_dump "$OUT/heap-$HELD.hprof" >/dev/null && log "heap dump: $OUT/heap-$HELD.hprof"
fi
python3 "$REPO/bench/held-requests-report.py" "$OUT" | tee "$OUT/report.md"
log "results in $OUT"
