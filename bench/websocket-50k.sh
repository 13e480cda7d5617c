#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# 50,000 XMPP over WebSocket users on one ejabberd through several ECMs: bench/open-files.sh with TRANSPORT=ws
# (its env and output, in bench/results/<date>-websocket-<N>/): N users over ECMS ECMs (LINKS links each) from
# LOADGENS load generators (127.0.x.y sources), 0 failed logins expected; SENDERS per load generator chat at
# MSG_RATE/s during and after the ramp, each message counted exactly once (summary.json: sent, received, lost,
# duplicated). Defaults here: N=50000 ECMS=4 LOADGENS=4 LINKS=2 RAMP=100 (users/s in all) WARMUP_USERS=1000.
export TRANSPORT=ws N=${N:-50000} ECMS=${ECMS:-4} LOADGENS=${LOADGENS:-4} LINKS=${LINKS:-2} RAMP=${RAMP:-100}
export WARMUP_USERS=${WARMUP_USERS:-1000}
exec "$(dirname "$0")/open-files.sh" "$@"
