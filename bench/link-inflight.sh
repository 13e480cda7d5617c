#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What N requests held by ejabberd cost mod_megaphone on one link: N stand-in BOSH sessions (one held request
# each) behind the real link, sequencer shards and registry (mod_megaphone_link_tests:bench/1, the eunit case
# "held_requests_cost_the_link_no_process_and_no_heap" at a size eunit does not run). Prints the link process's
# memory before and while holding them, its ETS table of ids, one GC of the link, the shards' tables, the
# processes added, and, beside it, a process with the same number of entries in a map on its heap (the link's
# table before issue 21).
#   bench/link-inflight.sh [N]        # N: 250000 by default; installs ejabberd and erlang-proper-dev if missing
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd -P)"
. "$REPO/bench/common.sh"
bench_needs erl:erlang-base erlc:erlang-dev make /usr/sbin/ejabberdctl:ejabberd \
    "/usr/lib/erlang/lib/proper-*/include:erlang-proper-dev"
N=${1:-250000}
MOD="$REPO/ejabberd/mod_megaphone"
make -s -C "$MOD" all
OUT=$(mktemp -d /tmp/link-inflight.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
EBIN=$(make -s -C "$MOD" --no-print-directory -f - print-ebin <<'MK'
include Makefile
print-ebin: ; @echo $(EJABBERD_EBIN)
MK
)
for t in mod_megaphone_link_tests mod_megaphone_fake_session mod_megaphone_test_util; do
    erlc -I "$MOD/include" -pa "$MOD/ebin" -o "$OUT" "$MOD/test/$t.erl"
done
erl +P 2000000 -noshell -pa "$MOD/ebin" -pa "$OUT" -pa "$EBIN" \
    -eval "mod_megaphone_link_tests:bench($N), halt(0)." 2>&1 | grep -v "REPORT\|^mod_megaphone link"
