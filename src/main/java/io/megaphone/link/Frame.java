// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.util.Arrays;

/**
 * One decoded frame of the megaphone link protocol v1. Each record mirrors one section of docs/protocol.md;
 * {@link FrameCodec} turns them into bytes and back.
 */
public sealed interface Frame {

    /** Server → client: the protocol versions it speaks and its nonce. */
    record Hello(int minVersion, int maxVersion, byte[] serverNonce) implements Frame {
    }

    /** Client → server: the chosen version, the client nonce, the HMAC proof and the ECM's name. */
    record Auth(int version, byte[] clientNonce, byte[] mac, String name) implements Frame {
    }

    /** Server → client: the server's proof and the link limits. */
    record Welcome(byte[] mac, long maxFrame, long maxInflight, long heartbeatMillis, String node) implements Frame {
    }

    /** Client → server: one BOSH POST; everything but the id is in the (re-sendable) envelope. */
    record Request(int id, RequestEnvelope envelope) implements Frame {
    }

    /** Server → client: the answer to one request. */
    record Response(int id, int status, String contentType, byte[] body) implements Frame {
        @Override
        public boolean equals(Object o) {
            return o instanceof Response r && r.id == id && r.status == status
                    && r.contentType.equals(contentType) && Arrays.equals(r.body, body);
        }

        @Override
        public int hashCode() {
            return 31 * id + status;
        }
    }

    /** Client → server: the HTTP client went away. */
    record Cancel(int id) implements Frame {
    }

    /** Heartbeat; the receiver echoes {@code opaque} in a {@link Pong}. */
    record Ping(long opaque) implements Frame {
    }

    /** Heartbeat answer. */
    record Pong(long opaque) implements Frame {
    }

    /** Drain: the sender starts no new requests on this link. */
    record GoAway(int code, String reason) implements Frame {
    }

    /** Fatal error; the sender closes the link after it. */
    record Error(int code, String reason) implements Frame {
        public static final int PROTOCOL_ERROR = 1;
        public static final int UNSUPPORTED_VERSION = 2;
        public static final int AUTH_FAILED = 3;
        public static final int FRAME_TOO_LARGE = 4;
        public static final int HANDSHAKE_TIMEOUT = 5;
        public static final int INTERNAL = 6;
    }
}
