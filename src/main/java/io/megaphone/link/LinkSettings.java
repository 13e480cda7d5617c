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
 */
public record LinkSettings(HandshakeProof proof, String ecmName, Duration heartbeat, Duration handshakeTimeout,
                           int maxFrameBytes, SslContext sslContext, String tlsServerName) {

    public LinkSettings {
        Objects.requireNonNull(proof, "proof");
        Objects.requireNonNull(ecmName, "ecmName");
        Objects.requireNonNull(heartbeat, "heartbeat");
        Objects.requireNonNull(handshakeTimeout, "handshakeTimeout");
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
