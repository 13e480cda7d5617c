#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Entry point of the ejabberd + mod_megaphone image (ejabberd/Dockerfile): writes ejabberd's configuration from
# the environment into $CONFIG_DIR, then runs ejabberd in the foreground as the ejabberd user.
#
#   EJABBERD_DOMAIN               XMPP domain (vhost)                                  localhost
#   EJABBERD_ADMIN                admin JID (acl admin: configure, ejabberdctl over XMPP)  admin@$EJABBERD_DOMAIN
#   EJABBERD_ADMIN_PASSWORD_FILE  registers EJABBERD_ADMIN with this password once ejabberd runs   (unset: no)
#                                 (read by an Erlang client node: the password is on no command line)
#   EJABBERD_C2S_PORT             XMPP client port                                     5222
#   EJABBERD_HTTP_PORT            ejabberd's own BOSH on /http-bind (unset: no HTTP listener; the ECM serves BOSH)
#   EJABBERD_LOGLEVEL             ejabberd log level                                   info
#   MEGAPHONE_LINK_IP             address mod_megaphone's link listener binds          0.0.0.0
#   MEGAPHONE_LINK_PORT           link port (the ECMs' megaphone.link.nodes)           5290
#   MEGAPHONE_LINK_SECRET_FILE    file holding the link secret (a mounted Secret)      /run/secrets/megaphone-link-secret
#   MEGAPHONE_LINK_SECRET         the secret itself, when there is no file (written to $CONFIG_DIR, mode 0600)
#   MEGAPHONE_MAX_INFLIGHT        mod_megaphone max_inflight (requests per link)       10000
#   EJABBERD_MAX_PROCESSES        Erlang process limit (+P, ERL_PROCESSES): 2 per BOSH user through Megaphone,
#                                 a million users; Debian's ejabberdctl default of 250,000 stops near 120,000  2097152
#   MEGAPHONE_METRICS_PORT        Prometheus metrics at http://<pod>:<port>/megaphone/metrics, an ejabberd_http
#                                 listener of their own (empty: none)                  5281
#   MEGAPHONE_METRICS_IP          address that listener binds (keep it off the Internet) 0.0.0.0
#
#   EJABBERD_NODE                 Erlang node name                                     ejabberd@$(hostname -f)
#                                 (a pod's FQDN under a headless Service: ejabberd-0.ejabberd-headless.xmpp.svc.cluster.local)
#   EJABBERD_DIST_PORT            Erlang distribution port, the same on every node (no epmd)   5210
#   EJABBERD_COOKIE_FILE          file holding the Erlang cookie (a mounted Secret); copied to $HOME/.erlang.cookie
#                                 (unset or missing: Erlang makes one, so the node cannot cluster)  /run/secrets/ejabberd-cookie
#   EJABBERD_CLUSTER_SEED         host (or node name) of the node the others join, e.g. the first pod's FQDN; every
#                                 other node runs `ejabberdctl join_cluster` once it is started, unless it already is
#                                 in the seed's cluster (a restart keeps its mnesia); empty: no clustering
#   EJABBERD_CLUSTER_JOIN_TIMEOUT seconds to keep trying the join (the seed may start later); then the node stops  600
#   EJABBERD_CONF_D               folder of the operator's own ejabberd configuration: every *.yml in it is added
#                                 with include_config_file (TLS for c2s, SQL, more listeners or modules) /etc/ejabberd/conf.d
#   EJABBERD_MAX_PORTS            Erlang port limit (ERL_MAX_PORTS: sockets and files)  1048576
#   EJABBERD_READY_FILE           written once the node is started, joined and its admin registered (a readiness
#                                 probe's `test -e`); removed at each start           /tmp/megaphone-ejabberd.ready
#
# Arguments replace "foreground" (e.g. "live" for a shell). Other ejabberdctl commands run next to it:
#   podman exec CONTAINER ejabberdctl register alice localhost secret
set -eu

die() { echo "megaphone-ejabberd: $*" >&2; exit 1; }

: "${CONFIG_DIR:?CONFIG_DIR must be set (the image sets it)}"
EJABBERD_DOMAIN="${EJABBERD_DOMAIN:-localhost}"
EJABBERD_ADMIN="${EJABBERD_ADMIN:-admin@$EJABBERD_DOMAIN}"
EJABBERD_C2S_PORT="${EJABBERD_C2S_PORT:-5222}"
EJABBERD_LOGLEVEL="${EJABBERD_LOGLEVEL:-info}"
MEGAPHONE_LINK_IP="${MEGAPHONE_LINK_IP:-0.0.0.0}"
MEGAPHONE_LINK_PORT="${MEGAPHONE_LINK_PORT:-5290}"
MEGAPHONE_LINK_SECRET_FILE="${MEGAPHONE_LINK_SECRET_FILE:-/run/secrets/megaphone-link-secret}"
MEGAPHONE_MAX_INFLIGHT="${MEGAPHONE_MAX_INFLIGHT:-10000}"
EJABBERD_MAX_PROCESSES="${EJABBERD_MAX_PROCESSES:-2097152}"
EJABBERD_MAX_PORTS="${EJABBERD_MAX_PORTS:-1048576}"
EJABBERD_DIST_PORT="${EJABBERD_DIST_PORT:-5210}"
EJABBERD_COOKIE_FILE="${EJABBERD_COOKIE_FILE:-/run/secrets/ejabberd-cookie}"
EJABBERD_CLUSTER_SEED="${EJABBERD_CLUSTER_SEED:-}"
EJABBERD_CLUSTER_JOIN_TIMEOUT="${EJABBERD_CLUSTER_JOIN_TIMEOUT:-600}"
EJABBERD_CONF_D="${EJABBERD_CONF_D:-/etc/ejabberd/conf.d}"
EJABBERD_READY_FILE="${EJABBERD_READY_FILE:-/tmp/megaphone-ejabberd.ready}"
if [ -z "${EJABBERD_NODE:-}" ]; then
    fqdn="$(hostname -f 2>/dev/null || true)"
    [ -n "$fqdn" ] || fqdn="$(hostname)"
    EJABBERD_NODE="ejabberd@$fqdn"
fi
case "$EJABBERD_NODE" in
    ?*@?*) ;;
    *) die "EJABBERD_NODE: $EJABBERD_NODE (expected: name@host)" ;;
esac
case "$EJABBERD_CLUSTER_SEED" in
    ''|*@*) seed_node="$EJABBERD_CLUSTER_SEED" ;;
    *) seed_node="${EJABBERD_NODE%%@*}@$EJABBERD_CLUSTER_SEED" ;;
esac
export EJABBERD_NODE
MEGAPHONE_METRICS_PORT="${MEGAPHONE_METRICS_PORT-5281}"
MEGAPHONE_METRICS_IP="${MEGAPHONE_METRICS_IP:-0.0.0.0}"

case "$EJABBERD_ADMIN" in
    *@*) ;;
    *) die "EJABBERD_ADMIN: $EJABBERD_ADMIN (expected: a JID, user@domain)" ;;
esac
for port in "$EJABBERD_C2S_PORT" "$MEGAPHONE_LINK_PORT" "$EJABBERD_DIST_PORT" ${EJABBERD_HTTP_PORT:+"$EJABBERD_HTTP_PORT"} \
        ${MEGAPHONE_METRICS_PORT:+"$MEGAPHONE_METRICS_PORT"}; do
    case "$port" in
        ''|*[!0-9]*) die "port: '$port' (expected: a number, 1-65535)" ;;
    esac
done

for n in "$EJABBERD_MAX_PROCESSES" "$EJABBERD_MAX_PORTS" "$EJABBERD_CLUSTER_JOIN_TIMEOUT"; do
    case "$n" in
        ''|*[!0-9]*) die "limit: '$n' (expected: a number)" ;;
    esac
done

umask 077
mkdir -p "$CONFIG_DIR/modules.d"
rm -f "$EJABBERD_READY_FILE"

# The Erlang cookie: erl reads $HOME/.erlang.cookie, which must be the user's own and mode 0400 (a mounted
# Secret is owned by root), so the file is copied there.
: "${HOME:?HOME must be set (the image sets it)}"
if [ -r "$EJABBERD_COOKIE_FILE" ] && [ -s "$EJABBERD_COOKIE_FILE" ]; then
    rm -f "$HOME/.erlang.cookie"
    tr -d '\n' < "$EJABBERD_COOKIE_FILE" > "$HOME/.erlang.cookie"
    chmod 0400 "$HOME/.erlang.cookie"
elif [ -n "$seed_node" ]; then
    die "EJABBERD_CLUSTER_SEED is set but there is no cookie: mount it at $EJABBERD_COOKIE_FILE (readable by uid $(id -u)) or set EJABBERD_COOKIE_FILE"
fi

# The link secret: a file (a mounted Kubernetes or podman Secret) is read by mod_megaphone itself.
if [ -n "${MEGAPHONE_LINK_SECRET:-}" ]; then
    secret_file="$CONFIG_DIR/megaphone-link.secret"
    printf '%s' "$MEGAPHONE_LINK_SECRET" > "$secret_file"
elif [ -r "$MEGAPHONE_LINK_SECRET_FILE" ] && [ -s "$MEGAPHONE_LINK_SECRET_FILE" ]; then
    secret_file="$MEGAPHONE_LINK_SECRET_FILE"
else
    die "no link secret: mount it at $MEGAPHONE_LINK_SECRET_FILE (readable by uid $(id -u)) or set MEGAPHONE_LINK_SECRET_FILE or MEGAPHONE_LINK_SECRET"
fi

# ejabberdctl reads this file (the image sets CONFIG_DIR): the node's name, and one distribution port on every
# node, on all interfaces, without epmd (the other nodes of the cluster and "ejabberdctl" in the container reach it).
cat > "$CONFIG_DIR/ejabberdctl.cfg" <<CFG
ERLANG_NODE=$EJABBERD_NODE
ERL_DIST_PORT=$EJABBERD_DIST_PORT
${EJABBERD_DIST_INTERFACE:+INET_DIST_INTERFACE=$EJABBERD_DIST_INTERFACE}
CONTRIB_MODULES_PATH=$CONTRIB_MODULES_PATH
CONTRIB_MODULES_CONF_DIR=$CONFIG_DIR/modules.d
ERL_PROCESSES=$EJABBERD_MAX_PROCESSES
ERL_MAX_PORTS=$EJABBERD_MAX_PORTS
CFG
printf '%s\n' '{lookup,["file","native"]}.' '{host,{127,0,0,1}, ["localhost"]}.' > "$CONFIG_DIR/inetrc"

# The operator's own configuration, included after the generated options (ejabberd merges lists and maps: an
# included `listen` entry or module is added, a plain option such as `loglevel` replaced).
includes=""
if [ -d "$EJABBERD_CONF_D" ]; then
    for f in "$EJABBERD_CONF_D"/*.yml; do
        [ -e "$f" ] || continue
        [ -r "$f" ] || die "EJABBERD_CONF_D: cannot read $f"
        includes="$includes
  - \"$f\""
    done
fi
include_config=""
[ -z "$includes" ] || include_config="include_config_file:$includes"

http_listener=""
if [ -n "${EJABBERD_HTTP_PORT:-}" ]; then
    http_listener="  - port: $EJABBERD_HTTP_PORT
    ip: \"0.0.0.0\"
    module: ejabberd_http
    request_handlers:
      /http-bind: mod_bosh"
fi
# mod_megaphone's metrics on a listener of their own, so that the port Prometheus scrapes serves nothing else.
metrics_listener=""
if [ -n "$MEGAPHONE_METRICS_PORT" ]; then
    metrics_listener="  - port: $MEGAPHONE_METRICS_PORT
    ip: \"$MEGAPHONE_METRICS_IP\"
    module: ejabberd_http
    request_handlers:
      /megaphone/metrics: mod_megaphone_prometheus"
fi

cat > "$CONFIG_DIR/ejabberd.yml" <<YML
# Generated by megaphone-ejabberd (the image's entry point) from the environment.
# mod_megaphone is loaded the ejabberd-contrib way: $CONTRIB_MODULES_PATH/mod_megaphone
# with its options in $CONFIG_DIR/modules.d/mod_megaphone.yml (do not list it here too).
hosts:
  - "$EJABBERD_DOMAIN"
loglevel: $EJABBERD_LOGLEVEL
auth_method: internal
default_db: mnesia
listen:
  - port: $EJABBERD_C2S_PORT
    ip: "0.0.0.0"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
$http_listener
$metrics_listener
shaper:
  normal: 1000
  fast: 50000
shaper_rules:
  c2s_shaper:
    none: admin
    normal: all
acl:
  admin:
    user: "$EJABBERD_ADMIN"
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
  announce:
    allow: admin
  configure:
    allow: admin
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
$include_config
YML

cat > "$CONFIG_DIR/modules.d/mod_megaphone.yml" <<YML
# Generated by megaphone-ejabberd from the environment.
modules:
  mod_megaphone:
    ip: "$MEGAPHONE_LINK_IP"
    port: $MEGAPHONE_LINK_PORT
    secret_file: "$secret_file"
    max_inflight: $MEGAPHONE_MAX_INFLIGHT
YML

# rpc MODULE FUNCTION ARGS: calls the running node from a hidden Erlang client node; ARGS is an Erlang list
# expression that may read files (so no secret is on a command line). Prints the result; fails unless it is ok.
rpc() {
    host="${EJABBERD_NODE#*@}"
    case "$host" in *.*) name_flag=-name ;; *) name_flag=-sname ;; esac
    erl "$name_flag" "megaphone-rpc-$$@$host" -hidden -noinput -start_epmd false -dist_listen false \
        -erl_epmd_port "$EJABBERD_DIST_PORT" -eval "
        R = rpc:call(list_to_atom(os:getenv(\"EJABBERD_NODE\")), $1, $2, $3, 60000),
        io:format(\"~p~n\", [R]),
        halt(case R of ok -> 0; {error, exists} -> 0; _ -> 1 end)."
}

in_cluster() { # in_cluster NODE: NODE is a member of this node's cluster
    ejabberdctl list_cluster 2>/dev/null | tr -d "'" | grep -qxF "$1"
}

if [ -n "${EJABBERD_ADMIN_PASSWORD_FILE:-}" ] && [ ! -r "$EJABBERD_ADMIN_PASSWORD_FILE" ]; then
    die "EJABBERD_ADMIN_PASSWORD_FILE: cannot read $EJABBERD_ADMIN_PASSWORD_FILE"
fi

# After the start, in the background (ejabberd runs in the foreground below): the join, the admin account, then the
# ready file. A node that cannot join within the timeout stops (TERM to ejabberd), so that it is restarted.
main_pid=$$
(
    set +e
    if ! ejabberdctl started >/dev/null 2>&1; then
        echo "megaphone-ejabberd: $EJABBERD_NODE did not start within 60 s" >&2
        exit 1
    fi
    if [ -n "$seed_node" ] && [ "$seed_node" != "$EJABBERD_NODE" ]; then
        deadline=$(( $(date +%s) + EJABBERD_CLUSTER_JOIN_TIMEOUT ))
        if in_cluster "$seed_node"; then
            echo "megaphone-ejabberd: $EJABBERD_NODE already is in the cluster of $seed_node"
        else
            # The membership is what counts, not join_cluster's exit status: ejabberd 24.12 restarts the node inside
            # join_cluster, and the call can then fail although the join took.
            until in_cluster "$seed_node"; do
                out="$(ejabberdctl join_cluster "$seed_node" 2>&1)"
                ejabberdctl started >/dev/null 2>&1
                in_cluster "$seed_node" && break
                if [ "$(date +%s)" -ge "$deadline" ]; then
                    echo "megaphone-ejabberd: $EJABBERD_NODE could not join $seed_node within ${EJABBERD_CLUSTER_JOIN_TIMEOUT} s ($out); stopping" >&2
                    kill -TERM "$main_pid"
                    exit 1
                fi
                sleep 5
            done
            echo "megaphone-ejabberd: $EJABBERD_NODE joined the cluster of $seed_node: $(ejabberdctl list_cluster | tr -d "'" | tr '\n' ' ')"
        fi
        ejabberdctl started >/dev/null 2>&1
    fi
    if [ -n "${EJABBERD_ADMIN_PASSWORD_FILE:-}" ]; then
        out="$(EJABBERD_ADMIN="$EJABBERD_ADMIN" PASSWORD_FILE="$EJABBERD_ADMIN_PASSWORD_FILE" rpc ejabberd_auth try_register '
            begin
                {ok, P} = file:read_file(os:getenv("PASSWORD_FILE")),
                [U, H] = string:split(list_to_binary(os:getenv("EJABBERD_ADMIN")), <<"@">>),
                [U, H, string:trim(P)]
            end' 2>&1)" \
            || echo "megaphone-ejabberd: registering $EJABBERD_ADMIN failed: $out" >&2
    fi
    touch "$EJABBERD_READY_FILE"
    echo "megaphone-ejabberd: $EJABBERD_NODE ready"
) &

echo "megaphone-ejabberd: ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null) node=$EJABBERD_NODE${seed_node:+ seed=$seed_node} domain=$EJABBERD_DOMAIN c2s=$EJABBERD_C2S_PORT link=$MEGAPHONE_LINK_IP:$MEGAPHONE_LINK_PORT${EJABBERD_HTTP_PORT:+ http=$EJABBERD_HTTP_PORT} admin=$EJABBERD_ADMIN"
[ $# -gt 0 ] || set -- foreground
exec ejabberdctl "$@"
