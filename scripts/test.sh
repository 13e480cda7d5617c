#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite: installs what is missing, then runs mod_megaphone's eunit tests and the ECM's
# tests (unit tests, the Helm chart's with `promtool test rules` on its alerts, and end-to-end tests against a real,
# private ejabberd started on free loopback ports), then the README's demo from a mode-700 folder
# (scripts/demo-test.sh). Needs root (sudo bash scripts/test.sh).
# The JDK: $MEGAPHONE_JDK when set (a JDK's home, e.g. CI's matrix), else a JDK 25 where one is installed (the
# shipped runtime, docs/operations.md), else the JDK 17+ that install-deps.sh provides. The ECMs that the tests
# start run on the same JDK.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" != 0 ]; then
    echo "test: needs root: it installs packages, and the tests start private ejabberd instances, which ejabberdctl" \
         "runs as the ejabberd user only when root starts them. Run: sudo bash scripts/test.sh $*" >&2
    exit 1
fi

bash scripts/install-deps.sh

jdk="${MEGAPHONE_JDK:-}"
if [ -z "$jdk" ]; then
    for candidate in ${JAVA_HOME_25_X64:-} /usr/lib/jvm/temurin-25-jdk-* /usr/lib/jvm/java-25-openjdk-*; do
        if [ -x "$candidate/bin/javac" ]; then jdk=$candidate; break; fi
    done
fi
if [ -n "$jdk" ]; then
    [ -x "$jdk/bin/javac" ] || { echo "MEGAPHONE_JDK: $jdk has no bin/javac (expected: a JDK's home)" >&2; exit 1; }
    export JAVA_HOME="$jdk" PATH="$jdk/bin:$PATH"
fi
echo "== JDK: $(java -version 2>&1 | head -n 1) (${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")})"
echo "== ejabberd: $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null || echo unknown), erlc: $(command -v erlc), $(promtool --version 2>&1 | head -1)"

echo "== mod_megaphone: eunit"
make -C ejabberd/mod_megaphone clean test

echo "== real web clients: npm ci in clients/ (node $(node --version), $(/usr/bin/chromium --version 2>/dev/null))"
npm ci --prefix clients --no-audit --no-fund

echo "== load generator: loadgen/target/megaphone-loadgen.jar (LoadGeneratorSmokeTest runs it)"
./mvnw -B -ntp -q -f loadgen/pom.xml package

echo "== ECM: unit and end-to-end tests (Maven)"
./mvnw -B -ntp verify "$@"

echo "== the README's demo from a checkout under a mode-700 folder (scripts/demo-test.sh)"
bash scripts/demo-test.sh
