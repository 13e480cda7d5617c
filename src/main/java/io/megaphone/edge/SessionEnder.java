// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.link.Exchange;
import io.megaphone.link.Frame;
import io.megaphone.link.LinkPool;
import io.megaphone.link.RequestEnvelope;
import io.micrometer.core.instrument.Counter;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.function.Consumer;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DataBufferLimitException;
import org.springframework.http.server.reactive.ServerHttpRequest;

/**
 * Ends in ejabberd a session whose request the edge has answered with a {@code terminate} of its own: it sends, over
 * a link, {@code <body rid='R' sid='S' type='terminate'/>}, fire and forget (the answer is dropped, each outcome
 * counted). R is the refused request's rid, which ejabberd never saw, so it comes in order; a rid ejabberd does not
 * expect gets item-not-found, which ends the session as well, or, below its window, changes nothing.
 */
final class SessionEnder implements Exchange {

    /** The bytes of a refused body kept to find its start tag: nothing a client sends makes this grow. */
    static final int PREFIX_BYTES = 4096;

    private final LinkPool pool;
    private final Counter sent;
    private final Counter answered;
    private final Counter failed;

    SessionEnder(LinkPool pool, Counter sent, Counter answered, Counter failed) {
        this.pool = pool;
        this.sent = sent;
        this.answered = answered;
        this.failed = failed;
    }

    static byte[] terminate(long rid, String sid) {
        return ("<body rid='" + rid + "' sid='" + escape(sid) + "' type='terminate' xmlns='"
                + BodyStartTag.HTTPBIND_NS + "'/>").getBytes(StandardCharsets.UTF_8);
    }

    private static String escape(String value) {
        return value.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;");
    }

    /**
     * Ends the session named by the start tag at the beginning of {@code prefix} (at most {@link #PREFIX_BYTES} of
     * a refused body); nothing when it names none (a session creation, or no readable start tag).
     */
    void endNamedIn(byte[] prefix, InetAddress address, int port) {
        BodyStartTag tag;
        try {
            tag = BodyStartTag.parse(prefix);
        } catch (BadRequestException e) {
            return;
        }
        end(tag.rid(), tag.sid(), address, port);
    }

    /** Ends session {@code sid} with a terminate of rid {@code rid}; nothing without a sid or a rid. */
    void end(long rid, String sid, InetAddress address, int port) {
        if (sid.isEmpty() || rid <= 0) {
            return;
        }
        sent.increment();
        pool.submit(RequestEnvelope.of(rid, sid, address, port, terminate(rid, sid)), this);
    }

    @Override
    public void onResponse(Frame.Response response) {
        answered.increment();
    }

    @Override
    public void onFailure(Throwable error) {
        failed.increment();
    }

    /** Copies the first {@link #PREFIX_BYTES} of a body as it is read; the buffers themselves are not kept. */
    static final class Prefix implements Consumer<DataBuffer> {

        private byte[] bytes = new byte[0];

        @Override
        public void accept(DataBuffer buffer) {
            int take = Math.min(PREFIX_BYTES - bytes.length, buffer.readableByteCount());
            if (take <= 0) {
                return;
            }
            int at = bytes.length;
            bytes = Arrays.copyOf(bytes, at + take);
            int from = buffer.readPosition();
            for (int i = 0; i < take; i++) {
                bytes[at + i] = buffer.getByte(from + i);
            }
        }

        byte[] bytes() {
            return bytes;
        }
    }

    /** A body over the limit that came without a Content-Length, with its first bytes and the request's client. */
    static final class BodyOverLimitException extends DataBufferLimitException {

        final transient byte[] prefix;
        final transient ServerHttpRequest request;

        BodyOverLimitException(DataBufferLimitException cause, byte[] prefix, ServerHttpRequest request) {
            super(cause.getMessage());
            this.prefix = prefix;
            this.request = request;
        }
    }
}
