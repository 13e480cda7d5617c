// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.metrics.EdgeMetrics;
import io.megaphone.metrics.Outcome;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.concurrent.Future;
import java.nio.charset.StandardCharsets;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.http.server.reactive.ServerHttpRequestDecorator;
import reactor.netty.Connection;
import java.util.concurrent.TimeUnit;

/**
 * Idle connections and slowloris protection of the BOSH port: how long a client may take to send a request, never
 * how long one is held.
 * <ul>
 *   <li>the <b>head</b> (request line and headers) must be complete within {@code headNanos} of the connection's
 *       start or of the previous answer, else the connection closes (an idle keep-alive connection, a silent or a
 *       header-trickling client);</li>
 *   <li>the <b>body</b> must be complete within {@code bodyNanos} of the head, else 408 and close.</li>
 * </ul>
 * Once the whole request is in, no timer runs until its answer is written, so a held request costs no timer; a
 * body that arrives in the same read as its head schedules none either. Sits right after the HTTP codec, on the
 * connection's event loop. Why not Reactor Netty's own timeouts: docs/architecture.md.
 */
final class RequestDeadline extends ChannelDuplexHandler {

    static final String NAME = "megaphone.requestDeadline";
    private static final byte[] TIMED_OUT = "request not received in time\n".getBytes(StandardCharsets.UTF_8);

    private final long headNanos;
    private final long bodyNanos;
    private final EdgeMetrics metrics;
    private Future<?> timer;
    private boolean readingBody;
    private long headNanosAt;
    /** Request heads read minus final answers written: above 0, a request is in progress (or pipelined). */
    private int outstanding;
    /** A body came too late and was counted here (408 or close). */
    private boolean timedOut;

    RequestDeadline(long headNanos, long bodyNanos, EdgeMetrics metrics) {
        this.headNanos = headNanos;
        this.bodyNanos = bodyNanos;
        this.metrics = metrics;
    }

    /** Whether this request's connection had a body time out here, which counted it (bad_request). */
    static boolean timedOut(ServerHttpRequest request) {
        Object nativeRequest;
        try {
            nativeRequest = ServerHttpRequestDecorator.getNativeRequest(request);
        } catch (IllegalStateException e) {
            return false; // not served by Reactor Netty (a mock request)
        }
        if (nativeRequest instanceof Connection connection) {
            RequestDeadline deadline = connection.channel().pipeline().get(RequestDeadline.class);
            return deadline != null && deadline.timedOut;
        }
        return false;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        if (ctx.channel().isActive()) {
            arm(ctx, headNanos, false);
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        arm(ctx, headNanos, false);
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof HttpRequest request) {
            outstanding++;
            headNanosAt = System.nanoTime();
            if (request.decoderResult().isFailure()) {
                // a request line or header Netty could not decode (too long, malformed): Reactor Netty answers it
                // (400, 414, 431) and closes; counted here, its log line is off (application.yaml)
                metrics.finished(Outcome.BAD_REQUEST, headNanosAt);
            }
            disarm();
            readingBody = !(msg instanceof LastHttpContent); // a request with no body is complete with its head
        } else if (msg instanceof LastHttpContent && readingBody) {
            disarm();
        }
        ctx.fireChannelRead(msg);
    }

    /**
     * The body timer starts only when a read ends with the body incomplete: a small BOSH POST arrives whole in one
     * read, and then no timer is scheduled for it at all.
     */
    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (readingBody && timer == null) {
            long left = bodyNanos - (System.nanoTime() - headNanosAt);
            arm(ctx, Math.max(1, left), true);
        }
        ctx.fireChannelReadComplete();
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        boolean interim = msg instanceof HttpResponse response
                && response.status().codeClass() == HttpStatusClass.INFORMATIONAL;
        if (msg instanceof LastHttpContent && !interim && outstanding > 0 && --outstanding == 0) {
            arm(ctx, headNanos, false); // the last answer is complete: the next head has the same time
        }
        ctx.write(msg, promise);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        disarm();
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        disarm();
    }

    private void arm(ChannelHandlerContext ctx, long nanos, boolean body) {
        disarm();
        readingBody = body;
        Runnable expire = () -> expired(ctx);
        timer = ctx.executor().schedule(expire, nanos, TimeUnit.NANOSECONDS);
    }

    private void disarm() {
        readingBody = false;
        if (timer != null) {
            timer.cancel(false);
            timer = null;
        }
    }

    private void expired(ChannelHandlerContext ctx) {
        timer = null;
        if (!readingBody) {
            ctx.close();
            return;
        }
        readingBody = false;
        timedOut = true;
        metrics.finished(Outcome.BAD_REQUEST, headNanosAt);
        if (outstanding > 1) {
            // a pipelined request whose body is late while an earlier one is still held: its 408 would reach the
            // client before the earlier answer (HTTP/1.1 answers in order), so the connection just closes
            ctx.close();
            return;
        }
        FullHttpResponse timedOut = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                HttpResponseStatus.REQUEST_TIMEOUT, Unpooled.wrappedBuffer(TIMED_OUT));
        timedOut.headers().set(HttpHeaderNames.CONTENT_TYPE, BoshAnswers.TEXT)
                .setInt(HttpHeaderNames.CONTENT_LENGTH, TIMED_OUT.length)
                .set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        ctx.writeAndFlush(timedOut).addListener(ChannelFutureListener.CLOSE);
    }
}
