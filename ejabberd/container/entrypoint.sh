#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Entry point of the ejabberd + mod_megaphone image (ejabberd/Dockerfile): writes ejabberd's configuration from
# the environment into $CONFIG_DIR, then runs ejabberd in the foreground as the ejabberd user.
#
#   EJABBERD_DOMAIN               XMPP domain (vhost)                                  localhost
#   EJABBERD_ADMIN                admin JID (acl admin: configure, ejabberdctl over XMPP)  admin@$EJABBERD_DOMAIN
#   EJABBERD_ADMIN_PASSWORD_FILE  registers EJABBERD_ADMIN with this password once ejabberd runs   (unset: no)
#   EJABBERD_C2S_PORT             XMPP client port                                     5222
#   EJABBERD_HTTP_PORT            ejabberd's own BOSH on /http-bind (unset: no HTTP listener; the ECM serves BOSH)
#   EJABBERD_LOGLEVEL             ejabberd log level                                   info
#   MEGAPHONE_LINK_IP             address mod_megaphone's link listener binds          0.0.0.0
#   MEGAPHONE_LINK_PORT           link port (the ECMs' megaphone.link.nodes)           5290
#   MEGAPHONE_LINK_SECRET_FILE    file holding the link secret (a mounted Secret)      /run/secrets/megaphone-link-secret
#   MEGAPHONE_LINK_SECRET         the secret itself, when there is no file (written to $CONFIG_DIR, mode 0600)
#   MEGAPHONE_MAX_INFLIGHT        mod_megaphone max_inflight (requests per link)       10000
#   EJABBERD_MAX_PROCESSES        Erlang process limit (+P, ERL_PROCESSES): 2 per BOSH user through Megaphone
#                                 plus a margin; Debian's ejabberdctl default of 250,000 stops near 120,000 users  1000000
#   MEGAPHONE_METRICS_PORT        Prometheus metrics at http://<pod>:<port>/megaphone/metrics, an ejabberd_http
#                                 listener of their own (empty: none)                  5281
#   MEGAPHONE_METRICS_IP          address that listener binds (keep it off the Internet) 0.0.0.0
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
EJABBERD_MAX_PROCESSES="${EJABBERD_MAX_PROCESSES:-1000000}"
MEGAPHONE_METRICS_PORT="${MEGAPHONE_METRICS_PORT-5281}"
MEGAPHONE_METRICS_IP="${MEGAPHONE_METRICS_IP:-0.0.0.0}"

case "$EJABBERD_ADMIN" in
    *@*) ;;
    *) die "EJABBERD_ADMIN: $EJABBERD_ADMIN (expected: a JID, user@domain)" ;;
esac
for port in "$EJABBERD_C2S_PORT" "$MEGAPHONE_LINK_PORT" ${EJABBERD_HTTP_PORT:+"$EJABBERD_HTTP_PORT"} \
        ${MEGAPHONE_METRICS_PORT:+"$MEGAPHONE_METRICS_PORT"}; do
    case "$port" in
        ''|*[!0-9]*) die "port: '$port' (expected: a number, 1-65535)" ;;
    esac
done

umask 077
mkdir -p "$CONFIG_DIR/modules.d"

# The link secret: a file (a mounted Kubernetes or podman Secret) is read by mod_megaphone itself.
if [ -n "${MEGAPHONE_LINK_SECRET:-}" ]; then
    secret_file="$CONFIG_DIR/megaphone-link.secret"
    printf '%s' "$MEGAPHONE_LINK_SECRET" > "$secret_file"
elif [ -r "$MEGAPHONE_LINK_SECRET_FILE" ] && [ -s "$MEGAPHONE_LINK_SECRET_FILE" ]; then
    secret_file="$MEGAPHONE_LINK_SECRET_FILE"
else
    die "no link secret: mount it at $MEGAPHONE_LINK_SECRET_FILE (readable by uid $(id -u)) or set MEGAPHONE_LINK_SECRET_FILE or MEGAPHONE_LINK_SECRET"
fi

# ejabberdctl reads this file (the image sets CONFIG_DIR): one node name and a fixed distribution port on
# 127.0.0.1 (no epmd), so that "podman exec ... ejabberdctl" reaches the running node.
cat > "$CONFIG_DIR/ejabberdctl.cfg" <<CFG
ERLANG_NODE=ejabberd@localhost
ERL_DIST_PORT=5210
INET_DIST_INTERFACE=127.0.0.1
CONTRIB_MODULES_PATH=$CONTRIB_MODULES_PATH
CONTRIB_MODULES_CONF_DIR=$CONFIG_DIR/modules.d
ERL_PROCESSES=$EJABBERD_MAX_PROCESSES
CFG
printf '%s\n' '{lookup,["file","native"]}.' '{host,{127,0,0,1}, ["localhost"]}.' > "$CONFIG_DIR/inetrc"

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

# Registers the admin once ejabberd answers (in the background; ejabberd runs in the foreground below).
if [ -n "${EJABBERD_ADMIN_PASSWORD_FILE:-}" ]; then
    [ -r "$EJABBERD_ADMIN_PASSWORD_FILE" ] || die "EJABBERD_ADMIN_PASSWORD_FILE: cannot read $EJABBERD_ADMIN_PASSWORD_FILE"
    (
        ejabberdctl started >/dev/null 2>&1 || exit 0
        out="$(ejabberdctl register "${EJABBERD_ADMIN%@*}" "${EJABBERD_ADMIN#*@}" "$(cat "$EJABBERD_ADMIN_PASSWORD_FILE")" 2>&1)" \
            || case "$out" in *already*) ;; *) echo "megaphone-ejabberd: registering $EJABBERD_ADMIN failed: $out" >&2 ;; esac
    ) &
fi

echo "megaphone-ejabberd: ejabberd $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null) domain=$EJABBERD_DOMAIN c2s=$EJABBERD_C2S_PORT link=$MEGAPHONE_LINK_IP:$MEGAPHONE_LINK_PORT${EJABBERD_HTTP_PORT:+ http=$EJABBERD_HTTP_PORT} admin=$EJABBERD_ADMIN"
[ $# -gt 0 ] || set -- foreground
exec ejabberdctl "$@"
