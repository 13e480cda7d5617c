# SPDX-License-Identifier: Apache-2.0
# Shared by the bench/ scripts (sourced).
# bench_needs WHAT...: what a script needs, checked before it starts (see the function).
# build_scratch [PROFILE]: builds the ECM of $SOURCE (head: `git archive HEAD`; worktree: the working tree) plus
# the benchmark classes of src/test/java/io/megaphone/bench and the JMH benchmark(s) in a scratch directory
# $WORK (so concurrent edits and builds in the repository do not interfere), and sets ECM_CP (runtime) and
# TOOL_CP (test classes + test class path). build_loadgen: loadgen/target/megaphone-loadgen.jar of this checkout.
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SOURCE=${SOURCE:-head}
if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=$(command -v java || true); fi

# bench_needs WHAT...: each WHAT is a command (the Debian package of the same name provides it), COMMAND:PACKAGE,
# or /PATH/GLOB:PACKAGE (a file that must exist); "java" is the JDK (JAVA_HOME's, else the one on PATH).
# Installs the missing packages with apt-get as root; otherwise stops before the benchmark starts and prints
# the exact apt-get command.
bench_needs() {
    local what cmd pkg missing=()
    for what in "$@"; do
        cmd=${what%%:*}; pkg=${what#*:}
        if [[ "$cmd" == java ]]; then
            [[ -x "${JAVA:-}" ]] \
                || { echo "$(basename "$0"): no java (JAVA_HOME or PATH); bash scripts/install-deps.sh installs a JDK" >&2; exit 1; }
        elif [[ "$cmd" == /* ]]; then
            compgen -G "$cmd" >/dev/null || missing+=("$pkg")
        else
            command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
        fi
    done
    [[ ${#missing[@]} -gt 0 ]] || return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$(basename "$0"): missing ${missing[*]}; install them first:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "$(basename "$0"): installing ${missing[*]} (apt-get)" >&2
    { DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 \
        || { echo "$(basename "$0"): apt-get install ${missing[*]} failed (output above)" >&2; exit 1; }
}
# What the scripts that build the ECM (build_scratch) and drive it need.
BENCH_BASE_NEEDS=(java git curl jq python3)
# What the scripts that start a private ejabberd (scripts/private-ejabberd.sh) with mod_megaphone need.
BENCH_EJABBERD_NEEDS=(/usr/sbin/ejabberdctl:ejabberd erlc:erlang-dev make ss:iproute2 setpriv:util-linux)

log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "${OUT:-/dev/null}/run.log" >&2; }
die() { log "FAILED: $*"; exit 1; }

PIDS=()
stop_all() {
    local i pid
    for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do
        pid=${PIDS[i]}
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

build_scratch() {
    local profile=${1:-}
    WORK=${WORK:-$(mktemp -d /tmp/megaphone-bench.XXXXXX)}
    log "building ($SOURCE of $REPO) in $WORK"
    if [[ "$SOURCE" == worktree ]]; then
        tar -C "$REPO" -c pom.xml mvnw .mvn src/main | tar -x -C "$WORK"
        COMMIT="$(git -C "$REPO" rev-parse --short HEAD) + working tree"
    else
        local rev=$SOURCE
        [[ "$rev" != head ]] || rev=HEAD
        git -C "$REPO" archive "$rev" pom.xml mvnw .mvn src/main | tar -x -C "$WORK"
        COMMIT=$(git -C "$REPO" rev-parse --short "$rev")
    fi
    mkdir -p "$WORK/src/test/java/io/megaphone/edge" "$WORK/src/test/java/io/megaphone/link"
    cp -r "$REPO/src/test/java/io/megaphone/bench" "$WORK/src/test/java/io/megaphone/"
    cp "$REPO/src/test/java/io/megaphone/edge/BodyStartTagBenchmark.java" "$WORK/src/test/java/io/megaphone/edge/"
    cp "$REPO/src/test/java/io/megaphone/link/DeadlineExpiryBenchmark.java" "$WORK/src/test/java/io/megaphone/link/"
    # the scratch pom needs jmh-core (test scope) for the benchmark classes, whatever SOURCE's pom says
    if ! grep -q jmh-core "$WORK/pom.xml"; then cp "$REPO/pom.xml" "$WORK/pom.xml"; fi
    (cd "$WORK" && ./mvnw -q ${profile:+-P$profile} -DskipTests test-compile \
        && ./mvnw -q ${profile:+-P$profile} dependency:build-classpath -Dmdep.outputFile=cp-test.txt \
        && ./mvnw -q dependency:build-classpath -Dmdep.includeScope=runtime -Dmdep.outputFile=cp-runtime.txt) \
        >"${OUT:-$WORK}/build.log" 2>&1 || die "build failed, see ${OUT:-$WORK}/build.log"
    ECM_CP="$WORK/target/classes:$(cat "$WORK/cp-runtime.txt")"
    TOOL_CP="$WORK/target/test-classes:$WORK/target/classes:$(cat "$WORK/cp-test.txt")"
}

build_loadgen() {
    LOADGEN_JAR="$REPO/loadgen/target/megaphone-loadgen.jar"
    (cd "$REPO" && ./mvnw -q -f loadgen/pom.xml package) >"${OUT:-/tmp}/loadgen-build.log" 2>&1 \
        || die "loadgen build failed"
}

machine_info() {
    echo "commit: ${COMMIT:-$(git -C "$REPO" rev-parse --short HEAD)}"
    echo "date: $(date -Is)"
    echo "nproc: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    free -g | head -2
    "$JAVA" -version 2>&1 | head -1
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# start_ecm NAME HTTP_PORT MGMT_PORT NODES [extra args...] -> ECM pid in $LAST_PID, log $OUT/ecm-NAME.log
start_ecm() {
    local name=$1 http=$2 mgmt=$3 nodes=$4; shift 4
    # shellcheck disable=SC2086
    "$JAVA" ${ECM_JVM_OPTS:--Xms64m -Xmx1g -XX:+UseSerialGC} -cp "$ECM_CP" io.megaphone.MegaphoneApplication \
        --megaphone.link.nodes="$nodes" --megaphone.link.secret="$SECRET" \
        --server.address=127.0.0.1 --server.port="$http" \
        --management.server.address=127.0.0.1 --management.server.port="$mgmt" \
        --megaphone.edge.admission.sessions-per-second=100000 --megaphone.edge.admission.sessions-burst=100000 \
        --megaphone.edge.admission.sessions-per-second-per-client=100000 \
        --megaphone.edge.admission.sessions-burst-per-client=100000 "$@" >"$OUT/ecm-$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_ready MGMT_PORT [LINKS]: until LINKS links are ready (without LINKS: every configured link)
wait_ready() {
    local mgmt=$1 links=${2:-} ready configured
    for _ in $(seq 120); do
        read -r ready configured < <(curl -s --max-time 5 "http://127.0.0.1:$mgmt/actuator/health" \
            | jq -r '"\(.components.links.details.ready // 0) \(.components.links.details.configured // -1)"' 2>/dev/null \
            || echo "0 -1")
        [[ "$ready" == "${links:-$configured}" ]] && return 0
        sleep 1
    done
    die "ECM on management port $mgmt: links ready=$ready, expected $links"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
