#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Brings up the whole of Megaphone on this machine, on loopback, and shows a chat going through it:
# a private ejabberd with mod_megaphone, the ECM in front of it, two users chatting over BOSH through the
# ECM. Everything is left running; `scripts/demo.sh stop` stops it. State and logs go to ./run/.
#
#   scripts/demo.sh [start]   install what is missing, build, start, chat
#   scripts/demo.sh stop
#
# Ports (override with the environment): ECM BOSH 8080 (ECM_PORT), ECM management 9090 (ECM_MANAGEMENT_PORT),
# mod_megaphone link 5290 (LINK_PORT), the private ejabberd's own c2s 25222 and BOSH 25280.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
RUN="$ROOT/run"
ECM_PORT=${ECM_PORT:-8080}
ECM_MANAGEMENT_PORT=${ECM_MANAGEMENT_PORT:-9090}
LINK_PORT=${LINK_PORT:-5290}
DOMAIN=localhost

stop() {
    if [ -f "$RUN/ecm.pid" ]; then
        kill "$(cat "$RUN/ecm.pid")" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$(cat "$RUN/ecm.pid")" 2>/dev/null || break; sleep 0.5; done
        rm -f "$RUN/ecm.pid"
    fi
    [ -d "$RUN/ejabberd" ] && bash scripts/private-ejabberd.sh stop "$RUN/ejabberd" || true
    echo "Megaphone demo stopped."
}

if [ "${1:-start}" = stop ]; then
    stop
    exit 0
fi

bash scripts/install-deps.sh
mkdir -p "$RUN"
[ -f "$RUN/ecm.pid" ] || [ -f "$RUN/ejabberd/instance.env" ] && stop > /dev/null

if [ ! -s "$RUN/link.secret" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '/+=' > "$RUN/link.secret")
fi
SECRET=$(cat "$RUN/link.secret")

echo "== Building the ECM"
./mvnw -B -q -ntp -DskipTests package
JAR=$(ls target/megaphone-ecm-*.jar | grep -v original | head -n 1)

echo "== Starting ejabberd with mod_megaphone (link port $LINK_PORT)"
rm -rf "$RUN/ejabberd"
mkdir -p "$RUN/ejabberd"
EJ_LINK_PORT=$LINK_PORT EJ_C2S_PORT=25222 EJ_HTTP_PORT=25280 EJ_DOMAIN=$DOMAIN MEGAPHONE_SECRET=$SECRET \
    bash scripts/private-ejabberd.sh start "$RUN/ejabberd"
bash scripts/private-ejabberd.sh register "$RUN/ejabberd" alice alice-pw > /dev/null
bash scripts/private-ejabberd.sh register "$RUN/ejabberd" bob bob-pw > /dev/null

echo "== Starting the ECM (BOSH on $ECM_PORT, management on $ECM_MANAGEMENT_PORT)"
MEGAPHONE_LINK_SECRET_FILE="$RUN/link.secret" nohup java -jar "$JAR" \
    --server.port="$ECM_PORT" --management.server.port="$ECM_MANAGEMENT_PORT" \
    --megaphone.link.nodes="127.0.0.1:$LINK_PORT" > "$RUN/ecm.log" 2>&1 &
echo $! > "$RUN/ecm.pid"
for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/health/readiness" 2>/dev/null | grep -q UP; then
        break
    fi
    kill -0 "$(cat "$RUN/ecm.pid")" 2>/dev/null || { tail -n 40 "$RUN/ecm.log"; echo "demo: the ECM exited" >&2; exit 1; }
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/health/readiness" | grep -q UP \
    || { tail -n 40 "$RUN/ecm.log"; echo "demo: the ECM did not become ready" >&2; exit 1; }

echo "== A chat through the ECM"
bash scripts/bosh-chat.sh "http://127.0.0.1:$ECM_PORT/http-bind" "$DOMAIN" alice alice-pw bob bob-pw

cat <<INFO

Megaphone is running:
  BOSH endpoint      http://127.0.0.1:$ECM_PORT/http-bind   (point Strophe.js or Converse.js here)
  demo chat page     http://127.0.0.1:$ECM_PORT/demo/       (log in as alice or bob)
  health             http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/health
  metrics            http://127.0.0.1:$ECM_MANAGEMENT_PORT/actuator/prometheus
  users              alice / alice-pw, bob / bob-pw  (domain $DOMAIN)
  logs               $RUN/ecm.log, $RUN/ejabberd/logs/ejabberd.log
Try a session creation yourself:
  curl -s -H 'Content-Type: text/xml; charset=utf-8' --data "<body rid='1000' to='$DOMAIN' wait='10' hold='1' ver='1.6' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>" http://127.0.0.1:$ECM_PORT/http-bind
Stop it with: bash scripts/demo.sh stop
INFO
