#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fault and abuse drills against the real stack (docs/reliability.md): a private ejabberd with mod_megaphone,
# real ECM processes, real HTTP clients. Runs the JUnit tests tagged `drill` (src/test/java/io/megaphone/drills/)
# at full scale and prints the figures each drill appended to target/drills/results.jsonl.
#
#   bash scripts/drills.sh                 full scale (200 users, 10,000 bad requests, 2,000-session storm, ...)
#   DRILL_SCALE=small bash scripts/drills.sh   the short subset that the normal test run (./mvnw verify) runs too
#   bash scripts/drills.sh -Dtest=LinkFaultDrillTest   extra Maven arguments are passed on
#
# Needs root (private ejabberd, `ss -K`, kill -STOP of ejabberd's VM) on Linux, like scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCALE="${DRILL_SCALE:-full}"
RUN="$(date -u +%Y%m%dT%H%M%SZ)-$SCALE"
[ -x /usr/sbin/ejabberdctl ] || bash scripts/install-deps.sh

echo "== drills ($SCALE), run $RUN on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GB, $(uname -sr)"
start=$SECONDS
# -Dgroups=drill: only the drills; surefire.excludedGroups cleared in case a profile sets it.
./mvnw -B -ntp test -Dgroups=drill -Dsurefire.excludedGroups= -Ddrill.scale="$SCALE" -Ddrill.run="$RUN" \
    -Dsurefire.failIfNoSpecifiedTests=false "$@"
status=$?
echo "== drills took $((SECONDS - start)) s; figures of this run (target/drills/results.jsonl):"
grep -F "\"run\":\"$RUN\"" target/drills/results.jsonl || true
exit $status
