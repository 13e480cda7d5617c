// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.timeout.IdleState;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.IntSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Heartbeats of a ready link (docs/protocol.md, section 5): a PING every interval, whether or not requests flow,
 * as it is also the round-trip probe (megaphone.link.rtt) and what keeps mod_megaphone's idle check quiet; a
 * PONG to every PING of the server; and the link closed when the {@link IdleStateHandler} in front of this one
 * ({@link #idleStateHandler}) reports nothing read for 3 intervals.
 *
 * <p>Stall detection: while requests are in flight, a PING also goes every stall timeout / 3, and the link is
 * closed (its requests re-sent elsewhere) when nothing at all has been read for the stall timeout since a REQUEST
 * or such a PING went out. Any bytes read reset it, so a link that answers is never stalled. It is not closed
 * while no other ready link answers in time either: the whole node is slow then, and a session's next request cannot
 * overtake this one through a link of this ECM, so a re-send would only move the load.
 */
final class LinkHeartbeatHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(LinkHeartbeatHandler.class);
    static final int SILENT_INTERVALS = 3;

    private final long intervalNanos;
    private final long stallNanos;
    private final String link;
    private final LinkStats stats;
    private final IntSupplier inflight;
    private final BooleanSupplier anotherLinkAnswers;
    private volatile long rttNanos = -1;
    private ChannelHandlerContext ctx;
    private ScheduledFuture<?> pinger;
    /** PINGs every stall timeout / 3 while requests are in flight; null when none are. */
    private ScheduledFuture<?> prober;
    /** The pending stall check, or null. */
    private ScheduledFuture<?> stallCheck;
    /** When the first REQUEST or probe PING since the last read went out; 0: none did. Read by other links. */
    private volatile long awaitingSinceNanos;
    /** When bytes were last read. Read by other links. */
    private volatile long lastReadNanos = System.nanoTime();

    LinkHeartbeatHandler(long intervalNanos, long stallNanos, String link, LinkStats stats, IntSupplier inflight,
                         BooleanSupplier anotherLinkAnswers) {
        this.anotherLinkAnswers = anotherLinkAnswers;
        this.intervalNanos = intervalNanos;
        this.stallNanos = stallNanos;
        this.link = link;
        this.stats = stats;
        this.inflight = inflight;
    }

    /** The handler that goes in front of this one: reader idle after {@value #SILENT_INTERVALS} intervals. */
    IdleStateHandler idleStateHandler() {
        return new IdleStateHandler(SILENT_INTERVALS * intervalNanos, 0, 0, TimeUnit.NANOSECONDS);
    }

    /** Round-trip time of the last PING, or -1 before the first PONG. */
    long rttNanos() {
        return rttNanos;
    }

    /**
     * Any thread: whether this link answers, as its peers judge it: it read something within the last {@code nanos},
     * or it waits for nothing (no request in flight, nothing unanswered).
     */
    boolean answeredWithin(long nowNanos, long nanos) {
        return nowNanos - lastReadNanos < nanos || awaitingSinceNanos == 0 && inflight.getAsInt() == 0;
    }

    /** Event loop: a REQUEST went out. Something must now be read within the stall timeout. */
    void requestSent() {
        if (ctx == null) {
            return; // removed
        }
        awaitRead();
        if (prober == null) {
            long every = Math.max(1, stallNanos / 3);
            prober = ctx.executor().scheduleAtFixedRate(this::probe, every, every, TimeUnit.NANOSECONDS);
        }
    }

    private void probe() {
        if (inflight.getAsInt() == 0) {
            prober.cancel(false);
            prober = null;
            return;
        }
        ping();
        awaitRead();
    }

    private void ping() {
        LinkFrames.send(ctx.channel(), stats, new Frame.Ping(System.nanoTime()));
    }

    private void awaitRead() {
        if (awaitingSinceNanos == 0) {
            awaitingSinceNanos = System.nanoTime() | 1; // never 0
            if (stallCheck == null) {
                stallCheck = ctx.executor().schedule(this::checkStall, stallNanos, TimeUnit.NANOSECONDS);
            }
        }
    }

    private void checkStall() {
        stallCheck = null;
        long since = awaitingSinceNanos;
        if (since == 0 || !ctx.channel().isActive()) {
            return;
        }
        long waited = System.nanoTime() - since;
        if (waited < stallNanos) {
            stallCheck = ctx.executor().schedule(this::checkStall, stallNanos - waited, TimeUnit.NANOSECONDS);
            return;
        }
        if (!anotherLinkAnswers.getAsBoolean()) {
            stallCheck = ctx.executor().schedule(this::checkStall, stallNanos, TimeUnit.NANOSECONDS);
            return; // every other link waits too: the node is slow, not this link
        }
        stats.stalled();
        log.warn("{} stalled: nothing read for {} ms with {} requests in flight; closing it (they are re-sent)",
                link, TimeUnit.NANOSECONDS.toMillis(waited), inflight.getAsInt());
        ctx.close();
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        pinger = ctx.executor().scheduleAtFixedRate(this::ping, 0, intervalNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        stopTimers();
        this.ctx = null;
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        stopTimers();
        ctx.fireChannelInactive();
    }

    private void stopTimers() {
        pinger.cancel(false);
        if (prober != null) {
            prober.cancel(false);
            prober = null;
        }
        if (stallCheck != null) {
            stallCheck.cancel(false);
            stallCheck = null;
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        awaitingSinceNanos = 0;
        if (msg instanceof Frame.Ping ping) {
            LinkFrames.send(ctx.channel(), stats, new Frame.Pong(ping.opaque()));
        } else if (msg instanceof Frame.Pong pong) {
            rttNanos = System.nanoTime() - pong.opaque();
            stats.rtt(rttNanos);
        } else {
            ctx.fireChannelRead(msg);
        }
    }

    /** Bytes were read, whether or not they completed a frame (a large RESPONSE still arriving). */
    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        awaitingSinceNanos = 0;
        lastReadNanos = System.nanoTime();
        ctx.fireChannelReadComplete();
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
