#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The two images, built and run for real with podman, and a chat through them:
#
#   1. bases made from Debian packages (mmdebstrap; no registry), one per Debian release;
#   2. the ECM image (Dockerfile, on trixie: Java 25) and, per release, the ejabberd + mod_megaphone image (ejabberd/Dockerfile),
#      after mod_megaphone's eunit tests against that release's ejabberd (its "test" target);
#   3. per release, on a podman network of its own: a two-node ejabberd cluster from the image, named as a
#      StatefulSet names its pods (ejabberd-0 the seed, ejabberd-1 joins it), with the cookie, the link secret and
#      the admin's password from files, and an operator's file in /etc/ejabberd/conf.d; the ECM in front, finding
#      both nodes through one DNS name (both containers carry the alias ejabberd-link, as the chart's headless
#      Service of the link port; the Service lists ready pods only, the alias is there from the start);
#      alice registered on node 0, bob on node 1; a chat across the nodes (alice through an ECM linked to node 0
#      only, bob through one linked to node 1 only), over BOSH, then with alice over XMPP over WebSocket (Strophe.js
#      in Node on /xmpp-websocket; ejabberd must list her session as websocket), and one through the discovering
#      ECM; readiness, the Prometheus scrape and the JVM's container sizing and its compact object headers checked
#      from outside;
#   4. (first release) both nodes stopped and started again (node 1 must stay in the cluster without a new join),
#      then the drain: a request held, SIGTERM to the ECM container; readiness must go down, the held request must
#      get its answer, the container must exit 0.
#
# Networks and containers it starts are removed at the end; images stay (cached layers make the next run fast).
#
#   bash scripts/container-test.sh [RELEASE...]
#
# RELEASE: bookworm (Debian 12, ejabberd 23.01), trixie (13, 24.12), sid (unstable, 26.07); default: all three.
# Needs root (podman as root); installs podman, runc, catatonit, mmdebstrap, netavark, aardvark-dns, iptables, curl,
# python3 and nodejs with apt-get if missing, and clients/node_modules with npm ci.
# CONTAINER_TEST_REBUILD_BASES=1 rebuilds the Debian bases (else reused when present); CONTAINER_TEST_TAG names the
# images' tag (default: test).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"
RELEASES=("$@")
[ ${#RELEASES[@]} -gt 0 ] || RELEASES=(bookworm trixie sid)
TAG="${CONTAINER_TEST_TAG:-test}"
ECM_IMAGE="localhost/megaphone-ecm:$TAG"
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
# podman only recommends catatonit, and pods' infra containers need it ("finding pause binary"; kept for them)
command -v catatonit >/dev/null 2>&1 || [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The WebSocket chat's client: Strophe.js in Node (clients/, installed with npm ci when missing).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
[ -d clients/node_modules/strophe.js ] || command -v npm >/dev/null 2>&1 || missing+=(npm)
# The test's network: netavark, and aardvark-dns for the names (the ejabberd-link alias) on it.
[ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] || missing+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || [ -x /usr/libexec/podman/aardvark-dns ] || missing+=(aardvark-dns)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d clients/node_modules/strophe.js ]; then
    step "npm ci in clients/"
    # as the repository's owner, so that the files it adds keep that owner
    runuser -u "$(stat -c %U "$REPO")" -- npm ci --prefix clients --no-audit --no-fund >/dev/null
fi

WORK="$(mktemp -d /tmp/megaphone-container-test.XXXXXX)"
CONTAINERS=()
NETWORKS=()
cleanup() {
    local status=$?
    for c in "${CONTAINERS[@]}"; do
        podman rm -f "$c" >/dev/null 2>&1 || true
    done
    for n in "${NETWORKS[@]}"; do
        podman network rm -f "$n" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

# podman on this kind of host (docs/operations.md, "Run with containers"): runc (crun fails on a mixed cgroup
# v1/v2 host), cgroupfs, a file events log, netavark (CNI would need another plugin for names), and open-file limits the host allows (podman's own default of
# 1,048,576 is refused where the hard limit is lower).
nofile="$(ulimit -Hn)"
[ "$nofile" = unlimited ] && nofile=1048576
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[network]
network_backend = "netavark"
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
        -t "localhost/megaphone-ejabberd-build:$TAG-$r" .
    if ! podman run --rm --network none -v "$REPO/docs/protocol-vectors.txt:/build/protocol-vectors.txt:ro" \
         "localhost/megaphone-ejabberd-build:$TAG-$r" \
         make -s -C /build/mod_megaphone test MEGAPHONE_VECTORS=/build/protocol-vectors.txt > "$WORK/eunit-$r.log" 2>&1; then
        grep -A 15 -F '*failed*' "$WORK/eunit-$r.log" >&2 || true
        tail -n 20 "$WORK/eunit-$r.log" >&2
        die "mod_megaphone's eunit tests failed on $r's ejabberd"
    fi
    grep -E "tests passed|passed\." "$WORK/eunit-$r.log" | tail -n 1 | sed 's/^ */  /'
    EJ_IMAGE[$r]="localhost/megaphone-ejabberd:$TAG-$r"
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
python3 -c 'import secrets; print(secrets.token_hex(32), end="")' > "$WORK/cookie"
printf 'admin-pw-%s\n' "$$" > "$WORK/admin-password"
# The operator's own configuration: one more c2s listener, merged into the generated one.
mkdir -p "$WORK/conf.d"
printf 'listen:\n  - port: 5223\n    ip: "0.0.0.0"\n    module: ejabberd_c2s\n' > "$WORK/conf.d/extra-listener.yml"
chmod 0444 "$WORK/link-secret" "$WORK/cookie" "$WORK/admin-password" "$WORK/conf.d/extra-listener.yml"
chmod 0755 "$WORK" "$WORK/conf.d"

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

# The node names of a StatefulSet "ejabberd" behind a headless Service "ejabberd-headless".
HEADLESS=ejabberd-headless.megaphone.test
node_host() { echo "ejabberd-$1.$HEADLESS"; }

# start_node RELEASE NETWORK INDEX ADDRESS: one ejabberd node of the cluster, as a StatefulSet's pod would run it
start_node() {
    local r=$1 net=$2 i=$3 ip=$4 name
    name="$net-ejabberd-$i"
    CONTAINERS+=("$name")
    podman run -d --name "$name" --network "$net" --ip "$ip" --hostname "$(node_host "$i")" \
        --network-alias ejabberd-link \
        --add-host "$(node_host 0):${ip%.*}.10" --add-host "$(node_host 1):${ip%.*}.11" \
        -e EJABBERD_DOMAIN="$DOMAIN" -e EJABBERD_CLUSTER_SEED="$(node_host 0)" \
        -e EJABBERD_COOKIE_FILE=/run/secrets/cookie -e EJABBERD_ADMIN_PASSWORD_FILE=/run/secrets/admin-password \
        -v "$WORK/link-secret:/run/secrets/megaphone-link-secret:ro" -v "$WORK/cookie:/run/secrets/cookie:ro" \
        -v "$WORK/admin-password:/run/secrets/admin-password:ro" -v "$WORK/conf.d:/etc/ejabberd/conf.d:ro" \
        "${EJ_IMAGE[$r]}" >/dev/null
}

node_ready() { podman exec "$1" test -e /tmp/megaphone-ejabberd.ready; }

# start_ecm NAME NETWORK SUBNET BOSH_PORT MGMT_PORT ENV...: an ECM container, its ports published on 127.0.0.1;
# the nodes' names resolve as a cluster's DNS would resolve the pods'
start_ecm() {
    local name=$1 net=$2 subnet=$3 bosh=$4 mgmt=$5
    shift 5
    CONTAINERS+=("$name")
    # The prod profile (JSON logs, secret from a file); a memory limit and one CPU, to check that the JVM sizes
    # itself from them (JAVA_HEAP_PERCENT of the limit, JAVA_ACTIVE_PROCESSORS); the Helm chart's readiness
    # (readinessState and firstLink: ready from the first link on).
    podman run -d --name "$name" --network "$net" -p "127.0.0.1:$bosh:5280" -p "127.0.0.1:$mgmt:9090" \
        --add-host "$(node_host 0):$subnet.10" --add-host "$(node_host 1):$subnet.11" --memory "${ECM_MEMORY_MB}m" -e SPRING_PROFILES_ACTIVE=prod \
        -e MEGAPHONE_LINK_SECRET_FILE=/run/secrets/megaphone-link-secret -e JAVA_ACTIVE_PROCESSORS=1 \
        -e MANAGEMENT_ENDPOINT_HEALTH_GROUP_READINESS_INCLUDE=readinessState,firstLink "$@" \
        -v "$WORK/link-secret:/run/secrets/megaphone-link-secret:ro" "$ECM_IMAGE" >/dev/null
}

ecm_ready() { # ecm_ready NAME MGMT_PORT
    if ! wait_for 120 "readiness" ready_or_exited "$2" "$1" || ! readiness_is "$2" 200; then
        podman logs "$1" 2>&1 | tail -n 40 >&2
        die "the ECM container $1 did not become ready (http://127.0.0.1:$2/actuator/health/readiness)"
    fi
}

run_release() {
    local r=$1 drain=$2 net="megaphone-ct-$$-$1" subnet bosh mgmt bosh0 mgmt0 bosh1 mgmt1
    read -r bosh mgmt bosh0 mgmt0 bosh1 mgmt1 <<< "$(free_ports 6)"
    # A private /24 of its own for this run (10.89.x.0/24 is podman's own default range).
    subnet="10.$((90 + $$ % 30)).$((RANDOM % 250 + 1))"
    local ej0="$net-ejabberd-0" ej1="$net-ejabberd-1" ecm="$net-ecm" url="http://127.0.0.1:$bosh/http-bind"
    step "network $net ($subnet.0/24): ejabberd ${EJ_VERSION[$r]} on two nodes, the ECM in front; BOSH on 127.0.0.1:$bosh, management on 127.0.0.1:$mgmt"
    NETWORKS+=("$net")
    podman network create --subnet "$subnet.0/24" "$net" >/dev/null

    start_node "$r" "$net" 0 "$subnet.10"
    start_node "$r" "$net" 1 "$subnet.11"
    for c in "$ej0" "$ej1"; do
        if ! wait_for 180 "$c ready" node_ready "$c"; then
            podman logs "$c" 2>&1 | tail -n 40 >&2
            die "ejabberd ($r) in $c did not become ready (started, joined, admin registered)"
        fi
    done
    grep -q "joined the cluster of ejabberd@$(node_host 0)" <<< "$(podman logs "$ej1" 2>&1)" \
        || { podman logs "$ej1" 2>&1 | tail -n 20 >&2; die "$ej1 did not log its join"; }
    local cluster
    cluster="$(podman exec "$ej0" ejabberdctl list_cluster | tr -d "'" | sort | tr '\n' ' ')"
    [ "$cluster" = "ejabberd@$(node_host 0) ejabberd@$(node_host 1) " ] \
        || die "list_cluster on node 0 is '$cluster' (expected: both nodes)"
    local uid
    uid="$(podman exec "$ej0" id -u):$(podman inspect --format '{{.Config.User}}' "${EJ_IMAGE[$r]}")"
    [ "$uid" = "9000:9000:9000" ] || die "the ejabberd image's user is $uid (expected: 9000, USER 9000:9000)"
    podman exec "$ej1" ejabberdctl check_password admin "$DOMAIN" "$(cat "$WORK/admin-password")" 2>/dev/null \
        || die "the admin's password from EJABBERD_ADMIN_PASSWORD_FILE does not log in on node 1"
    grep -q "Start accepting TCP connections at 0.0.0.0:5223" <<< "$(podman logs "$ej0" 2>&1)" \
        || die "the listener of /etc/ejabberd/conf.d/extra-listener.yml is not open on node 0"
    podman exec "$ej0" ejabberdctl register alice "$DOMAIN" alice-pw >/dev/null
    podman exec "$ej1" ejabberdctl register bob "$DOMAIN" bob-pw >/dev/null
    echo "  ejabberd ${EJ_VERSION[$r]}: cluster $cluster(uid 9000; admin's password from a file, on node 1 too;"
    echo "  conf.d listener 5223 open); alice registered on node 0, bob on node 1"

    # The ECM of a Deployment with link.discovery: one DNS name for every node (started once both are ready).
    start_ecm "$ecm" "$net" "$subnet" "$bosh" "$mgmt" -e MEGAPHONE_LINK_DISCOVERY_DNSNAME=ejabberd-link \
        -e MEGAPHONE_LINK_DISCOVERY_PORT=5290 -e MEGAPHONE_LINK_DISCOVERY_REFRESHINTERVAL=2s
    # Two more ECMs, each linked to one node only: alice's session on node 0, bob's on node 1.
    start_ecm "$ecm-0" "$net" "$subnet" "$bosh0" "$mgmt0" -e MEGAPHONE_LINK_NODES="$(node_host 0):5290"
    start_ecm "$ecm-1" "$net" "$subnet" "$bosh1" "$mgmt1" -e MEGAPHONE_LINK_NODES="$(node_host 1):5290"
    ecm_ready "$ecm" "$mgmt"
    ecm_ready "$ecm-0" "$mgmt0"
    ecm_ready "$ecm-1" "$mgmt1"
    echo "  readiness from outside: $(curl -s "http://127.0.0.1:$mgmt/actuator/health/readiness")"
    wait_for 30 "links to both nodes" nodes_linked_is "$ecm" 2 \
        || die "the discovering ECM links to $(nodes_linked "$ecm") node(s) (expected: 2, both addresses of ejabberd-link)"
    echo "  the ECM found both nodes through DNS: links up to $(nodes_linked "$ecm") nodes"

    if ! BOSH_CHAT_LABEL="across the nodes" BOSH_CHAT_URL_B="http://127.0.0.1:$bosh1/http-bind" \
         bash scripts/bosh-chat.sh "http://127.0.0.1:$bosh0/http-bind" "$DOMAIN" alice alice-pw bob bob-pw; then
        podman logs "$ecm-0" 2>&1 | tail -n 10 >&2
        podman logs "$ecm-1" 2>&1 | tail -n 10 >&2
        die "the BOSH chat across the nodes failed ($r)"
    fi
    ws_chat_check "ws://127.0.0.1:$bosh0/xmpp-websocket" "http://127.0.0.1:$bosh1/http-bind" "$ej0" "$ej1" "$mgmt0" "$ecm-0"
    podman rm -f "$ecm-0" "$ecm-1" >/dev/null
    if ! BOSH_CHAT_LABEL="the ECM with DNS discovery" bash scripts/bosh-chat.sh "$url" "$DOMAIN" bob bob-pw alice alice-pw; then
        podman logs "$ecm" 2>&1 | tail -n 20 >&2
        die "the BOSH chat through the discovering ECM failed ($r)"
    fi

    curl -sf "http://127.0.0.1:$mgmt/actuator/prometheus" > "$WORK/scrape-$r.txt" \
        || die "no Prometheus scrape at http://127.0.0.1:$mgmt/actuator/prometheus"
    local links answered heap cpus
    links="$(grep -c '^megaphone_link_up{.*} 1\.0$' "$WORK/scrape-$r.txt" || true)"
    answered="$(metric "$WORK/scrape-$r.txt" megaphone_edge_requests_total 'outcome="answered"')"
    heap="$(metric "$WORK/scrape-$r.txt" jvm_memory_max_bytes 'area="heap"' 'id="G1 Old Gen"')"
    cpus="$(metric "$WORK/scrape-$r.txt" system_cpu_count)"
    [ "$links" -ge 2 ] || die "the scrape shows $links links up (expected: at least one per node)"
    python3 -c "import sys; sys.exit(0 if float('${answered:-0}') >= 10 else 1)" \
        || die "megaphone_edge_requests_total{outcome=\"answered\"} is ${answered:-missing} after a chat (expected: >= 10)"
    # The heap is JAVA_HEAP_PERCENT (60) of the container's limit: between 50 % and 62 % of it.
    python3 -c "import sys; h = float('${heap:-0}') / ($ECM_MEMORY_MB * 1048576); sys.exit(0 if 0.50 <= h <= 0.62 else 1)" \
        || die "heap max ${heap:-missing} B is not about 60 % of the ${ECM_MEMORY_MB} MiB container limit"
    [ "${cpus:-}" = "1.0" ] || die "system_cpu_count is ${cpus:-missing} (expected: 1.0 from JAVA_ACTIVE_PROCESSORS=1)"
    # The image's JVM: Java 25 with compact object headers (the Dockerfile's entrypoint).
    # (read whole first: grep -q stops reading at its match, and under pipefail the writer's SIGPIPE would fail it)
    local cmdlines
    cmdlines=$(podman exec "$ecm" sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " < "$f"; echo; done')
    grep -q -- '-XX:+UseCompactObjectHeaders' <<< "$cmdlines" \
        || die "the ECM container's java runs without -XX:+UseCompactObjectHeaders"
    echo "  the ECM's JVM: $(podman exec "$ecm" java -version 2>&1 | head -n 1), -XX:+UseCompactObjectHeaders"
    echo "  Prometheus scrape from outside: $links links up, ${answered%.0} requests answered; heap max $(python3 -c "print(round(float('$heap') / 1048576))") MiB of a ${ECM_MEMORY_MB} MiB limit; $cpus CPU"

    if [ "$drain" = 1 ]; then
        ejabberd_restart_check "$url" "$mgmt" "$ej0" "$ej1" "$ecm"
        drain_check "$url" "$mgmt" "$ecm"
    fi
    podman rm -f "$ecm" "$ej0" "$ej1" >/dev/null
    podman network rm -f "$net" >/dev/null
}

# XMPP over WebSocket through the images: alice (Strophe.js in Node, clients/strophe-ws-chat.mjs) over WS_URL, an ECM
# linked to node 0 only, bob over BOSH_URL, an ECM linked to node 1 only. While both are logged in, ejabberd (asked on
# node 1: the session table is the cluster's) must list alice's session as websocket on node 0 and bob's as http_bind
# on node 1, and the ECM must count one open stream; then a message each way, each received exactly once (the
# script's check), and after alice's close her session ends in ejabberd and the ECM counts one clean close.
ws_chat_check() { # ws_chat_check WS_URL BOSH_URL EJ_WS EJ_BOSH MGMT_WS ECM_WS
    local ws=$1 bosh=$2 ej_ws=$3 ej_bosh=$4 mgmt=$5 ecm=$6 pid jid_a jid_b sessions line_a line_b open result
    local hold="$WORK/ws-chat.hold" out="$WORK/ws-chat.json" t0=$SECONDS
    rm -f "$hold"
    STROPHE_WS_CHAT_HOLD_FILE="$hold" node "$REPO/clients/strophe-ws-chat.mjs" "$ws" "$bosh" \
        "alice@$DOMAIN" alice-pw "bob@$DOMAIN" bob-pw > "$out" 2> "$WORK/ws-chat.err" &
    pid=$!
    ws_fail() {
        kill "$pid" 2>/dev/null || true
        cat "$out" "$WORK/ws-chat.err" >&2 || true
        podman logs "$ecm" 2>&1 | tail -n 10 >&2
        podman logs "$ej_ws" 2>&1 | grep -iE "error|crash|mod_megaphone" | tail -n 10 >&2 || true
        die "WebSocket chat: $*"
    }
    wait_for 40 "both logged in" held_or_exited "$hold" "$pid" || ws_fail "no login within 40 s"
    [ -s "$hold" ] || { wait "$pid" || true; ws_fail "the client ended before both were logged in"; }
    jid_a="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["a"])' "$hold")"
    jid_b="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["b"])' "$hold")"
    # connected_users_info: jid, connection, ip, port, priority, node, uptime, status, resource, status text
    sessions="$(podman exec "$ej_bosh" ejabberdctl connected_users_info)"
    line_a="$(awk -F '\t' -v j="$jid_a" '$1 == j' <<< "$sessions")"
    line_b="$(awk -F '\t' -v j="$jid_b" '$1 == j' <<< "$sessions")"
    [ "$(cut -f 2,6 <<< "$line_a")" = "websocket"$'\t'"ejabberd@$(node_host 0)" ] \
        || ws_fail "ejabberd lists $jid_a as '$(cut -f 2,6 <<< "$line_a")' (expected: websocket on node 0): $sessions"
    [ "$(cut -f 2,6 <<< "$line_b")" = "http_bind"$'\t'"ejabberd@$(node_host 1)" ] \
        || ws_fail "ejabberd lists $jid_b as '$(cut -f 2,6 <<< "$line_b")' (expected: http_bind on node 1): $sessions"
    curl -s "http://127.0.0.1:$mgmt/actuator/prometheus" > "$WORK/ws-scrape.txt"
    open="$(metric "$WORK/ws-scrape.txt" megaphone_edge_websocket_open_streams)"
    [ "$open" = 1.0 ] || ws_fail "megaphone_edge_websocket_open_streams is ${open:-missing} (expected: 1.0)"
    echo "  alice over WebSocket (through the ECM of node 0), bob over BOSH (node 1): ejabberd lists"
    echo "    $(cut -f 1,2,3,6 <<< "$line_a" | tr '\t' ' ')"
    echo "    $(cut -f 1,2,3,6 <<< "$line_b" | tr '\t' ' ')"
    rm -f "$hold"
    wait "$pid" || ws_fail "the chat failed"
    result="$(cat "$out")"
    wait_for 10 "alice's session ended" ws_session_gone "$ej_bosh" "$jid_a" \
        || ws_fail "$jid_a is still listed by ejabberd 10 s after its close"
    wait_for 10 "the stream closed" ws_closed_cleanly "$mgmt" \
        || ws_fail "the ECM does not count one stream closed cleanly: $(grep websocket_ "$WORK/ws-scrape.txt")"
    echo "  WebSocket <-> BOSH chat across the nodes, each message once: $result ($((SECONDS - t0)) s);"
    echo "  then alice's session ended in ejabberd, and the ECM counts the stream closed: $(grep -E '^megaphone_edge_websocket_closes_total\{' \
        "$WORK/ws-scrape.txt" | awk '$NF > 0' | grep -o 'reason="[a-z_]*"')"
}

held_or_exited() { [ -s "$1" ] || ! kill -0 "$2" 2>/dev/null; } # held_or_exited FILE PID

ws_session_gone() { # ws_session_gone EJABBERD_CONTAINER JID
    local sessions
    sessions="$(podman exec "$1" ejabberdctl connected_users_info)" || return 1
    ! awk -F '\t' -v j="$2" '$1 == j { found = 1 } END { exit !found }' <<< "$sessions"
}

# ws_closed_cleanly MGMT_PORT: no stream open, and one closed, by the client or by ejabberd (a <close/> from the client is
# answered by ejabberd's, which ends the stream too: either side may be first), none for another reason
ws_closed_cleanly() {
    curl -s "http://127.0.0.1:$1/actuator/prometheus" > "$WORK/ws-scrape.txt"
    [ "$(metric "$WORK/ws-scrape.txt" megaphone_edge_websocket_open_streams)" = 0.0 ] \
        && [ "$(grep -E '^megaphone_edge_websocket_closes_total\{' "$WORK/ws-scrape.txt" \
                | awk '/reason="(client|server)"/ { clean += $NF; next } { other += $NF } END { print clean + 0, other + 0 }')" = "1 0" ]
}

# nodes_linked ECM_CONTAINER [SINCE] -> how many distinct ejabberd nodes (by the Erlang node name each handshake
# reports) the ECM brought a link up to, in its log (since SINCE, a podman logs --since time). Not from the
# scrape: with discovery, the links' tag is the DNS name, the same for every node.
nodes_linked() {
    podman logs ${2:+--since "$2"} "$1" 2>&1 | grep -o 'up: node ejabberd@[^,]*' | sort -u | wc -l
}
nodes_linked_is() { [ "$(nodes_linked "$1" "${3:-}")" = "$2" ]; }

links_up() { # links_up MGMT_PORT -> the number of links up in the scrape
    curl -s "http://127.0.0.1:$1/actuator/prometheus" | grep -c '^megaphone_link_up{.*} 1\.0$' || true
}
links_up_is() { [ "$(links_up "$1")" = "$2" ]; }
links_up_at_least() { [ "$(links_up "$1")" -ge "$2" ]; }

# The shared ejabberd cluster stops: the ECM must stay ready (the chart's readiness) and answer BOSH with a
# retryable 503 + Retry-After; when ejabberd is back (node 1 still in the cluster, from its mnesia, without a new
# join), the links come back and the ECM serves again.
ejabberd_restart_check() {
    local url=$1 mgmt=$2 ej0=$3 ej1=$4 ecm=$5 code retry since
    podman stop --time 20 "$ej1" "$ej0" >/dev/null
    wait_for 30 "links down" links_up_is "$mgmt" 0 \
        || die "ejabberd stopped, but the ECM still shows links up"
    readiness_is "$mgmt" 200 || die "ejabberd stopped: the ECM's readiness went down (expected: it stays ready from the first link on)"
    code="$(curl -s -D "$WORK/nolink.headers" -o "$WORK/nolink.body" -w '%{http_code}' -H 'Content-Type: text/xml; charset=utf-8' \
        --data "<body rid='3000' to='$DOMAIN' wait='10' hold='1' ver='1.6' xmlns='$NS' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>" "$url")"
    retry="$(grep -i '^retry-after:' "$WORK/nolink.headers" | tr -d '\r' | cut -d' ' -f2)"
    [ "$code" = 503 ] && [ -n "$retry" ] \
        || die "ejabberd stopped: a session creation got HTTP $code, Retry-After '${retry}' (expected: 503 with Retry-After): $(cat "$WORK/nolink.body")"
    echo "  ejabberd stopped: ECM readiness still 200; a BOSH request gets $code, Retry-After: $retry, body $(head -c 120 "$WORK/nolink.body")"
    since="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    podman start "$ej0" "$ej1" >/dev/null
    for c in "$ej0" "$ej1"; do
        wait_for 180 "$c ready" node_ready "$c" || { podman logs "$c" 2>&1 | tail -n 30 >&2; die "$c did not come back"; }
    done
    # (grep on a variable: with pipefail, "podman logs | grep -q" fails when grep stops reading early)
    local log1
    log1="$(podman logs "$ej1" 2>&1)"
    [ "$(grep -c "joined the cluster of" <<< "$log1")" = 1 ] \
        && grep -q "already is in the cluster of ejabberd@$(node_host 0)" <<< "$log1" \
        || { grep megaphone-ejabberd <<< "$log1" >&2; die "node 1 did not stay in the cluster across its restart"; }
    wait_for 60 "links back" nodes_linked_is "$ecm" 2 "$since" \
        || die "ejabberd restarted, but the links to both nodes did not come back within 60 s ($(nodes_linked "$ecm" "$since"))"
    echo "  ejabberd cluster restarted: node 1 still in it without a new join; $(links_up "$mgmt") links up again to both nodes"
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
