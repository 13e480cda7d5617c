// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

/**
 * Every meter Megaphone publishes, named once here and documented in docs/metrics.md. Names are dotted lowercase
 * words that make sense without tags; tag values come from small fixed sets (never a sid, JID or IP).
 * A base unit is declared only where the exported Prometheus name already carries it (Prometheus appends the unit to
 * the name): declaring one elsewhere would rename a series under the dashboard and the alerts.
 * ExportedSeriesNamesTest pins the exported names.
 */
public enum MegaphoneMeters {

    /** Gauge: BOSH requests held right now, waiting for ejabberd's answer. */
    EDGE_HELD("megaphone.edge.held", "requests", "BOSH requests held, waiting for ejabberd"),
    /** Counter, tag {@code outcome}: BOSH requests finished, by outcome. */
    EDGE_REQUESTS("megaphone.edge.requests", "requests", "BOSH requests finished, by outcome"),
    /** Timer, tag {@code outcome}: time from the request's arrival to its answer; buckets suit long polls. */
    EDGE_REQUEST_DURATION("megaphone.edge.request.duration", "seconds", "time from request to answer"),
    /** Counter: request body bytes received from clients. */
    EDGE_RECEIVED_BYTES("megaphone.edge.received", "bytes", "BOSH request body bytes received"),
    /** Counter: response body bytes sent to clients. */
    EDGE_SENT_BYTES("megaphone.edge.sent", "bytes", "BOSH response body bytes sent"),
    /** Counter: session-creation requests (a body with no sid) forwarded. */
    EDGE_SESSION_CREATIONS("megaphone.edge.session.creations", null, "session-creation requests forwarded"),
    /**
     * Counter, tag {@code result} (sent, answered, failed): terminates the edge sent to ejabberd for sessions it
     * ended itself (a body over the limit, a request or answer too large for the link).
     */
    EDGE_SESSION_ENDS("megaphone.edge.session.ends", null, "sessions the edge ended, told to ejabberd"),
    /** Counter, tag {@code condition}: BOSH terminate bodies seen in ejabberd's answers. */
    BOSH_TERMINATES("megaphone.bosh.terminates", null, "BOSH terminate answers, by condition"),
    /** Gauge: client TCP connections open on the BOSH port now. */
    EDGE_CONNECTIONS_ACTIVE("megaphone.edge.connections.active", null, "client connections open now"),
    /** Counter: client TCP connections accepted on the BOSH port. */
    EDGE_CONNECTIONS_OPENED("megaphone.edge.connections.opened", null, "client connections accepted"),
    /** Counter: client TCP connections closed (by either side). */
    EDGE_CONNECTIONS_CLOSED("megaphone.edge.connections.closed", null, "client connections closed"),
    /** Gauge: XMPP-over-WebSocket streams open now (RFC 7395 clients on the WebSocket path). */
    EDGE_WS_OPEN("megaphone.edge.websocket.open", "streams", "WebSocket streams open now"),
    /**
     * Counter, tag {@code result}: WebSocket handshakes, opened (101) or refused: {@code bad_origin} (403),
     * {@code bad_subprotocol} (400), {@code draining} (503), {@code unavailable} (503: no link took the stream).
     */
    EDGE_WS_OPENS("megaphone.edge.websocket.opens", null, "WebSocket handshakes, by result"),
    /**
     * Counter, tag {@code reason}: WebSocket streams closed: {@code client}, {@code server} (ejabberd ended it),
     * {@code link_lost} (1012), {@code drain} (1001), {@code too_big} (1009), {@code binary} (1003), {@code error}.
     */
    EDGE_WS_CLOSES("megaphone.edge.websocket.closes", null, "WebSocket streams closed, by reason"),
    /**
     * Counter, tag {@code direction}: credit stalls of WebSocket streams: {@code upstream}, a client's message waited
     * for ejabberd's credit; {@code downstream}, a message of ejabberd waited for its client to take it.
     */
    EDGE_WS_CREDIT_STALLS("megaphone.edge.websocket.credit.stalls", null, "WebSocket messages that waited, by direction"),
    /** Counter: WebSocket text message bytes received from clients. */
    EDGE_WS_RECEIVED_BYTES("megaphone.edge.websocket.received", "bytes", "WebSocket message bytes received"),
    /** Counter: WebSocket text message bytes sent to clients. */
    EDGE_WS_SENT_BYTES("megaphone.edge.websocket.sent", "bytes", "WebSocket message bytes sent"),
    /** Gauge: requests the ready links can carry at once (the sum of their max_inflight). */
    LINK_CAPACITY("megaphone.link.capacity", "requests", "requests the ready links can carry at once"),
    /** Counter, tag {@code reason}: requests refused by admission control. */
    ADMISSION_REJECTED("megaphone.admission.rejected", null, "requests refused by admission control"),
    /** Gauge, tag {@code link}: 1 while the link is authenticated and takes requests, else 0. */
    LINK_UP("megaphone.link.up", null, "1 while the link takes requests"),
    /** Gauge, tag {@code link}: requests in flight on the link. */
    LINK_INFLIGHT("megaphone.link.inflight", null, "requests in flight on the link"),
    /** Timer (histogram), tag {@code link}: heartbeat round-trip times. */
    LINK_RTT("megaphone.link.rtt", "seconds", "heartbeat round-trip time"),
    /** Counter, tag {@code link}: times the link was (re)established. */
    LINK_CONNECTS("megaphone.link.connects", null, "link handshakes completed"),
    /** Counter, tag {@code link}: times the link was closed as stalled (nothing read with requests in flight). */
    LINK_STALLS("megaphone.link.stalls", null,
            "links closed because nothing was read for the stall timeout while requests were in flight"),
    /** Counter, tags {@code link}, {@code direction}, {@code type}: frames sent and received. */
    LINK_FRAMES("megaphone.link.frames", null, "link frames, by direction and type"),
    /**
     * Counter, tag {@code reason}: requests re-sent on another link, because theirs died or was closing
     * ({@code link_closed}), or because mod_megaphone refused them ({@code refused}: 503, over max_inflight or
     * draining).
     */
    LINK_RESENDS("megaphone.link.resends", null,
            "requests re-sent on another link; reason: link_closed (theirs died or was closing), refused"
                    + " (mod_megaphone's 503: over max_inflight, or draining)");

    private final String meterName;
    private final String baseUnit;
    private final String description;

    MegaphoneMeters(String meterName, String baseUnit, String description) {
        this.meterName = meterName;
        this.baseUnit = baseUnit;
        this.description = description;
    }

    public String meterName() {
        return meterName;
    }

    /** The unit Prometheus appends to the name, or null; for timers the registry's, seconds. */
    public String baseUnit() {
        return baseUnit;
    }

    public String description() {
        return description;
    }
}
