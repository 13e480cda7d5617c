#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite: installs what is missing, then runs mod_megaphone's eunit tests and the ECM's
# tests (unit tests, the Helm chart's with `promtool test rules` on its alerts, and end-to-end tests against a real,
# private ejabberd started on free loopback ports).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
echo "== ejabberd: $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null || echo unknown), erlc: $(command -v erlc), $(promtool --version 2>&1 | head -1)"

echo "== mod_megaphone: eunit"
make -C ejabberd/mod_megaphone clean test

echo "== real web clients: npm ci in clients/ (node $(node --version), $(/usr/bin/chromium --version 2>/dev/null))"
npm ci --prefix clients --no-audit --no-fund

echo "== load generator: loadgen/target/megaphone-loadgen.jar (LoadGeneratorSmokeTest runs it)"
./mvnw -B -ntp -q -f loadgen/pom.xml package

echo "== ECM: unit and end-to-end tests (Maven)"
./mvnw -B -ntp verify "$@"
