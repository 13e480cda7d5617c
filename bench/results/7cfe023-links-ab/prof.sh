#!/usr/bin/env bash
# ad-hoc: JFR CPU profile of the ECM under wrk with the instant upstream
set -euo pipefail
REPO=/work/main SOURCE=${SOURCE:-worktree}
. /work/main/bench/common.sh
OUT=/tmp/prof/out-$(date +%H%M%S); mkdir -p $OUT
SECRET=bench-secret-0123456789abcdef0123456789abcdef
trap 'stop_all' EXIT
WORK=${WORK:-} build_scratch
UP=$(free_port); ECM_HTTP=$(free_port); ECM_MGMT=$(free_port)
"$JAVA" -Xmx256m -cp "$TOOL_CP" io.megaphone.bench.InstantUpstream "$UP" "$SECRET" >"$OUT/upstream.log" 2>&1 &
UPPID=$!; PIDS+=($UPPID)
sleep 2
ECM_JVM_OPTS="-Xms64m -Xmx1g -XX:+UseSerialGC ${EXTRA_OPTS:-}" start_ecm fwd "$ECM_HTTP" "$ECM_MGMT" "127.0.0.1:$UP" ${LINKS:+--megaphone.link.links-per-node=$LINKS} "$@"
ECMPID=$LAST_PID
wait_ready "$ECM_MGMT" "${LINKS:-}"
wrk -t1 -c64 -d${WARM:-40}s -s /work/main/bench/bosh-post.lua http://127.0.0.1:$ECM_HTTP/http-bind | grep Requests/sec
if [[ -n "${JFR:-}" ]]; then jcmd $ECMPID JFR.start name=p settings=profile filename=$OUT/ecm.jfr >/dev/null; fi
SECONDS_PER_RUN=20 /work/main/bench/cpu-per-request.sh http://127.0.0.1:$ECM_HTTP/http-bind $ECMPID
SECONDS_PER_RUN=20 /work/main/bench/cpu-per-request.sh http://127.0.0.1:$ECM_HTTP/http-bind $UPPID
if [[ -n "${JFR:-}" ]]; then jcmd $ECMPID JFR.stop name=p >/dev/null; echo $OUT/ecm.jfr; fi
