#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the README's first command the way a newcomer does and checks it works: a copy of this checkout (its
# files as they are now, without target/ and run/) under a mode-700 folder, `scripts/demo.sh` on free loopback
# ports, the chats through the ECM (BOSH, then WebSocket), then `scripts/demo.sh stop`, and nothing of it left
# running or listening.
#
#   bash scripts/demo-test.sh              as root, the copy under a mode-700 folder (as a checkout under /root)
#   bash scripts/demo-test.sh --sudo-user  the same, then again as a throwaway sudo user (created, then removed:
#                                          useradd, /etc/sudoers.d) from a copy in its mode-700 home, with
#                                          `sudo bash scripts/demo.sh`; no file of that copy may end up root's
#
# Needs root. About a minute per run (the copy builds the ECM), plus Maven's downloads for the sudo user's
# empty ~/.m2 (about 2 more minutes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SRC=$(pwd -P)
[ "$(id -u)" = 0 ] || { echo "demo-test: needs root (the demo does): sudo bash scripts/demo-test.sh $*" >&2; exit 1; }
SUDO_USER_CHECK=false
case "${1:-}" in
    "") ;;
    --sudo-user) SUDO_USER_CHECK=true ;;
    *) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

BASE=$(mktemp -d /var/tmp/megaphone-demo-test.XXXXXX)  # mode 700, owned by root: the ejabberd user cannot enter
TEST_USER=""
CHECKOUT=""
cleanup() {
    if [ -n "$CHECKOUT" ] && [ -f "$CHECKOUT/run/ejabberd.dir" ]; then
        bash "$CHECKOUT/scripts/demo.sh" stop > /dev/null 2>&1 || true
        rm -rf "$(cat "$CHECKOUT/run/ejabberd.dir")"
    fi
    if [ -n "$TEST_USER" ]; then
        userdel -r "$TEST_USER" > /dev/null 2>&1 || true
        rm -f "/etc/sudoers.d/$TEST_USER"
    fi
    rm -rf "$BASE"
}
trap cleanup EXIT

fail() { echo "demo-test: FAILED: $*" >&2; exit 1; }

# copy_checkout DEST: this checkout's files, as they are now (tracked and new, not ignored; without git, all
# but target/ and run/), with their times.
copy_checkout() {
    mkdir -p "$1"
    if git -c safe.directory='*' -C "$SRC" rev-parse --git-dir > /dev/null 2>&1; then
        git -c safe.directory='*' -C "$SRC" ls-files -z --cached --others --exclude-standard \
            | (cd "$SRC" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
            | tar -C "$SRC" --null -T - -cf - | tar -C "$1" -xf -
    else
        tar -C "$SRC" --exclude=./target --exclude=./run --exclude=node_modules -cf - . | tar -C "$1" -xf -
    fi
}

# run_demo AS: starts the demo of $CHECKOUT on free ports (AS: root, or a user name that runs it with sudo),
# checks the chat and what runs, stops it, checks that nothing is left.
run_demo() {
    local as="$1" ports log="$BASE/demo-$1.log" started
    # Below the ephemeral range (no outgoing connection takes them meanwhile, on any address) and free on every
    # address: the ECM binds the wildcard address, which fails while any socket holds its port on any address.
    read -r -a ports <<< "$(python3 -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < 5:
    port = random.randrange(10000, max(low, 20000))
    s = socket.socket()
    try:
        s.bind(("", port))
        if port not in ports: ports.append(port)
    except OSError:
        pass
    finally:
        s.close()
print(" ".join(map(str, ports)))')"
    local vars="ECM_PORT=${ports[0]} ECM_MANAGEMENT_PORT=${ports[1]} LINK_PORT=${ports[2]} EJ_C2S_PORT=${ports[3]} EJ_HTTP_PORT=${ports[4]}"
    started=$SECONDS
    if [ "$as" = root ]; then
        # shellcheck disable=SC2086
        (cd / && env $vars bash "$CHECKOUT/scripts/demo.sh") > "$log" 2>&1 \
            || { tail -n 40 "$log"; fail "the demo as root from $CHECKOUT"; }
    else
        su - "$as" -c "cd ~/megaphone && sudo $vars bash scripts/demo.sh" > "$log" 2>&1 \
            || { tail -n 40 "$log"; fail "the demo as $as with sudo from $CHECKOUT"; }
    fi
    grep -q "^Message delivered from alice to bob through http://127.0.0.1:${ports[0]}/http-bind" "$log" \
        || { tail -n 40 "$log"; fail "no chat through the ECM as $as"; }
    grep -q "^Message delivered from alice to bob and back through ws://127.0.0.1:${ports[0]}/xmpp-websocket" "$log" \
        || { tail -n 40 "$log"; fail "no WebSocket chat through the ECM as $as"; }
    local ej_dir ecm_pid ecm_user
    ej_dir=$(cat "$CHECKOUT/run/ejabberd.dir")
    case "$ej_dir" in /var/tmp/megaphone-demo-ejabberd.*) ;; *) fail "ejabberd's instance is in $ej_dir" ;; esac
    ecm_pid=$(cat "$CHECKOUT/run/ecm.pid")
    ecm_user=$(ps -o user= -p "$ecm_pid") || fail "the ECM (pid $ecm_pid) does not run"
    [ "$ecm_user" = "$(stat -c %U "$CHECKOUT")" ] || fail "the ECM runs as $ecm_user, the checkout is $(stat -c %U "$CHECKOUT")'s"
    echo "demo-test: the demo as $as from $CHECKOUT: chats delivered in $((SECONDS - started)) s (ECM as $ecm_user, ejabberd in $ej_dir)"

    if [ "$as" = root ]; then
        bash "$CHECKOUT/scripts/demo.sh" stop > "$log.stop" 2>&1 || { cat "$log.stop"; fail "demo.sh stop"; }
    else
        su - "$as" -c "cd ~/megaphone && sudo bash scripts/demo.sh stop" > "$log.stop" 2>&1 \
            || { cat "$log.stop"; fail "demo.sh stop as $as"; }
    fi
    ! kill -0 "$ecm_pid" 2>/dev/null || fail "the ECM (pid $ecm_pid) still runs after stop"
    local port
    for port in "${ports[@]}"; do
        [ -z "$(ss -Hltn "sport = :$port")" ] || fail "port $port still listens after stop"
    done
    if [ "$as" != root ]; then
        local foreign
        foreign=$(find "$CHECKOUT" ! -user "$as" | head -n 5)
        [ -z "$foreign" ] || fail "files in $as's checkout owned by someone else: $foreign"
    fi
    rm -rf "$ej_dir"
}

CHECKOUT="$BASE/megaphone"
copy_checkout "$CHECKOUT"
[ "$(stat -c %a "$BASE")" = 700 ] || fail "$BASE is not mode 700"
! setpriv --reuid=ejabberd --regid=ejabberd --init-groups test -x "$CHECKOUT" || fail "the ejabberd user can reach $CHECKOUT"
run_demo root

if $SUDO_USER_CHECK; then
    command -v sudo > /dev/null || apt-get install -y -q --no-install-recommends sudo > /dev/null
    TEST_USER="mpdemo$$"
    useradd -m -s /bin/bash "$TEST_USER"
    chmod 700 "/home/$TEST_USER"
    echo "$TEST_USER ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/$TEST_USER"
    chmod 440 "/etc/sudoers.d/$TEST_USER"
    CHECKOUT="/home/$TEST_USER/megaphone"
    copy_checkout "$CHECKOUT"
    chown -R "$TEST_USER:" "$CHECKOUT"
    run_demo "$TEST_USER"
fi
echo "demo-test: passed"
