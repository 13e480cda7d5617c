// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.timeout.IdleState;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Heartbeats of a ready link (docs/protocol.md, section 5): a PING every interval, whether or not requests flow,
 * as it is also the round-trip probe (megaphone.link.rtt) and what keeps mod_megaphone's idle check quiet; a
 * PONG to every PING of the server; and the link closed when the {@link IdleStateHandler} in front of this one
 * ({@link #idleStateHandler}) reports nothing read for 3 intervals.
 */
final class LinkHeartbeatHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(LinkHeartbeatHandler.class);
    static final int SILENT_INTERVALS = 3;

    private final long intervalNanos;
    private final String link;
    private final LinkStats stats;
    private volatile long rttNanos = -1;
    private ScheduledFuture<?> pinger;

    LinkHeartbeatHandler(long intervalNanos, String link, LinkStats stats) {
        this.intervalNanos = intervalNanos;
        this.link = link;
        this.stats = stats;
    }

    /** The handler that goes in front of this one: reader idle after {@value #SILENT_INTERVALS} intervals. */
    IdleStateHandler idleStateHandler() {
        return new IdleStateHandler(SILENT_INTERVALS * intervalNanos, 0, 0, TimeUnit.NANOSECONDS);
    }

    /** Round-trip time of the last PING, or -1 before the first PONG. */
    long rttNanos() {
        return rttNanos;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        pinger = ctx.executor().scheduleAtFixedRate(
                () -> LinkFrames.send(ctx.channel(), stats, new Frame.Ping(System.nanoTime())),
                0, intervalNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        pinger.cancel(false);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        pinger.cancel(false);
        ctx.fireChannelInactive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof Frame.Ping ping) {
            LinkFrames.send(ctx.channel(), stats, new Frame.Pong(ping.opaque()));
        } else if (msg instanceof Frame.Pong pong) {
            rttNanos = System.nanoTime() - pong.opaque();
            stats.rtt(rttNanos);
        } else {
            ctx.fireChannelRead(msg);
        }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof IdleStateEvent idle && idle.state() == IdleState.READER_IDLE) {
            log.warn("{} silent for {} ms: closing it", link,
                    TimeUnit.NANOSECONDS.toMillis(SILENT_INTERVALS * intervalNanos));
            ctx.close();
        } else {
            ctx.fireUserEventTriggered(evt);
        }
    }
}
