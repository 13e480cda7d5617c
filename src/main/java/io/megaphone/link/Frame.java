// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.util.Arrays;

/**
 * One decoded frame of the megaphone link protocol (v1, and v2's streams). Each record mirrors one section of
 * docs/protocol.md; {@link FrameCodec} turns them into bytes and back.
 */
public sealed interface Frame {

    /** Server → client: the protocol versions it speaks and its nonce. */
    record Hello(int minVersion, int maxVersion, byte[] serverNonce) implements Frame {
    }

    /** Client → server: the chosen version, the client nonce, the HMAC proof and the ECM's name. */
    record Auth(int version, byte[] clientNonce, byte[] mac, String name) implements Frame {
    }

    /**
     * Server → client: the server's proof and the link limits. On a version-2 link it also carries
     * {@code maxStreams} (0: no limit stated) and {@code streamWindow}, the credit each opened stream starts with;
     * both are -1 in a v1-shaped WELCOME.
     */
    record Welcome(byte[] mac, long maxFrame, long maxInflight, long heartbeatMillis, String node, long maxStreams,
                   long streamWindow) implements Frame {

        /** A v1-shaped WELCOME (no stream fields). */
        public Welcome(byte[] mac, long maxFrame, long maxInflight, long heartbeatMillis, String node) {
            this(mac, maxFrame, maxInflight, heartbeatMillis, node, -1, -1);
        }

        /** Whether the v2 stream fields are present. */
        public boolean hasStreamFields() {
            return maxStreams >= 0;
        }
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

    /** v2, client → server: open a WebSocket stream for this client address; {@code window} is the server's credit. */
    record StreamOpen(int stream, java.net.InetSocketAddress client, long window) implements Frame {
    }

    /** v2, server → client: the stream is open; {@code window} is the client's first credit for it. */
    record StreamOpened(int stream, long window) implements Frame {
    }

    /** v2, both ways: exactly one WebSocket text message of a stream. */
    record Data(int stream, byte[] payload) implements Frame {
        @Override
        public boolean equals(Object o) {
            return o instanceof Data d && d.stream == stream && Arrays.equals(d.payload, payload);
        }

        @Override
        public int hashCode() {
            return 31 * stream + Arrays.hashCode(payload);
        }

        @Override
        public String toString() {
            return "Data[stream=" + stream + ", " + payload.length + " bytes]";
        }
    }

    /** v2, both ways: {@code credit} more DATA payload bytes the receiver of this frame may send on the stream. */
    record Window(int stream, long credit) implements Frame {
    }

    /** v2, both ways: the stream ends, with a WebSocket close code and a reason of at most 123 UTF-8 bytes. */
    record StreamClose(int stream, int code, String reason) implements Frame {
        public static final int NORMAL = 1000;
        public static final int GOING_AWAY = 1001;
        public static final int UNSUPPORTED_DATA = 1003;
        public static final int POLICY = 1008;
        public static final int TOO_BIG = 1009;
        public static final int SERVER_ERROR = 1011;
        public static final int SERVICE_RESTART = 1012;
        public static final int TRY_AGAIN_LATER = 1013;
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
