#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what Megaphone needs on a Debian/Ubuntu machine, only where it is missing:
# ejabberd and erlang-dev (mod_megaphone is built with erlc against the packaged ejabberd), erlang-proper-dev,
# a JDK 17+ (the newest of Debian's 25, 21, 17 that the release has; the Maven wrapper fetches Maven itself), make,
# curl, python3, iproute2, openssl, promtool (Debian's prometheus package: AlertRulesTest runs the chart's alert rule
# tests with it), and for the real web client tests (clients/): Node.js 18+ with npm, and Chromium (driven headless
# by playwright-core).
# Needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
command -v ejabberdctl >/dev/null 2>&1 || [ -x /usr/sbin/ejabberdctl ] || missing+=(ejabberd)
command -v erlc >/dev/null 2>&1 || missing+=(erlang-dev)
ls -d /usr/lib/erlang/lib/proper-*/include >/dev/null 2>&1 || missing+=(erlang-proper-dev)  # mod_megaphone's property tests
ls -d /usr/lib/*/ejabberd-*/include >/dev/null 2>&1 || missing+=(ejabberd)
command -v javac >/dev/null 2>&1 || missing+=(JDK)  # the package is chosen after apt-get update, below
command -v make >/dev/null 2>&1 || missing+=(make)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # TlsLinkTest makes its certificates with it
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool test rules (AlertRulesTest)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
# De-duplicate while keeping order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
for i in "${!missing[@]}"; do
    [ "${missing[$i]}" = JDK ] || continue
    missing[$i]=openjdk-17-jdk-headless  # Debian 12 has no 25 (nor 21); Debian 13 has 25 and 21, no 17
    for jdk in openjdk-25-jdk-headless openjdk-21-jdk-headless; do
        if apt-cache policy "$jdk" 2>/dev/null | grep -q 'Candidate: [0-9]'; then missing[$i]=$jdk; break; fi
    done
done
# The Debian ejabberd package starts a system-wide ejabberd where systemd runs; the tests and the demo
# start their own private instances on free ports, so the system one is not needed (and is stopped).
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
# Likewise the prometheus package's server (only promtool is used): it would take port 9090, the ECM's management port.
for service in ejabberd prometheus; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
        $sudo systemctl stop "$service" || true
        [ "$service" = ejabberd ] || $sudo systemctl disable "$service" 2>/dev/null || true
    fi
done
