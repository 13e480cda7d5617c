#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A BOSH chat with nothing but curl: USER_A and USER_B log in through a BOSH endpoint (session creation,
# SASL PLAIN, stream restart, resource binding, presence), B holds a long poll, A sends B a message, and
# the script prints what B's poll brought back. Both sessions are then terminated.
#
#   scripts/bosh-chat.sh URL DOMAIN USER_A PASSWORD_A USER_B PASSWORD_B [TEXT]
#
# BOSH_CHAT_LABEL (optional) is appended to the last line in parentheses, e.g. "(container)".
# BOSH_CHAT_URL_B (optional): USER_B's endpoint, when it is not URL (e.g. another ECM, linked to another node).
set -euo pipefail
[ $# -ge 6 ] || { sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
URL=$1 DOMAIN=$2 USER_A=$3 PASS_A=$4 USER_B=$5 PASS_B=$6
URL_A=$URL URL_B=${BOSH_CHAT_URL_B:-$URL}
TEXT=${7:-"Hello from $USER_A, through Megaphone ($(date +%T))"}
NS="http://jabber.org/protocol/httpbind"
WAIT=20
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

post() { # post BODY [URL] -> prints the response body; fails on a non-200 answer
    local answer code url=${2:-$URL}
    answer=$(mktemp "$TMP/answer.XXXXXX") # its own file: B's poll and A's message run at the same time
    curl -sS --max-time $((WAIT + 10)) -H 'Content-Type: text/xml; charset=utf-8' --data-binary "$1" \
        -w '\n%{http_code}' "$url" > "$answer"
    code=$(tail -n 1 "$answer")
    sed '$d' "$answer"
    [ "$code" = 200 ] || { echo "bosh-chat: HTTP $code from $url" >&2; return 1; }
}

attr() { # attr NAME < xml -> the first value of attribute NAME
    grep -o "$1=['\"][^'\"]*['\"]" | head -n 1 | sed "s/^$1=.//; s/.\$//"
}

# login PREFIX USER PASSWORD: sets PREFIX_SID and PREFIX_RID
login() {
    local prefix=$1 user=$2 pass=$3 rid sid answer plain
    local URL_VAR="URL_$1"
    local URL=${!URL_VAR}
    rid=$(( (RANDOM * 32768 + RANDOM) * 10 + 1000 ))
    answer=$(post "<body content='text/xml; charset=utf-8' hold='1' rid='$rid' to='$DOMAIN' ver='1.6' wait='$WAIT' xml:lang='en' xmlns='$NS' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>")
    sid=$(attr sid <<<"$answer")
    [ -n "$sid" ] || { echo "bosh-chat: no sid in: $answer" >&2; return 1; }
    if ! grep -q mechanisms <<<"$answer"; then
        rid=$((rid + 1)); post "<body rid='$rid' sid='$sid' xmlns='$NS'/>" > /dev/null
    fi
    plain=$(printf '\0%s\0%s' "$user" "$pass" | base64 -w0)
    rid=$((rid + 1))
    answer=$(post "<body rid='$rid' sid='$sid' xmlns='$NS'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>$plain</auth></body>")
    grep -q '<success' <<<"$answer" || { echo "bosh-chat: login of $user failed: $answer" >&2; return 1; }
    rid=$((rid + 1))
    post "<body rid='$rid' sid='$sid' to='$DOMAIN' xml:lang='en' xmpp:restart='true' xmlns='$NS' xmlns:xmpp='urn:xmpp:xbosh'/>" > /dev/null
    rid=$((rid + 1))
    answer=$(post "<body rid='$rid' sid='$sid' xmlns='$NS'><iq type='set' id='bind_1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>demo</resource></bind></iq></body>")
    grep -q '<jid>' <<<"$answer" || { echo "bosh-chat: bind failed for $user: $answer" >&2; return 1; }
    echo "  $user logged in: $(sed -n 's:.*<jid>\(.*\)</jid>.*:\1:p' <<<"$answer") (sid $sid)"
    rid=$((rid + 1))
    post "<body rid='$rid' sid='$sid' xmlns='$NS'><presence xmlns='jabber:client'/></body>" > /dev/null
    printf -v "${prefix}_SID" '%s' "$sid"
    printf -v "${prefix}_RID" '%s' "$rid"
}

echo "BOSH chat through $URL_A${BOSH_CHAT_URL_B:+ ($USER_A) and $URL_B ($USER_B)}"
login A "$USER_A" "$PASS_A"
login B "$USER_B" "$PASS_B"

# B holds a long poll: it returns as soon as ejabberd has something for B.
B_RID=$((B_RID + 1))
post "<body rid='$B_RID' sid='$B_SID' xmlns='$NS'/>" "$URL_B" > "$TMP/b-poll" &
poll=$!
sleep 1
echo "  $USER_B holds a long poll; $USER_A sends: $TEXT"
A_RID=$((A_RID + 1))
post "<body rid='$A_RID' sid='$A_SID' xmlns='$NS'><message to='$USER_B@$DOMAIN' type='chat' xmlns='jabber:client'><body>$TEXT</body></message></body>" > /dev/null &
sent=$!
wait "$poll"
received=$(sed -n 's:.*<message[^>]*>.*<body>\([^<]*\)</body>.*:\1:p' "$TMP/b-poll")
for user in A B; do
    sid_var=${user}_SID rid_var=${user}_RID
    rid=$(( ${!rid_var} + 1 ))
    url_var=URL_${user}
    post "<body rid='$rid' sid='${!sid_var}' type='terminate' xmlns='$NS'><presence type='unavailable' xmlns='jabber:client'/></body>" "${!url_var}" > /dev/null || true
done
wait "$sent" || true
if [ "$received" = "$TEXT" ]; then
    echo "  $USER_B received: $received"
    echo "Message delivered from $USER_A to $USER_B through $URL_A${BOSH_CHAT_URL_B:+ and $URL_B}${BOSH_CHAT_LABEL:+ ($BOSH_CHAT_LABEL)}"
else
    echo "bosh-chat: $USER_B's poll did not bring the message; it brought: $(cat "$TMP/b-poll")" >&2
    exit 1
fi
