#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ejabberd memory and open files per logged-in idle XMPP over WebSocket user, direct (ejabberd's own /ws) against
# through Megaphone (the ECMs' /xmpp-websocket, streams on the links, mod_megaphone_ws): bench/ejabberd-memory.sh
# with TRANSPORT=ws (its env and output, in bench/results/<date>-ejabberd-memory-ws/). E.g. (docs/benchmarks.md):
#   POINTS="2000 20000" DIRECT_MAX=19800 ECMS=2 RAMP=100 bench/ejabberd-memory-ws.sh
TRANSPORT=ws exec "$(dirname "$0")/ejabberd-memory.sh" "$@"
