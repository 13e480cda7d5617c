#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private ejabberd (Debian package) with this repository's mod_megaphone,
# for tests and the demo. Everything lives in DIR; several instances can
# run at once (no epmd: ERL_DIST_PORT on 127.0.0.1).
#
#   scripts/private-ejabberd.sh start DIR
#   scripts/private-ejabberd.sh register DIR USER PASSWORD
#   scripts/private-ejabberd.sh ctl DIR ARGS...
#   scripts/private-ejabberd.sh eval DIR 'ERLANG EXPRESSION'
#   scripts/private-ejabberd.sh join DIR OTHER_NODE
#   scripts/private-ejabberd.sh stop DIR
#
# start prints one line:
#   ejabberd <version> started: node=<node> c2s=<port> bosh=http://<ip>:<port>/http-bind link=<ip>:<port>
# (ejabberd's own XMPP over WebSocket is at ws://<ip>:<http port>/ws)
# eval evaluates the expression on the running node and prints its value
# (~p), e.g. 'code:which(ejabberd_bosh).'.
#
# Environment for start (optional unless noted): MEGAPHONE_SECRET (required;
# at least 32 bytes; several lines for a rotation), EJ_MAX_PENDING_LINKS,
# EJ_DOMAIN (localhost), EJ_NODE (megaphone<linkport>@localhost), EJ_DIST_PORT,
# EJ_C2S_PORT, EJ_HTTP_PORT, EJ_LINK_PORT (a free loopback port when unset;
# a restart of the same DIR reuses the ports saved in DIR/instance.env),
# EJ_MAX_INFLIGHT, EJ_MAX_FRAME (mod_megaphone's max_frame_size), EJ_ORDER_TIMEOUT (its order_timeout, ms),
# EJ_MAX_STREAMS (its max_streams: WebSocket streams per link),
# EJ_MAX_PROCESSES (ERL_PROCESSES, the Erlang
# VM's +P; ejabberdctl's default 250,000 caps a node at about 120,000 BOSH users through Megaphone: 2 processes
# per user), EJ_METRICS_CACHE_TIME (mod_megaphone's metrics_cache_time in ms, 1000; the
# metrics are at http://<ip>:<http port>/megaphone/metrics),
# EJ_IP (127.0.0.1: the address every listener and the
# Erlang distribution bind to), EJ_COOKIE (the Erlang cookie, written to
# DIR/.erlang.cookie; unset: a random one per DIR), EJ_EXTRA_EBIN (a folder
# of .beam files, copied to DIR/extra-ebin and put first in the code path
# with -pa, so that its modules replace ejabberd's own: ejabberd/upstream/
# builds a patched ejabberd_bosh for it; not under a folder named ejabberd,
# which would break ejabberd's translations), EJ_MAX_STANZA_SIZE (the c2s
# listener's max_stanza_size, 262144), EJ_SHAPED_USERS_RATE (unset: no shaper;
# else the c2s listener's shaper rule gives users whose name starts with
# "shaped" a shaper of that many bytes per second, and everyone else none).
#
# TLS on the link (off unless both are set): EJ_LINK_TLS_CERTFILE and
# EJ_LINK_TLS_KEYFILE (PEM server certificate chain and key), optional
# EJ_LINK_TLS_CAFILE (PEM CA of client certificates) and
# EJ_LINK_TLS_VERIFY_CLIENT=true (mutual TLS, needs the CA file). The files
# are copied into DIR/tls (owned by the ejabberd user) and mod_megaphone
# gets tls: true with those copies.
#
# A cluster on one machine (see src/test/java/io/megaphone/cluster/): with
# ERL_DIST_PORT and no epmd, a node reaches every other node at its own dist
# port, so give the nodes the same EJ_DIST_PORT and EJ_COOKIE, a long node
# name on their own loopback address each (EJ_IP=127.0.0.2
# EJ_NODE=megaphone@127.0.0.2, EJ_IP=127.0.0.3 EJ_NODE=megaphone@127.0.0.3),
# then on the second one: join DIR megaphone@127.0.0.2 (ejabberdctl
# join_cluster; its mnesia data is replaced by the cluster's).
#
# Must run as root (sudo is fine) or as the ejabberd user: ejabberdctl refuses
# anyone else. As root, ejabberdctl runs as user ejabberd through setpriv
# instead of su (su goes through PAM, which lowers the open-file limit to
# 1024), so DIR must be reachable by that user: not under a mode-700 folder
# such as /root or most home folders (start checks it and says so). The
# module's beams are copied into DIR; ejabberd reads nothing in the checkout.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
MODULE_SRC="$REPO/ejabberd/mod_megaphone"
EJABBERDCTL="${EJABBERDCTL:-/usr/sbin/ejabberdctl}"
EJ_USER=ejabberd
START_TIMEOUT=60
STOP_TIMEOUT=15

die() { echo "private-ejabberd: $*" >&2; exit 1; }

usage() {
    sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Prints N distinct free TCP ports on 127.0.0.1.
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

# Checks the port listens without connecting (a probe connection would be
# logged by mod_megaphone as a link closed during the handshake).
port_listens() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Hltn "src $EJ_IP and sport = :$1" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/$EJ_IP/$1") 2>/dev/null
    fi
}

# Runs a command as the ejabberd user (as it is, when not root).
as_ej_user() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid="$EJ_USER" --regid="$EJ_USER" --init-groups "$@"
    else
        "$@"
    fi
}

# Runs ejabberdctl against the instance in $DIR.
ejctl() {
    as_ej_user env "HOME=$DIR" "$EJABBERDCTL" --config-dir "$DIR" --spool "$DIR/db" --logs "$DIR/logs" "$@"
}

# Evaluates the Erlang expression $1 on the running node (a hidden client
# node, as ejabberdctl's: no epmd, the node's dist port, its cookie in DIR).
cmd_eval() {
    local host="${EJ_NODE#*@}" names=-sname
    case "$host" in *.*) names=-name ;; esac
    # shellcheck disable=SC2016
    as_ej_user env "HOME=$DIR" "ERL_INETRC=$DIR/inetrc" "PROBE_NODE=$EJ_NODE" "PROBE_EXPR=$1" \
        erl "$names" "probe$$-$RANDOM@$host" -hidden -noinput -start_epmd false \
        -erl_epmd_port "$EJ_DIST_PORT" -dist_listen false -eval '
            Node = list_to_atom(os:getenv("PROBE_NODE")),
            Text = string:trim(os:getenv("PROBE_EXPR"), trailing, ". \n"),
            {ok, Tokens, _} = erl_scan:string(Text ++ "."),
            {ok, Exprs} = erl_parse:parse_exprs(Tokens),
            case rpc:call(Node, erl_eval, exprs, [Exprs, []], 30000) of
                {value, Value, _} -> io:format("~p~n", [Value]), halt(0);
                {badrpc, Why} -> io:format(standard_error, "eval on ~s: ~p~n", [Node, Why]), halt(1)
            end.'
}

load_instance() {
    [ -f "$DIR/instance.env" ] || die "no instance in $DIR (run: $0 start $DIR)"
    # shellcheck source=/dev/null
    . "$DIR/instance.env"
}

is_running() {
    ejctl status >/dev/null 2>&1
}

pid_alive() {
    local pid
    [ -f "$DIR/ejabberd.pid" ] || return 1
    pid="$(cat "$DIR/ejabberd.pid" 2>/dev/null)" || return 1  # ejabberd removes it as it stops
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

show_log() {
    echo "---- last 40 lines of $DIR/logs/ejabberd.log ----" >&2
    tail -n 40 "$DIR/logs/ejabberd.log" >&2 2>/dev/null || echo "(no log)" >&2
    if ls "$DIR"/logs/erl_crash_*.dump >/dev/null 2>&1; then
        echo "---- crash dump slogan ----" >&2
        grep -m1 '^Slogan' "$DIR"/logs/erl_crash_*.dump >&2 || true
    fi
}

write_config() {
    local secret_file="$DIR/link.secret"
    umask 027
    printf '%s' "$MEGAPHONE_SECRET" > "$secret_file"
    chmod 0640 "$secret_file"

    cat > "$DIR/instance.env" <<ENV
EJ_DOMAIN='$EJ_DOMAIN'
EJ_NODE='$EJ_NODE'
EJ_DIST_PORT='$EJ_DIST_PORT'
EJ_C2S_PORT='$EJ_C2S_PORT'
EJ_HTTP_PORT='$EJ_HTTP_PORT'
EJ_LINK_PORT='$EJ_LINK_PORT'
EJ_IP='$EJ_IP'
ENV

    cat > "$DIR/ejabberdctl.cfg" <<CFG
ERLANG_NODE=$EJ_NODE
ERL_DIST_PORT=$EJ_DIST_PORT
INET_DIST_INTERFACE=$EJ_IP
CONTRIB_MODULES_PATH=$DIR/modules
CONTRIB_MODULES_CONF_DIR=$DIR/modules/conf
EJABBERD_PID_PATH=$DIR/ejabberd.pid
CFG
    if [ -n "${EJ_MAX_PROCESSES:-}" ]; then
        echo "ERL_PROCESSES=$EJ_MAX_PROCESSES" >>"$DIR/ejabberdctl.cfg"
    fi
    rm -rf "$DIR/extra-ebin"
    if [ -n "${EJ_EXTRA_EBIN:-}" ]; then
        ls "$EJ_EXTRA_EBIN"/*.beam >/dev/null 2>&1 || die "EJ_EXTRA_EBIN=$EJ_EXTRA_EBIN has no .beam file"
        mkdir -p "$DIR/extra-ebin"
        cp "$EJ_EXTRA_EBIN"/*.beam "$DIR/extra-ebin/"
        echo "ERL_OPTIONS=\"-pa $DIR/extra-ebin\"" >>"$DIR/ejabberdctl.cfg"
    fi

    cat > "$DIR/ejabberd.yml" <<YML
# Generated by scripts/private-ejabberd.sh; mod_megaphone is loaded the
# ejabberd-contrib way from $DIR/modules (do not list it here too).
hosts:
  - "$EJ_DOMAIN"
loglevel: info
auth_method: internal
default_db: mnesia
listen:
  - port: $EJ_C2S_PORT
    ip: "$EJ_IP"
    module: ejabberd_c2s
    max_stanza_size: ${EJ_MAX_STANZA_SIZE:-262144}
    shaper: $( [ -n "${EJ_SHAPED_USERS_RATE:-}" ] && echo c2s_shaper || echo none )
  - port: $EJ_HTTP_PORT
    ip: "$EJ_IP"
    module: ejabberd_http
    request_handlers:
      /http-bind: mod_bosh
      /ws: ejabberd_http_ws
      /megaphone/metrics: mod_megaphone_prometheus
$( [ -n "${EJ_SHAPED_USERS_RATE:-}" ] && printf 'shaper:\n  shaped_rate: %s\nshaper_rules:\n  c2s_shaper:\n    shaped_rate: shaped_users\n' "$EJ_SHAPED_USERS_RATE" )
acl:
$( [ -n "${EJ_SHAPED_USERS_RATE:-}" ] && printf '  shaped_users:\n    user_regexp: "^shaped"\n' )
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8
      - ::1/128
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
  announce:
    allow: loopback
  configure:
    allow: loopback
  megaphone_metrics:
    allow: loopback
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_admin_extra: {}
  mod_bosh: {}
  mod_disco: {}
  mod_offline: {}
  mod_ping: {}
  mod_roster: {}
  mod_stream_mgmt: {}
YML

    # ejabberdctl points ERL_INETRC at the config dir.
    printf '%s\n' '{lookup,["file","native"]}.' '{host,{127,0,0,1}, ["localhost"]}.' > "$DIR/inetrc"

    local mod="$DIR/modules/mod_megaphone"
    rm -rf "$mod"
    mkdir -p "$mod/conf" "$mod/ebin" "$DIR/modules/conf" "$DIR/db" "$DIR/logs"
    cp "$MODULE_SRC"/ebin/*.beam "$mod/ebin/"
    cp "$MODULE_SRC/mod_megaphone.spec" "$mod/"
    {
        echo "# Generated by scripts/private-ejabberd.sh for this instance."
        echo "modules:"
        echo "  mod_megaphone:"
        echo "    ip: \"$EJ_IP\""
        echo "    port: $EJ_LINK_PORT"
        echo "    secret_file: \"$secret_file\""
        echo "    metrics_access: megaphone_metrics"
        echo "    metrics_cache_time: ${EJ_METRICS_CACHE_TIME:-1000}"
        if [ -n "${EJ_MAX_INFLIGHT:-}" ]; then
            echo "    max_inflight: $EJ_MAX_INFLIGHT"
        fi
        if [ -n "${EJ_MAX_FRAME:-}" ]; then
            echo "    max_frame_size: $EJ_MAX_FRAME"
        fi
        if [ -n "${EJ_MAX_PENDING_LINKS:-}" ]; then
            echo "    max_pending_links: $EJ_MAX_PENDING_LINKS"
        fi
        if [ -n "${EJ_ORDER_TIMEOUT:-}" ]; then
            echo "    order_timeout: $EJ_ORDER_TIMEOUT"
        fi
        if [ -n "${EJ_MAX_STREAMS:-}" ]; then
            echo "    max_streams: $EJ_MAX_STREAMS"
        fi
    } > "$mod/conf/mod_megaphone.yml"
    write_link_tls "$mod/conf/mod_megaphone.yml"

    if [ -n "${EJ_COOKIE:-}" ]; then
        rm -f "$DIR/.erlang.cookie"
        printf '%s' "$EJ_COOKIE" > "$DIR/.erlang.cookie"
        chmod 0400 "$DIR/.erlang.cookie"
    fi

    if [ "$(id -u)" = 0 ]; then
        chown -R "$EJ_USER:$EJ_USER" "$DIR"
        as_ej_user test -r "$DIR/ejabberd.yml" \
            || die "user $EJ_USER cannot reach $DIR (a parent folder is closed to it, e.g. mode 700 like /root or a home folder): use an instance folder outside it, e.g. under /var/tmp"
    fi
}

# TLS on the link (EJ_LINK_TLS_*): copies the PEM files into DIR/tls and
# appends the options to mod_megaphone's conf file $1.
write_link_tls() {
    local conf="$1"
    if [ -z "${EJ_LINK_TLS_CERTFILE:-}" ] && [ -z "${EJ_LINK_TLS_KEYFILE:-}" ]; then
        return 0
    fi
    [ -n "${EJ_LINK_TLS_CERTFILE:-}" ] && [ -n "${EJ_LINK_TLS_KEYFILE:-}" ] \
        || die "EJ_LINK_TLS_CERTFILE and EJ_LINK_TLS_KEYFILE go together"
    local tls="$DIR/tls" f
    mkdir -p "$tls"
    chmod 0750 "$tls"
    for f in "$EJ_LINK_TLS_CERTFILE" "$EJ_LINK_TLS_KEYFILE" ${EJ_LINK_TLS_CAFILE:+"$EJ_LINK_TLS_CAFILE"}; do
        [ -r "$f" ] || die "cannot read TLS file $f"
    done
    install -m 0640 "$EJ_LINK_TLS_CERTFILE" "$tls/link-cert.pem"
    install -m 0640 "$EJ_LINK_TLS_KEYFILE" "$tls/link-key.pem"
    {
        echo "    tls: true"
        echo "    certfile: \"$tls/link-cert.pem\""
        echo "    keyfile: \"$tls/link-key.pem\""
        if [ -n "${EJ_LINK_TLS_CAFILE:-}" ]; then
            install -m 0640 "$EJ_LINK_TLS_CAFILE" "$tls/link-ca.pem"
            echo "    cafile: \"$tls/link-ca.pem\""
        fi
        if [ "${EJ_LINK_TLS_VERIFY_CLIENT:-false}" = true ]; then
            echo "    verify_client: true"
        fi
    } >> "$conf"
}

cmd_start() {
    [ -n "${MEGAPHONE_SECRET:-}" ] || die "MEGAPHONE_SECRET is not set (the link secret is required)"
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd -P)"
    if [ -f "$DIR/instance.env" ] && is_running; then
        die "an ejabberd already runs in $DIR (stop it first: $0 stop $DIR)"
    fi

    make -s -C "$MODULE_SRC" >&2 || die "building mod_megaphone failed"

    # Ports: environment, else the ones this DIR used before (its mnesia
    # schema is bound to the node name), else free ones.
    local saved_domain="" saved_node="" saved_dist="" saved_c2s="" saved_http="" saved_link="" saved_ip=""
    if [ -f "$DIR/instance.env" ]; then
        saved_ip="$(sed -n "s/^EJ_IP='\(.*\)'\$/\1/p" "$DIR/instance.env")"
        # shellcheck source=/dev/null
        saved_domain="$(. "$DIR/instance.env"; echo "$EJ_DOMAIN")"
        # shellcheck source=/dev/null
        saved_node="$(. "$DIR/instance.env"; echo "$EJ_NODE")"
        # shellcheck source=/dev/null
        read -r saved_dist saved_c2s saved_http saved_link < <(. "$DIR/instance.env"; echo "$EJ_DIST_PORT $EJ_C2S_PORT $EJ_HTTP_PORT $EJ_LINK_PORT")
    fi
    local free
    read -r -a free <<< "$(free_ports 4)"
    EJ_DOMAIN="${EJ_DOMAIN:-${saved_domain:-localhost}}"
    EJ_IP="${EJ_IP:-${saved_ip:-127.0.0.1}}"
    EJ_DIST_PORT="${EJ_DIST_PORT:-${saved_dist:-${free[0]}}}"
    EJ_C2S_PORT="${EJ_C2S_PORT:-${saved_c2s:-${free[1]}}}"
    EJ_HTTP_PORT="${EJ_HTTP_PORT:-${saved_http:-${free[2]}}}"
    EJ_LINK_PORT="${EJ_LINK_PORT:-${saved_link:-${free[3]}}}"
    EJ_NODE="${EJ_NODE:-${saved_node:-megaphone${EJ_LINK_PORT}@localhost}}"

    write_config
    rm -f "$DIR/ejabberd.pid"

    ejctl start >/dev/null 2>&1 || true  # exits 0 even when startup fails

    local deadline=$((SECONDS + START_TIMEOUT)) status=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        if status="$(ejctl status 2>/dev/null)" && port_listens "$EJ_LINK_PORT"; then
            local version
            version="$(printf '%s\n' "$status" | sed -n 's/^ejabberd \([^ ]*\) is running.*/\1/p')"
            echo "ejabberd ${version:-?} started: node=$EJ_NODE c2s=$EJ_C2S_PORT bosh=http://$EJ_IP:$EJ_HTTP_PORT/http-bind link=$EJ_IP:$EJ_LINK_PORT"
            return 0
        fi
        # Fail fast when the VM already gave up (a module start failed, ...).
        if grep -q "initialization was aborted" "$DIR/logs/ejabberd.log" 2>/dev/null \
           || { [ -f "$DIR/ejabberd.pid" ] && ! pid_alive; }; then
            break
        fi
        sleep 0.5
    done
    echo "private-ejabberd: ejabberd in $DIR did not start (waited up to ${START_TIMEOUT}s; node $EJ_NODE, link port $EJ_LINK_PORT)" >&2
    show_log
    cmd_stop >/dev/null 2>&1 || true
    exit 1
}

# Joins this instance to the cluster of OTHER_NODE (ejabberdctl join_cluster:
# this node's mnesia data is replaced by the cluster's, and ejabberd restarts
# its applications here), then waits until it serves again and prints
# list_cluster.
cmd_join() {
    local other="$1"
    DIR="$(cd "$DIR" && pwd -P)"
    load_instance
    EJ_IP="${EJ_IP:-127.0.0.1}"
    is_running || die "no ejabberd runs in $DIR (start it first)"
    local out
    if ! out="$(ejctl join_cluster "$other" 2>&1)"; then
        echo "$out" >&2
        show_log
        die "join_cluster $other failed on $EJ_NODE"
    fi
    local deadline=$((SECONDS + START_TIMEOUT)) cluster=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        if cluster="$(ejctl list_cluster 2>/dev/null)" \
           && printf '%s\n' "$cluster" | grep -qF "$other" \
           && ejctl status >/dev/null 2>&1 && port_listens "$EJ_LINK_PORT"; then
            printf '%s\n' "$cluster"
            return 0
        fi
        sleep 0.5
    done
    echo "private-ejabberd: $EJ_NODE did not serve as a member of $other's cluster within ${START_TIMEOUT}s" >&2
    show_log
    exit 1
}

cmd_stop() {
    if [ ! -f "$DIR/instance.env" ]; then
        echo "private-ejabberd: nothing to stop in $DIR"
        return 0
    fi
    DIR="$(cd "$DIR" && pwd -P)"
    if is_running; then
        ejctl stop >/dev/null 2>&1 || true
    fi
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ] && { pid_alive || is_running; }; do
        sleep 0.5
    done
    if pid_alive; then
        local pid
        pid="$(cat "$DIR/ejabberd.pid")"
        echo "private-ejabberd: ejabberd (pid $pid) did not stop within ${STOP_TIMEOUT}s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/ejabberd.pid"
    echo "private-ejabberd: stopped $DIR"
}

[ $# -ge 2 ] || usage
if [ "$(id -u)" != 0 ] && [ "$(id -un)" != "$EJ_USER" ]; then
    die "must run as root (e.g. with sudo) or as user $EJ_USER: ejabberdctl refuses anyone else, and as root it runs ejabberd as user $EJ_USER"
fi
CMD="$1"
DIR="$2"
shift 2

case "$CMD" in
    start)
        [ $# -eq 0 ] || usage
        cmd_start
        ;;
    stop)
        [ $# -eq 0 ] || usage
        cmd_stop
        ;;
    register)
        [ $# -eq 2 ] || usage
        DIR="$(cd "$DIR" && pwd -P)"
        load_instance
        ejctl register "$1" "$EJ_DOMAIN" "$2"
        ;;
    join)
        [ $# -eq 1 ] || usage
        cmd_join "$1"
        ;;
    ctl)
        [ $# -ge 1 ] || usage
        DIR="$(cd "$DIR" && pwd -P)"
        load_instance
        ejctl "$@"
        ;;
    eval)
        [ $# -eq 1 ] || usage
        DIR="$(cd "$DIR" && pwd -P)"
        load_instance
        cmd_eval "$1"
        ;;
    *)
        usage
        ;;
esac
