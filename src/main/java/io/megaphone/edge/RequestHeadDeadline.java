package io.megaphone.edge;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpStatusClass;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * Closes a connection whose next request head has not arrived in time, counted from the connection's start or the
 * end of its previous answer. Reactor Netty's idle timeout does not catch a client that trickles its headers (each
 * byte resets it) and its request timeout starts only once the head is in, so this handler covers the head; the
 * body is Reactor Netty's {@code requestTimeout}. Sits right after the HTTP codec; while a request is held it holds
 * no timer.
 */
final class RequestHeadDeadline extends ChannelDuplexHandler {

    static final String NAME = "megaphone.requestHeadDeadline";

    private final long timeoutNanos;
    private Future<?> timer;
    /** Request heads read minus final answers written: above 0, a request is in progress (or pipelined). */
    private int outstanding;

    RequestHeadDeadline(long timeoutNanos) {
        this.timeoutNanos = timeoutNanos;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        if (ctx.channel().isActive()) {
            arm(ctx);
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        arm(ctx);
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof HttpRequest) {
            outstanding++;
            disarm();
        }
        ctx.fireChannelRead(msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        boolean interim = msg instanceof HttpResponse response
                && response.status().codeClass() == HttpStatusClass.INFORMATIONAL;
        if (msg instanceof LastHttpContent && !interim && outstanding > 0 && --outstanding == 0) {
            arm(ctx); // the last answer is complete: the next request head has the same time
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

    private void arm(ChannelHandlerContext ctx) {
        disarm();
        Runnable close = ctx::close;
        timer = ctx.executor().schedule(close, timeoutNanos, TimeUnit.NANOSECONDS);
    }

    private void disarm() {
        if (timer != null) {
            timer.cancel(false);
            timer = null;
        }
    }
}
