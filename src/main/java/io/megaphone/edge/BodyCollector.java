package io.megaphone.edge;

import io.netty.buffer.ByteBuf;
import java.util.Arrays;

/**
 * Gathers a request body into one exactly-sized array while it arrives, failing as soon as it passes the
 * limit so an oversized body is never buffered whole.
 */
final class BodyCollector {

    private final int limit;
    private byte[] bytes;
    private int size;

    BodyCollector(int limit, int expected) {
        this.limit = limit;
        this.bytes = new byte[Math.max(0, Math.min(expected, limit))];
    }

    void append(ByteBuf chunk) {
        int length = chunk.readableBytes();
        if (size + length > limit) {
            throw new BodyTooLargeException(limit);
        }
        if (size + length > bytes.length) {
            bytes = Arrays.copyOf(bytes, Math.min(limit, Math.max(size + length, bytes.length * 2)));
        }
        chunk.readBytes(bytes, size, length);
        size += length;
    }

    byte[] toArray() {
        return size == bytes.length ? bytes : Arrays.copyOf(bytes, size);
    }
}
