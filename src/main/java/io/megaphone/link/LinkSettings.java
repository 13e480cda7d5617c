package io.megaphone.link;

import java.time.Duration;
import java.util.Objects;

/**
 * What every link of a pool shares: the handshake proof, the ECM's name, the heartbeat and the limits.
 *
 * @param heartbeat how often the ECM pings (the server's suggested interval wins when shorter); a link that
 *     brings no frame for three intervals is closed
 * @param maxFrameBytes the largest frame accepted from the server
 */
public record LinkSettings(HandshakeProof proof, String ecmName, Duration heartbeat, Duration handshakeTimeout,
                           int maxFrameBytes) {

    public LinkSettings {
        Objects.requireNonNull(proof, "proof");
        Objects.requireNonNull(ecmName, "ecmName");
        Objects.requireNonNull(heartbeat, "heartbeat");
        Objects.requireNonNull(handshakeTimeout, "handshakeTimeout");
        if (maxFrameBytes < 4096) {
            throw new IllegalArgumentException("maxFrameBytes: " + maxFrameBytes + " (expected: >= 4096)");
        }
    }
}
