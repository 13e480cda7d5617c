// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * Everything a REQUEST frame carries except its id, encoded once as the frame's bytes
 * ({@code rid u64 | sid_len u8 | sid | ip_len u8 | ip | port u16 | body}).
 *
 * <p>It is what a held request keeps for a re-send on another link, so it is a single byte array: no strings
 * or boxed fields per held request.
 */
public final class RequestEnvelope {

    private static final int MAX_SID_BYTES = 255;

    private final byte[] bytes;

    private RequestEnvelope(byte[] bytes) {
        this.bytes = bytes;
    }

    /**
     * Encodes a request. {@code rid} 0 and an empty {@code sid} mean "absent" (a session-creation request).
     *
     * @throws IllegalArgumentException if the sid is longer than 255 UTF-8 bytes
     */
    public static RequestEnvelope of(long rid, String sid, InetAddress address, int port, byte[] body) {
        Objects.requireNonNull(sid, "sid");
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(body, "body");
        byte[] sidBytes = sid.getBytes(StandardCharsets.UTF_8);
        if (sidBytes.length > MAX_SID_BYTES) {
            throw new IllegalArgumentException("sid: " + sidBytes.length + " bytes (expected: <= 255)");
        }
        if (port < 0 || port > 0xFFFF) {
            throw new IllegalArgumentException("port: " + port + " (expected: 0-65535)");
        }
        byte[] ip = address.getAddress();
        ByteBuffer out = ByteBuffer.allocate(8 + 1 + sidBytes.length + 1 + ip.length + 2 + body.length);
        out.putLong(rid).put((byte) sidBytes.length).put(sidBytes).put((byte) ip.length).put(ip)
                .putShort((short) port).put(body);
        return new RequestEnvelope(out.array());
    }

    /**
     * Takes envelope bytes as they came in a frame, checking their structure.
     *
     * @throws IllegalArgumentException if the bytes are not a well-formed envelope
     */
    static RequestEnvelope wrap(byte[] bytes) {
        int at = 8;
        at = skipCounted(bytes, at, "sid");
        if (at >= bytes.length) {
            throw new IllegalArgumentException("request: no ip_len");
        }
        int ipLength = bytes[at] & 0xFF;
        if (ipLength != 4 && ipLength != 16) {
            throw new IllegalArgumentException("ip_len: " + ipLength + " (expected: 4 or 16)");
        }
        if (at + 1 + ipLength + 2 > bytes.length) {
            throw new IllegalArgumentException("request: truncated ip or port");
        }
        return new RequestEnvelope(bytes);
    }

    private static int skipCounted(byte[] bytes, int at, String field) {
        if (at >= bytes.length) {
            throw new IllegalArgumentException("request: no " + field + "_len");
        }
        int next = at + 1 + (bytes[at] & 0xFF);
        if (next > bytes.length) {
            throw new IllegalArgumentException(field + ": truncated");
        }
        return next;
    }

    /** The encoded bytes, as they go on the wire after the request id. Not copied: do not modify. */
    byte[] bytes() {
        return bytes;
    }

    public int size() {
        return bytes.length;
    }

    public long rid() {
        return ByteBuffer.wrap(bytes).getLong(0);
    }

    public String sid() {
        return new String(bytes, 9, bytes[8] & 0xFF, StandardCharsets.UTF_8);
    }

    private int ipOffset() {
        return 9 + (bytes[8] & 0xFF);
    }

    public InetAddress address() {
        int at = ipOffset();
        try {
            return InetAddress.getByAddress(Arrays.copyOfRange(bytes, at + 1, at + 1 + (bytes[at] & 0xFF)));
        } catch (UnknownHostException e) {
            throw new IllegalStateException("checked in wrap()", e);
        }
    }

    private int portOffset() {
        int at = ipOffset();
        return at + 1 + (bytes[at] & 0xFF);
    }

    public int port() {
        int at = portOffset();
        return ((bytes[at] & 0xFF) << 8) | (bytes[at + 1] & 0xFF);
    }

    public byte[] body() {
        return Arrays.copyOfRange(bytes, portOffset() + 2, bytes.length);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof RequestEnvelope e && Arrays.equals(e.bytes, bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        return "RequestEnvelope[rid=" + rid() + ", bytes=" + bytes.length + "]";
    }
}
