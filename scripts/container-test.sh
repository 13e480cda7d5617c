#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The two images, built and run for real with podman, and a chat through them:
#
#   1. bases made from Debian packages (mmdebstrap; no registry), one per Debian release;
#   2. the ECM image (Dockerfile, on trixie: Java 25) and, per release, the ejabberd + mod_megaphone image
#      (ejabberd/Dockerfile), after mod_megaphone's eunit tests against that release's ejabberd (its "test" target);
#   3. per release, a pod: ejabberd + the ECM, the BOSH and management ports published on 127.0.0.1; two users
#      registered; scripts/bosh-chat.sh through the ECM container; readiness, the Prometheus scrape and the
#      JVM's container sizing and its compact object headers checked from outside;
#   4. (first release) the drain: a request held, SIGTERM to the ECM container; readiness must go down, the held
#      request must get its answer, the container must exit 0.
#
# Pods and containers it starts are removed at the end; images stay (cached layers make the next run fast).
#
#   bash scripts/container-test.sh [RELEASE...]
#
# RELEASE: bookworm (Debian 12, ejabberd 23.01), trixie (13, 24.12), sid (unstable, 26.07); default: all three.
# Needs root (podman as root); installs podman, runc, catatonit, mmdebstrap, netavark and iptables with apt-get if
# missing.
# CONTAINER_TEST_REBUILD_BASES=1 rebuilds the Debian bases (else reused when present).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"
RELEASES=("$@")
[ ${#RELEASES[@]} -gt 0 ] || RELEASES=(bookworm trixie sid)
ECM_IMAGE=localhost/megaphone-ecm:test
DOMAIN=localhost
ECM_MEMORY_MB=768
START=$SECONDS

die() { echo "container-test: FAILED: $*" >&2; exit 1; }
step() { echo "== [$((SECONDS - START)) s] $*"; }

for r in "${RELEASES[@]}"; do
    case "$r" in
        bookworm|trixie|sid) ;;
        *) die "release: $r (expected: bookworm, trixie or sid)" ;;
    esac
done
[ "$(id -u)" = 0 ] || exec sudo -E bash "$0" "$@"

# ---- tools -------------------------------------------------------------------------------------------------
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
# podman only recommends catatonit, and a pod's infra container needs it ("finding pause binary")
command -v catatonit >/dev/null 2>&1 || [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] || missing+=(netavark aardvark-dns)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

WORK="$(mktemp -d /tmp/megaphone-container-test.XXXXXX)"
PODS=()
cleanup() {
    local status=$?
    for pod in "${PODS[@]}"; do
        podman pod rm -f "$pod" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

# podman on this kind of host (docs/operations.md, "Run with containers"): runc (crun fails on a mixed cgroup
# v1/v2 host), cgroupfs, a file events log, and open-file limits the host allows (podman's own default of
# 1,048,576 is refused where the hard limit is lower).
nofile="$(ulimit -Hn)"
[ "$nofile" = unlimited ] && nofile=1048576
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
echo "container-test: $(podman --version), runc $(runc --version | sed -n 's/^runc version //p'), $(mmdebstrap --version)"

size_mb() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1000000}'; }

# ---- bases from Debian packages ----------------------------------------------------------------------------
base_image() {
    local release=$1 image="localhost/debian:$1"
    if [ "${CONTAINER_TEST_REBUILD_BASES:-0}" != 1 ] && podman image exists "$image"; then
        return 0
    fi
    step "base $image: mmdebstrap --variant=minbase $release"
    # Check-Valid-Until off: a mirror snapshot of sid older than its Release file's validity still installs.
    mmdebstrap --quiet --variant=minbase --include=ca-certificates \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        "$release" "$WORK/$release.tar" http://deb.debian.org/debian
    podman import --quiet "$WORK/$release.tar" "$image" >/dev/null
    rm -f "$WORK/$release.tar"
}

build() { # build LOG ARGS... : podman build, its output in LOG, shown when it fails
    local log=$1
    shift
    if ! podman build --pull=never --network host "$@" > "$log" 2>&1; then
        tail -n 60 "$log" >&2
        die "podman build $* (log above)"
    fi
}

# The ECM's base is trixie's: Debian 13 is the first release with OpenJDK 25, the image's runtime.
ECM_BASE=localhost/debian:trixie
for r in $(printf '%s\n' trixie "${RELEASES[@]}" | sort -u); do
    base_image "$r"
done

# ---- the ECM image -----------------------------------------------------------------------------------------
step "ECM image $ECM_IMAGE (Dockerfile on $ECM_BASE)"
ecm_args=(--build-arg "BUILD_IMAGE=$ECM_BASE" --build-arg "RUNTIME_IMAGE=$ECM_BASE")
# The host's Java truststore for Maven's downloads (a TLS-inspecting proxy's CA may be trusted only there),
# and the host's Maven repository as a cache.
if [ -f /etc/ssl/certs/java/cacerts ]; then
    ecm_args+=(-v /etc/ssl/certs/java/cacerts:/run/host-cacerts:ro --build-arg JAVA_TRUSTSTORE=/run/host-cacerts)
fi
if [ -d "$HOME/.m2" ]; then
    ecm_args+=(-v "$HOME/.m2:/root/.m2")
fi
build "$WORK/ecm-build.log" "${ecm_args[@]}" -t "$ECM_IMAGE" -f Dockerfile .

# ---- the ejabberd images, after mod_megaphone's eunit tests against each -----------------------------------
declare -A EJ_IMAGE EJ_VERSION
for r in "${RELEASES[@]}"; do
    # The build stage (ejabberd, erlang-dev, the compiled module) runs the eunit tests in a throwaway container:
    # a cached "--target test" build would not run them again.
    step "mod_megaphone eunit on $r's ejabberd (the build stage of ejabberd/Dockerfile)"
    build "$WORK/ej-test-$r.log" -f ejabberd/Dockerfile --build-arg "BASE_IMAGE=localhost/debian:$r" --target build \
        -t "localhost/megaphone-ejabberd-build:test-$r" .
    if ! podman run --rm --network none -v "$REPO/docs/protocol-vectors.txt:/build/protocol-vectors.txt:ro" \
         "localhost/megaphone-ejabberd-build:test-$r" \
         make -s -C /build/mod_megaphone test MEGAPHONE_VECTORS=/build/protocol-vectors.txt > "$WORK/eunit-$r.log" 2>&1; then
        grep -A 15 -F '*failed*' "$WORK/eunit-$r.log" >&2 || true
        tail -n 20 "$WORK/eunit-$r.log" >&2
        die "mod_megaphone's eunit tests failed on $r's ejabberd"
    fi
    grep -E "tests passed|passed\." "$WORK/eunit-$r.log" | tail -n 1 | sed 's/^ */  /'
    EJ_IMAGE[$r]="localhost/megaphone-ejabberd:test-$r"
    build "$WORK/ej-build-$r.log" -f ejabberd/Dockerfile --build-arg "BASE_IMAGE=localhost/debian:$r" -t "${EJ_IMAGE[$r]}" .
    EJ_VERSION[$r]="$(podman run --rm --entrypoint dpkg-query "${EJ_IMAGE[$r]}" -W -f='${Version}' ejabberd)"
done

echo "Image sizes:"
echo "  $ECM_IMAGE: $(size_mb "$ECM_IMAGE") (base $ECM_BASE $(size_mb "$ECM_BASE"); $(podman run --rm --entrypoint java "$ECM_IMAGE" -version 2>&1 | head -n 1))"
for r in "${RELEASES[@]}"; do
    echo "  ${EJ_IMAGE[$r]}: $(size_mb "${EJ_IMAGE[$r]}") (ejabberd ${EJ_VERSION[$r]})"
done

# ---- run them ----------------------------------------------------------------------------------------------
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

python3 -c 'import secrets; print(secrets.token_hex(32), end="")' > "$WORK/link-secret"
chmod 0444 "$WORK/link-secret"

# wait_for SECONDS WHAT COMMAND...: retries COMMAND every 0.5 s
wait_for() {
    local deadline=$((SECONDS + $1))  # $2 names what is awaited, for the reader
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

readiness_is() { # readiness_is MGMT_PORT CODE
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/actuator/health/readiness")" = "$2" ]
}

running() { [ "$(podman inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

ready_or_exited() { # ready_or_exited MGMT_PORT CONTAINER: stops waiting when the container has exited
    readiness_is "$1" 200 || ! running "$2"
}

metric() { # metric FILE NAME [LABEL="VALUE"...] -> the value of the first sample with these labels, or nothing
    local file=$1 name=$2 lines
    shift 2
    lines="$(grep -E "^${name}[ {]" "$file" || true)"
    for label in "$@"; do
        lines="$(grep -F "$label" <<< "$lines" || true)"
    done
    head -n 1 <<< "$lines" | awk '{ print $NF }'
}

NS="http://jabber.org/protocol/httpbind"

run_release() {
    local r=$1 drain=$2 pod="megaphone-ct-$$-$1" bosh mgmt
    read -r bosh mgmt <<< "$(free_ports 2)"
    local ej="$pod-ejabberd" ecm="$pod-ecm" url="http://127.0.0.1:$bosh/http-bind"
    step "pod $pod: ejabberd ${EJ_VERSION[$r]} + the ECM; BOSH on 127.0.0.1:$bosh, management on 127.0.0.1:$mgmt"
    PODS+=("$pod")
    podman pod create --name "$pod" -p "127.0.0.1:$bosh:5280" -p "127.0.0.1:$mgmt:9090" >/dev/null

    podman run -d --pod "$pod" --name "$ej" -e EJABBERD_DOMAIN="$DOMAIN" \
        -v "$WORK/link-secret:/run/secrets/megaphone-link-secret:ro" "${EJ_IMAGE[$r]}" >/dev/null
    if ! wait_for 60 "ejabberd" podman exec "$ej" ejabberdctl status \
       || ! wait_for 10 "mod_megaphone" sh -c "podman logs $ej 2>&1 | grep -q 'mod_megaphone listening for links'"; then
        podman logs "$ej" 2>&1 | tail -n 40 >&2
        die "ejabberd ($r) did not start in its container"
    fi
    podman exec "$ej" ejabberdctl register alice "$DOMAIN" alice-pw >/dev/null
    podman exec "$ej" ejabberdctl register bob "$DOMAIN" bob-pw >/dev/null
    echo "  ejabberd ${EJ_VERSION[$r]} runs with mod_megaphone; alice and bob registered"

    # The prod profile (JSON logs, secret from a file); a memory limit and one CPU, to check that the JVM sizes
    # itself from them (JAVA_HEAP_PERCENT of the limit, JAVA_ACTIVE_PROCESSORS); the Helm chart's readiness
    # (readinessState and firstLink: ready from the first link on).
    podman run -d --pod "$pod" --name "$ecm" --memory "${ECM_MEMORY_MB}m" \
        -e SPRING_PROFILES_ACTIVE=prod -e MEGAPHONE_LINK_NODES=127.0.0.1:5290 \
        -e MEGAPHONE_LINK_SECRET_FILE=/run/secrets/megaphone-link-secret -e JAVA_ACTIVE_PROCESSORS=1 \
        -e MANAGEMENT_ENDPOINT_HEALTH_GROUP_READINESS_INCLUDE=readinessState,firstLink \
        -v "$WORK/link-secret:/run/secrets/megaphone-link-secret:ro" "$ECM_IMAGE" >/dev/null
    if ! wait_for 90 "readiness" ready_or_exited "$mgmt" "$ecm" || ! readiness_is "$mgmt" 200; then
        podman logs "$ecm" 2>&1 | tail -n 40 >&2
        die "the ECM container did not become ready (http://127.0.0.1:$mgmt/actuator/health/readiness)"
    fi
    echo "  readiness from outside: $(curl -s "http://127.0.0.1:$mgmt/actuator/health/readiness")"

    if ! BOSH_CHAT_LABEL=container bash scripts/bosh-chat.sh "$url" "$DOMAIN" alice alice-pw bob bob-pw; then
        podman logs "$ecm" 2>&1 | tail -n 20 >&2
        die "the BOSH chat through the containers failed ($r)"
    fi

    curl -sf "http://127.0.0.1:$mgmt/actuator/prometheus" > "$WORK/scrape-$r.txt" \
        || die "no Prometheus scrape at http://127.0.0.1:$mgmt/actuator/prometheus"
    local links answered heap cpus
    links="$(grep -c '^megaphone_link_up{.*} 1\.0$' "$WORK/scrape-$r.txt" || true)"
    answered="$(metric "$WORK/scrape-$r.txt" megaphone_edge_requests_total 'outcome="answered"')"
    heap="$(metric "$WORK/scrape-$r.txt" jvm_memory_max_bytes 'area="heap"' 'id="G1 Old Gen"')"
    cpus="$(metric "$WORK/scrape-$r.txt" system_cpu_count)"
    [ "$links" -ge 1 ] || die "the scrape shows no link up"
    python3 -c "import sys; sys.exit(0 if float('${answered:-0}') >= 10 else 1)" \
        || die "megaphone_edge_requests_total{outcome=\"answered\"} is ${answered:-missing} after a chat (expected: >= 10)"
    # The heap is JAVA_HEAP_PERCENT (60) of the container's limit: between 50 % and 62 % of it.
    python3 -c "import sys; h = float('${heap:-0}') / ($ECM_MEMORY_MB * 1048576); sys.exit(0 if 0.50 <= h <= 0.62 else 1)" \
        || die "heap max ${heap:-missing} B is not about 60 % of the ${ECM_MEMORY_MB} MiB container limit"
    [ "${cpus:-}" = "1.0" ] || die "system_cpu_count is ${cpus:-missing} (expected: 1.0 from JAVA_ACTIVE_PROCESSORS=1)"
    # The image's JVM: Java 25 with compact object headers (the Dockerfile's entrypoint).
    podman exec "$ecm" sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " < "$f"; echo; done' \
        | grep -q -- '-XX:+UseCompactObjectHeaders' \
        || die "the ECM container's java runs without -XX:+UseCompactObjectHeaders"
    echo "  the ECM's JVM: $(podman exec "$ecm" java -version 2>&1 | head -n 1), -XX:+UseCompactObjectHeaders"
    echo "  Prometheus scrape from outside: $links links up, ${answered%.0} requests answered; heap max $(python3 -c "print(round(float('$heap') / 1048576))") MiB of a ${ECM_MEMORY_MB} MiB limit; $cpus CPU"

    if [ "$drain" = 1 ]; then
        ejabberd_restart_check "$url" "$mgmt" "$ej"
        drain_check "$url" "$mgmt" "$ecm"
    fi
    podman pod rm -f "$pod" >/dev/null
}

links_up() { # links_up MGMT_PORT -> the number of links up in the scrape
    curl -s "http://127.0.0.1:$1/actuator/prometheus" | grep -c '^megaphone_link_up{.*} 1\.0$' || true
}
links_up_is() { [ "$(links_up "$1")" = "$2" ]; }
links_up_at_least() { [ "$(links_up "$1")" -ge "$2" ]; }

# The shared ejabberd stops: the ECM must stay ready (the chart's readiness) and answer BOSH with a retryable 503
# + Retry-After; when ejabberd is back, the links come back and the ECM serves again.
ejabberd_restart_check() {
    local url=$1 mgmt=$2 ej=$3 code retry
    podman stop --time 20 "$ej" >/dev/null
    wait_for 30 "links down" links_up_is "$mgmt" 0 \
        || die "ejabberd stopped, but the ECM still shows links up"
    readiness_is "$mgmt" 200 || die "ejabberd stopped: the ECM's readiness went down (expected: it stays ready from the first link on)"
    code="$(curl -s -D "$WORK/nolink.headers" -o "$WORK/nolink.body" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
        --data "<body rid='3000' to='$DOMAIN' wait='10' hold='1' ver='1.6' xmlns='$NS' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>" "$url")"
    retry="$(grep -i '^retry-after:' "$WORK/nolink.headers" | tr -d '\r' | cut -d' ' -f2)"
    [ "$code" = 503 ] && [ -n "$retry" ] \
        || die "ejabberd stopped: a session creation got HTTP $code, Retry-After '${retry}' (expected: 503 with Retry-After): $(cat "$WORK/nolink.body")"
    echo "  ejabberd stopped: ECM readiness still 200; a BOSH request gets $code, Retry-After: $retry, body $(head -c 120 "$WORK/nolink.body")"
    podman start "$ej" >/dev/null
    wait_for 60 "links back" links_up_at_least "$mgmt" 1 \
        || die "ejabberd restarted, but no link came back within 60 s"
    echo "  ejabberd restarted: $(links_up "$mgmt") links up again"
}

# A request held by ejabberd (an empty poll of a fresh session, wait 10 s), then SIGTERM to the ECM container.
drain_check() {
    local url=$1 mgmt=$2 ecm=$3 created sid held_pid t0 ready_down="" code exit_code
    created="$(curl -s -H 'Content-Type: text/xml; charset=utf-8' "$url" --data \
        "<body rid='2000' to='$DOMAIN' wait='10' hold='1' ver='1.6' xmlns='$NS' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")"
    sid="$( (grep -o "sid='[^']*'" <<< "$created" || true) | head -n 1 | cut -d"'" -f2)"
    [ -n "$sid" ] || die "drain: no session created: $created"
    curl -s -D "$WORK/held.headers" -o "$WORK/held.body" -w '%{http_code} %{time_total}' \
        -H 'Content-Type: text/xml; charset=utf-8' --data "<body rid='2001' sid='$sid' xmlns='$NS'/>" "$url" \
        > "$WORK/held.result" &
    held_pid=$!
    wait_for 5 "held" sh -c "curl -s http://127.0.0.1:$mgmt/actuator/prometheus | grep -q '^megaphone_edge_held_requests 1\.0$'" \
        || die "drain: the poll is not held by the ECM"
    t0=$SECONDS
    podman kill --signal TERM "$ecm" >/dev/null
    if wait_for 5 "readiness down" readiness_is "$mgmt" 503; then
        ready_down="readiness 503 within $((SECONDS - t0)) s"
    else
        die "drain: readiness did not go down within 5 s of SIGTERM"
    fi
    wait "$held_pid" || die "drain: the held request failed: $(cat "$WORK/held.result" 2>/dev/null)"
    code="$(cut -d' ' -f1 "$WORK/held.result")"
    [ "$code" = 200 ] || die "drain: the held request got HTTP $code: $(cat "$WORK/held.body")"
    grep -q "<body" "$WORK/held.body" || die "drain: the held request's answer is not a BOSH body: $(cat "$WORK/held.body")"
    exit_code="$(timeout 100 podman wait "$ecm")" || die "drain: the ECM container did not exit within 100 s"
    echo "  drain: $ready_down; the held request answered $(cat "$WORK/held.result" | awk '{printf "%s after %.1f s", $1, $2}') ($(grep -i '^connection:' "$WORK/held.headers" | tr -d '\r'))"
    echo "  ECM container exit code after SIGTERM: $exit_code ($((SECONDS - t0)) s after the signal)"
    [ "$exit_code" = 0 ] || { podman logs "$ecm" 2>&1 | tail -n 20 >&2; die "drain: exit code $exit_code (expected: 0)"; }
}

first=1
for r in "${RELEASES[@]}"; do
    run_release "$r" "$first"
    first=0
done

step "container test passed: ${RELEASES[*]} (ejabberd $(for r in "${RELEASES[@]}"; do printf '%s ' "${EJ_VERSION[$r]}"; done| sed 's/ $//'))"
