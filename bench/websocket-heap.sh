#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ECM heap per open idle WebSocket, side by side in one run with the floors it is measured against: live heap (after
# a full GC) at N = 0, 2000, 5000, 10000 idle XMPP-over-WebSocket connections, the slopes (bytes per connection)
# between the points, and the class histograms. See docs/benchmarks.md, "ECM heap per idle WebSocket".
#
#   bench/websocket-heap.sh          # Temurin 25 with compact object headers (the image's runtime), SerialGC
#
# Targets, one after the other (TARGETS, default "ecm reactor-netty webflux"):
#   ecm            the ECM's /xmpp-websocket, its streams on one version-2 link to StreamingUpstream (a stand-in
#                  for mod_megaphone that opens every stream and answers <open/> as ejabberd does)
#   reactor-netty  WebSocketFloorServer: a bare Reactor Netty WebSocket route, the floor
#   webflux        WebFluxWebSocketServer: a bare WebFlux WebSocketHandler on Boot's server, no link
# Each connection (IdleWebSocketClient): upgrade with subprotocol xmpp, 101, one <open/>, the server's two answers
# (<open/> and <stream:features/>), then idle.
#
# Environment (all optional):
#   JAVA_HOME        the JDK (default /usr/lib/jvm/temurin-25-jdk-amd64 when present, else the java on PATH)
#   SERVER_JVM_OPTS  the measured servers' JVM flags (default: -Xms64m -Xmx2g -XX:+UseSerialGC, plus
#                    -XX:+UseCompactObjectHeaders --enable-native-access=ALL-UNNAMED on Java 24+)
#   TARGETS POINTS   see above; POINTS increase (default "0 2000 5000 10000")
#   RATE             new connections per second while ramping (default 500)
#   HEADERS          the clients' upgrade request headers: browser (default: Chromium's, no cookie) or minimal
#   WARMUP           connections opened, made ready, then closed before the first point (default 1000)
#   SOURCE           the ECM to measure: head (default: `git archive HEAD`, so the numbers belong to a commit), a git
#                    revision, or worktree. The benchmark classes always come from this checkout.
#   HEAP_DUMP=1      also write a heap dump (heap-<target>-<N>.hprof, live objects) at the last point of each target
#                    (for bench/hprof-chains.py)
#   PORT_BASE        loopback ports PORT_BASE .. PORT_BASE+4 (default 15480)
#   OUT              result directory (default: bench/results/<commit>-websocket-heap)
#
# Everything listens and connects on 127.0.0.x. Each client process holds at most 8,000 connections (20,000 open
# files per process) from its own 127.0.<k>.1. All processes are stopped on exit.
set -euo pipefail
if [[ -z "${JAVA_HOME:-}" && -x /usr/lib/jvm/temurin-25-jdk-amd64/bin/java ]]; then
    export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
fi
. "$(dirname "$0")/common.sh" && bench_needs "${BENCH_BASE_NEEDS[@]}" ss:iproute2
if [[ -n "${JAVA_HOME:-}" ]]; then JCMD="$JAVA_HOME/bin/jcmd"; JSTAT="$JAVA_HOME/bin/jstat"
else JCMD=$(command -v jcmd); JSTAT=$(command -v jstat); fi
JV=$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
if [[ -z "${SERVER_JVM_OPTS:-}" ]]; then
    SERVER_JVM_OPTS="-Xms64m -Xmx2g -XX:+UseSerialGC"
    (( JV < 24 )) || SERVER_JVM_OPTS="$SERVER_JVM_OPTS -XX:+UseCompactObjectHeaders --enable-native-access=ALL-UNNAMED"
fi
TARGETS=${TARGETS:-ecm reactor-netty webflux}
POINTS=${POINTS:-0 2000 5000 10000}
RATE=${RATE:-500}
WARMUP=${WARMUP:-1000}
HEADERS=${HEADERS:-browser}
PORT_BASE=${PORT_BASE:-15480}
HTTP_PORT=$PORT_BASE MGMT_PORT=$((PORT_BASE + 1)) UPSTREAM_PORT=$((PORT_BASE + 2))
WS_PATH=/xmpp-websocket
PER_CLIENT=8000
SECRET=bench-secret-$$-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")
REV=$SOURCE; [[ "$REV" != head && "$REV" != worktree ]] || REV=HEAD
OUT=${OUT:-$REPO/bench/results/$(git -C "$REPO" rev-parse --short "$REV")-websocket-heap}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/run.log"

cleanup() { stop_all; [[ -n "${KEEP_WORK:-}" ]] || rm -rf "${WORK:-/nonexistent}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in "$HTTP_PORT" "$MGMT_PORT" "$UPSTREAM_PORT"; do
    ! ss -Hltn "sport = :$port" | grep -q . || die "port $port is in use (set PORT_BASE)"
done

build_scratch
{
    machine_info
    echo "servers' JVM: $SERVER_JVM_OPTS"
    echo "targets: $TARGETS; points: $POINTS; rate: $RATE/s; warm-up: $WARMUP; headers: $HEADERS"
} >"$OUT/machine.txt"
tee -a "$OUT/run.log" <"$OUT/machine.txt"

established() { # server-side sockets on the measured port
    ss -Htn state established "( sport = :$HTTP_PORT )" | wc -l
}

CLIENTS=0
CLIENT_PIDS=()
start_client() { # target count -> one client process, waits until its connections are ready
    local target=$1 count=$2 logf="$OUT/$1-client-$CLIENTS.log" pid
    "$JAVA" -Xmx128m -XX:+UseSerialGC -cp "$TOOL_CP" io.megaphone.bench.IdleWebSocketClient 127.0.0.1 "$HTTP_PORT" \
        "$WS_PATH" "$count" "$RATE" 36000 "127.0.$((CLIENTS + 1))." "$HEADERS" >"$logf" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    CLIENT_PIDS+=("$pid")
    CLIENTS=$((CLIENTS + 1))
    for _ in $(seq $((count / RATE + 150))); do
        grep -q '^ready ' "$logf" && return 0
        grep -q '^NOT READY' "$logf" && die "$(grep '^NOT READY' "$logf"), see $logf"
        kill -0 "$pid" 2>/dev/null || die "client exited early, see $logf"
        sleep 1
    done
    die "client did not get its $count connections ready in time, see $logf"
}
stop_clients() {
    local pid
    for pid in "${CLIENT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    CLIENT_PIDS=()
    for _ in $(seq 60); do (( $(established) == 0 )) && return 0; sleep 1; done
    die "connections still open on port $HTTP_PORT after the clients stopped"
}
open_to() { # target from to -> adds clients until `to` connections are open
    local target=$1 open=$2 to=$3 add
    while (( open < to )); do
        add=$(( to - open < PER_CLIENT ? to - open : PER_CLIENT ))
        start_client "$target" "$add"
        open=$((open + add))
    done
}

start_server() { # target -> SERVER pid
    local target=$1
    case "$target" in
        ecm)
            "$JAVA" -Xmx256m -cp "$TOOL_CP" io.megaphone.bench.StreamingUpstream "$UPSTREAM_PORT" "$SECRET" \
                >"$OUT/ecm-upstream.log" 2>&1 &
            PIDS+=($!)
            # shellcheck disable=SC2086
            ECM_JVM_OPTS="$SERVER_JVM_OPTS" start_ecm ws "$HTTP_PORT" "$MGMT_PORT" "127.0.0.1:$UPSTREAM_PORT" \
                --megaphone.link.links-per-node=1
            SERVER=$LAST_PID
            wait_ready "$MGMT_PORT" 1
            ;;
        reactor-netty|webflux)
            local class=WebSocketFloorServer
            [[ "$target" == reactor-netty ]] || class=WebFluxWebSocketServer
            # shellcheck disable=SC2086
            "$JAVA" $SERVER_JVM_OPTS -cp "$TOOL_CP" "io.megaphone.bench.$class" "$HTTP_PORT" "$WS_PATH" \
                >"$OUT/$target.log" 2>&1 &
            SERVER=$!
            PIDS+=("$SERVER")
            for _ in $(seq 120); do
                ss -Hltn "sport = :$HTTP_PORT" | grep -q . && break
                kill -0 "$SERVER" 2>/dev/null || die "$target exited, see $OUT/$target.log"
                sleep 1
            done
            ;;
        *) die "unknown target $target (expected: ecm, reactor-netty, webflux)" ;;
    esac
    log "$target: pid $SERVER up on 127.0.0.1:$HTTP_PORT"
}

ecm_open_streams() {
    curl -s --max-time 5 "http://127.0.0.1:$MGMT_PORT/actuator/prometheus" \
        | awk '/^megaphone_edge_websocket_open_streams[ {]/ {printf "%d", $NF}'
}

echo "target n heap_histogram_bytes heap_used_bytes rss_bytes instances heap_committed_bytes" >"$OUT/points.txt"
for target in $TARGETS; do
    start_server "$target"
    if (( WARMUP > 0 )); then
        log "$target: warm-up, $WARMUP connections opened, then closed"
        open_to "$target" 0 "$WARMUP"
        stop_clients
    fi
    open=0
    for n in $POINTS; do
        (( n >= open )) || die "POINTS must increase"
        log "$target: $n idle WebSockets"
        open_to "$target" "$open" "$n"
        open=$n
        sleep 3
        got=$(established)
        (( got == n )) || die "$target: $got connections established on port $HTTP_PORT, expected $n"
        if [[ "$target" == ecm ]]; then
            streams=$(ecm_open_streams)
            [[ "$streams" == "$n" ]] || die "ecm: megaphone.edge.websocket.open is ${streams:-?}, expected $n"
        fi
        ! grep -q 'NOT IDLE' "$OUT/$target"-client-*.log 2>/dev/null || die "$target closed connections (client logs)"
        "$JCMD" "$SERVER" GC.run >/dev/null
        "$JCMD" "$SERVER" GC.run >/dev/null
        "$JCMD" "$SERVER" GC.class_histogram >"$OUT/histogram-$target-$n.txt"
        read -r used committed < <("$JSTAT" -gc "$SERVER" | awk 'NR==1 {for (i=1;i<=NF;i++) c[$i]=i}
            NR==2 {printf "%d %d\n", ($c["S0U"]+$c["S1U"]+$c["EU"]+$c["OU"])*1024, ($c["S0C"]+$c["S1C"]+$c["EC"]+$c["OC"])*1024}')
        # the live heap: the histogram's total without the filler arrays the JVM writes into unused heap space
        read -r instances bytes < <(awk '/FillerElement;/ {fi += $2; fb += $3}
            /^Total/ {print $2 - fi, $3 - fb}' "$OUT/histogram-$target-$n.txt")
        rss=$(awk '/^VmRSS/ {print $2 * 1024}' /proc/"$SERVER"/status)
        echo "$target $n $bytes $used $rss $instances $committed" >>"$OUT/points.txt"
        log "$target N=$n: live heap $bytes B, heap used $used B (committed $committed B), RSS $rss B, $instances objects"
    done
    if [[ -n "${HEAP_DUMP:-}" ]]; then
        "$JCMD" "$SERVER" GC.heap_dump "$OUT/heap-$target-$open.hprof" >/dev/null
        log "heap dump: $OUT/heap-$target-$open.hprof"
    fi
    stop_clients
    stop_all
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
python3 "$REPO/bench/websocket-heap-report.py" "$OUT" | tee "$OUT/report.md"
tar -C "$OUT" -cJf "$OUT/histograms.tar.xz" --remove-files $(cd "$OUT" && ls histogram-*.txt)
log "results in $OUT"
