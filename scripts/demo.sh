#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Brings up the whole of Megaphone on this machine, on loopback, and shows a chat going through it:
# a private ejabberd with mod_megaphone, the ECM in front of it, two users chatting through the ECM over BOSH
# (bosh-chat.sh), then over XMPP over WebSocket (WsChat.java). Everything is left running; `scripts/demo.sh
# stop` stops it. It ends when the chats are done (about a
# minute with everything installed and Maven's cache warm).
#
#   sudo bash scripts/demo.sh [start]   install what is missing, build, start, chat
#   sudo bash scripts/demo.sh stop
#
# Needs root: it installs packages and runs ejabberd as the ejabberd user. Run by anyone else, it says so and
# runs itself again through sudo. What writes into the checkout (the build, ./run/ with the ECM's log) runs as
# the checkout's owner, so that sudo leaves no root-owned files there. ejabberd's instance (configuration,
# spool, logs, a copy of the module's beams) lives in a folder of its own under /var/tmp, which the ejabberd
# user can reach even when the checkout is under a mode-700 folder (/root, a home folder); ./run/ejabberd.dir
# names it.
#
# Ports (override with the environment): ECM BOSH 8080 (ECM_PORT), ECM management 9090 (ECM_MANAGEMENT_PORT),
# mod_megaphone link 5290 (LINK_PORT), the private ejabberd's own c2s 25222 (EJ_C2S_PORT) and BOSH 25280
# (EJ_HTTP_PORT).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)
RUN="$ROOT/run"
ECM_PORT=${ECM_PORT:-8080}
ECM_MANAGEMENT_PORT=${ECM_MANAGEMENT_PORT:-9090}
LINK_PORT=${LINK_PORT:-5290}
EJ_C2S_PORT=${EJ_C2S_PORT:-25222}
EJ_HTTP_PORT=${EJ_HTTP_PORT:-25280}
DOMAIN=localhost

if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 \
        || { echo "demo: needs root (it installs packages and runs ejabberd as the ejabberd user): run it as root" >&2; exit 1; }
    echo "demo: needs root (it installs packages and runs ejabberd as the ejabberd user); running it again with sudo" >&2
    exec sudo env ECM_PORT="$ECM_PORT" ECM_MANAGEMENT_PORT="$ECM_MANAGEMENT_PORT" LINK_PORT="$LINK_PORT" \
        EJ_C2S_PORT="$EJ_C2S_PORT" EJ_HTTP_PORT="$EJ_HTTP_PORT" bash "$ROOT/scripts/demo.sh" "$@"
fi

# AS_OWNER prefixes a command that writes into the checkout: it runs as the checkout's owner (root runs it
# as it is when root owns the checkout, or the owner has no account here).
OWNER=$(stat -c %U "$ROOT")
AS_OWNER=()
if [ "$OWNER" != root ] && [ "$OWNER" != UNKNOWN ]; then
    AS_OWNER=(setpriv "--reuid=$OWNER" "--regid=$(id -g "$OWNER")" --init-groups
              env "HOME=$(getent passwd "$OWNER" | cut -d: -f6)" "USER=$OWNER" "LOGNAME=$OWNER")
fi
give_to_owner() {
    [ ${#AS_OWNER[@]} -eq 0 ] || chown "$OWNER:" "$@"
}

# The ejabberd instance folder of the last start, if any.
ej_dir() {
    [ -s "$RUN/ejabberd.dir" ] && cat "$RUN/ejabberd.dir"
}

stop() {
    if [ -f "$RUN/ecm.pid" ]; then
        kill "$(cat "$RUN/ecm.pid")" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$(cat "$RUN/ecm.pid")" 2>/dev/null || break; sleep 0.5; done
        rm -f "$RUN/ecm.pid"
    fi
    local dir
    dir=$(ej_dir) || true
    if [ -n "$dir" ] && [ -f "$dir/instance.env" ]; then
        bash scripts/private-ejabberd.sh stop "$dir" || true
    fi
    # An instance of an older demo, inside the checkout.
    if [ -f "$RUN/ejabberd/instance.env" ]; then
        bash scripts/private-ejabberd.sh stop "$RUN/ejabberd" || true
    fi
    echo "Megaphone demo stopped."
}

if [ "${1:-start}" = stop ]; then
    stop
    exit 0
fi

bash scripts/install-deps.sh
"${AS_OWNER[@]}" mkdir -p "$RUN"
stop > /dev/null
old_dir=$(ej_dir) || true
case "$old_dir" in /var/tmp/megaphone-demo-ejabberd.*) rm -rf "$old_dir" ;; esac
rm -rf "$RUN/ejabberd" "$RUN/ejabberd.dir"

if [ ! -s "$RUN/link.secret" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '/+=' > "$RUN/link.secret")
fi
give_to_owner "$RUN/link.secret"  # the ECM reads it
SECRET=$(cat "$RUN/link.secret")

echo "== Building the ECM"
"${AS_OWNER[@]}" ./mvnw -B -q -ntp -DskipTests package
"${AS_OWNER[@]}" make -s -C ejabberd/mod_megaphone  # private-ejabberd.sh finds it built and copies the beams
JAR=$(ls target/megaphone-ecm-*.jar | grep -v original | head -n 1)

echo "== Starting ejabberd with mod_megaphone (link port $LINK_PORT)"
EJ_DIR=$(mktemp -d /var/tmp/megaphone-demo-ejabberd.XXXXXX)
chmod 0755 "$EJ_DIR"
echo "$EJ_DIR" > "$RUN/ejabberd.dir"
give_to_owner "$RUN/ejabberd.dir"
EJ_LINK_PORT=$LINK_PORT EJ_C2S_PORT=$EJ_C2S_PORT EJ_HTTP_PORT=$EJ_HTTP_PORT EJ_DOMAIN=$DOMAIN MEGAPHONE_SECRET=$SECRET \
    bash scripts/private-ejabberd.sh start "$EJ_DIR"
bash scripts/private-ejabberd.sh register "$EJ_DIR" alice alice-pw > /dev/null
bash scripts/private-ejabberd.sh register "$EJ_DIR" bob bob-pw > /dev/null

echo "== Starting the ECM (BOSH on $ECM_PORT, management on $ECM_MANAGEMENT_PORT)"
"${AS_OWNER[@]}" touch "$RUN/ecm.log"
"${AS_OWNER[@]}" env MEGAPHONE_LINK_SECRET_FILE="$RUN/link.secret" nohup java -jar "$JAR" \
    --server.port="$ECM_PORT" --management.server.port="$ECM_MANAGEMENT_PORT" \
    --megaphone.link.nodes="127.0.0.1:$LINK_PORT" > "$RUN/ecm.log" 2>&1 &
echo $! > "$RUN/ecm.pid"
give_to_owner "$RUN/ecm.pid"
for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/health/readiness" 2>/dev/null | grep -q UP; then
        break
    fi
    kill -0 "$(cat "$RUN/ecm.pid")" 2>/dev/null || { tail -n 40 "$RUN/ecm.log"; echo "demo: the ECM exited" >&2; exit 1; }
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/health/readiness" | grep -q UP \
    || { tail -n 40 "$RUN/ecm.log"; echo "demo: the ECM did not become ready" >&2; exit 1; }

echo "== A chat through the ECM over BOSH"
bash scripts/bosh-chat.sh "http://127.0.0.1:$ECM_PORT/http-bind" "$DOMAIN" alice alice-pw bob bob-pw
echo "== A chat through the ECM over XMPP over WebSocket"
java scripts/WsChat.java "ws://127.0.0.1:$ECM_PORT/xmpp-websocket" "$DOMAIN" alice alice-pw bob bob-pw

cat <<INFO

Megaphone is running:
  BOSH endpoint      http://127.0.0.1:$ECM_PORT/http-bind        (point Strophe.js or Converse.js here:
  WebSocket endpoint ws://127.0.0.1:$ECM_PORT/xmpp-websocket    bosh_service_url, websocket_url)
  demo chat page     http://127.0.0.1:$ECM_PORT/demo/            (log in as alice or bob, over BOSH or WebSocket)
  health             http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/health
  metrics            http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/prometheus
  users              alice / alice-pw, bob / bob-pw  (domain $DOMAIN)
  logs               $RUN/ecm.log, $EJ_DIR/logs/ejabberd.log
Try a session creation yourself:
  curl -s -H 'Content-Type: text/xml; charset=utf-8' --data "<body rid='1000' to='$DOMAIN' wait='10' hold='1' ver='1.6' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>" http://127.0.0.1:$ECM_PORT/http-bind
Stop it with: ${SUDO_USER:+sudo }bash scripts/demo.sh stop
INFO
