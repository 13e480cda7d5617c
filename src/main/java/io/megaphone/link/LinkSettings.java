// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.handler.ssl.SslContext;
import java.time.Duration;
import java.util.Objects;

/**
 * What every link of a pool shares: the handshake proof, the ECM's name, the heartbeat, the limits, and TLS.
 *
 * @param heartbeat how often the ECM pings (the server's suggested interval wins when shorter); a link that
 *     brings no frame for three intervals is closed
 * @param maxFrameBytes the largest frame accepted from the server
 * @param sslContext a client {@link SslContext}: every link then runs inside TLS (an {@code SslHandler} first in
 *     its pipeline; the secret handshake runs unchanged inside); {@code null}: plain TCP
 * @param tlsServerName the name sent as SNI and checked against the server's certificate (when the context
 *     verifies host names); {@code null}: each node's host
 * @param stallTimeout while requests are in flight, a link from which nothing is read for this long after a
 *     REQUEST or PING went out is closed and its requests are re-sent (PINGs then go every third of it); keep it
 *     below mod_megaphone's {@code order_timeout}
 */
public record LinkSettings(HandshakeProof proof, String ecmName, Duration heartbeat, Duration handshakeTimeout,
                           int maxFrameBytes, SslContext sslContext, String tlsServerName, Duration stallTimeout) {

    /** The stall timeout of links whose settings name none: half of mod_megaphone's default order_timeout. */
    public static final Duration DEFAULT_STALL_TIMEOUT = Duration.ofMillis(150);

    public LinkSettings {
        Objects.requireNonNull(proof, "proof");
        Objects.requireNonNull(ecmName, "ecmName");
        Objects.requireNonNull(heartbeat, "heartbeat");
        Objects.requireNonNull(handshakeTimeout, "handshakeTimeout");
        Objects.requireNonNull(stallTimeout, "stallTimeout");
        if (stallTimeout.toMillis() < 3) {
            throw new IllegalArgumentException("stallTimeout: " + stallTimeout + " (expected: >= 3 ms)");
        }
        if (maxFrameBytes < 4096) {
            throw new IllegalArgumentException("maxFrameBytes: " + maxFrameBytes + " (expected: >= 4096)");
        }
        if (sslContext != null && !sslContext.isClient()) {
            throw new IllegalArgumentException("sslContext: a server context (expected: SslContextBuilder.forClient())");
        }
        if (tlsServerName != null && (sslContext == null || tlsServerName.isBlank())) {
            throw new IllegalArgumentException("tlsServerName: '" + tlsServerName
                    + "' (expected: a non-blank name, and only with an sslContext)");
        }
    }

    /** Links with the {@link #DEFAULT_STALL_TIMEOUT}. */
    public LinkSettings(HandshakeProof proof, String ecmName, Duration heartbeat, Duration handshakeTimeout,
                        int maxFrameBytes, SslContext sslContext, String tlsServerName) {
        this(proof, ecmName, heartbeat, handshakeTimeout, maxFrameBytes, sslContext, tlsServerName,
                DEFAULT_STALL_TIMEOUT);
    }

    /** Plain TCP links. */
    public LinkSettings(HandshakeProof proof, String ecmName, Duration heartbeat, Duration handshakeTimeout,
                        int maxFrameBytes) {
        this(proof, ecmName, heartbeat, handshakeTimeout, maxFrameBytes, null, null);
    }

    /** Whether the links run inside TLS. */
    public boolean tls() {
        return sslContext != null;
    }
}
