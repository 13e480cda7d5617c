// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The client side of the link handshake (docs/protocol.md, section 2): HELLO from the server, AUTH with the version
 * min(2, the server's max_version), WELCOME (with the stream fields exactly when that version is 2). On a
 * good WELCOME it puts the heartbeat handlers in its place, tells the {@link LinkMultiplexer} the server's terms and
 * removes itself from the pipeline, as Netty's {@code SslHandler} does once its handshake is done. Any other ending
 * (an error, a wrong proof, the deadline, the connection lost) is reported once, as a {@link LinkHandshakeException}
 * to the listener, with the reason.
 */
final class LinkHandshakeHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(LinkHandshakeHandler.class);
    /** The highest link protocol version this ECM speaks; it also speaks every version from 1 up to it. */
    static final int MAX_VERSION = 2;

    private final LinkSettings settings;
    private final LinkMultiplexer multiplexer;
    private final LinkMultiplexer.Listener listener;
    private final String target;
    private final LinkStats stats;
    private byte[] clientNonce;
    private byte[] serverNonce;
    /** The version chosen in AUTH: min(MAX_VERSION, the server's max_version). */
    private int version;
    private ScheduledFuture<?> deadline;
    /** Why the link is closing before WELCOME, reported when it has closed. */
    private String failure;

    LinkHandshakeHandler(LinkSettings settings, LinkMultiplexer multiplexer, LinkMultiplexer.Listener listener,
                         String target, LinkStats stats) {
        this.settings = settings;
        this.multiplexer = multiplexer;
        this.listener = listener;
        this.target = target;
        this.stats = stats;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        deadline = ctx.executor().schedule(
                () -> close(ctx, "handshake timed out after " + settings.handshakeTimeout()),
                settings.handshakeTimeout().toNanos(), TimeUnit.NANOSECONDS);
        ctx.fireChannelActive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        if (deadline != null) {
            deadline.cancel(false);
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        Frame frame = (Frame) msg;
        if (failure != null) {
            return;
        }
        if (serverNonce == null) {
            onHello(ctx, frame);
        } else {
            onWelcome(ctx, frame);
        }
    }

    private void onHello(ChannelHandlerContext ctx, Frame frame) {
        if (!(frame instanceof Frame.Hello hello)) {
            fail(ctx, Frame.Error.PROTOCOL_ERROR, "expected HELLO, got " + frame.getClass().getSimpleName());
            return;
        }
        int chosen = Math.min(MAX_VERSION, hello.maxVersion());
        if (chosen < 1 || hello.minVersion() > chosen) {
            fail(ctx, Frame.Error.UNSUPPORTED_VERSION, "server speaks versions " + hello.minVersion() + "-"
                    + hello.maxVersion() + " (expected: a range with a version from 1 to " + MAX_VERSION + ")");
            return;
        }
        version = chosen;
        serverNonce = hello.serverNonce();
        clientNonce = HandshakeProof.newNonce();
        byte[] mac = settings.proof().authMac(version, serverNonce, clientNonce, settings.ecmName());
        LinkFrames.send(ctx.channel(), stats, new Frame.Auth(version, clientNonce, mac, settings.ecmName()));
    }

    private void onWelcome(ChannelHandlerContext ctx, Frame frame) {
        if (frame instanceof Frame.Error error) {
            close(ctx, "server refused the handshake: " + error.reason() + " (code " + error.code()
                    + "; check that megaphone.link.secret matches mod_megaphone's secret)");
            return;
        }
        if (!(frame instanceof Frame.Welcome welcome)) {
            fail(ctx, Frame.Error.PROTOCOL_ERROR, "expected WELCOME, got " + frame.getClass().getSimpleName());
            return;
        }
        if (!settings.proof().welcomeMatches(version, clientNonce, serverNonce, welcome.mac())) {
            fail(ctx, Frame.Error.AUTH_FAILED, "server's WELCOME proof is wrong (the two sides' secrets differ)");
            return;
        }
        if (welcome.hasStreamFields() != (version >= 2)) {
            fail(ctx, Frame.Error.PROTOCOL_ERROR, "WELCOME " + (welcome.hasStreamFields() ? "with" : "without")
                    + " max_streams and stream_window on a version " + version + " link (expected: them on version 2"
                    + " only)");
            return;
        }
        long heartbeatNanos = settings.heartbeat().toNanos();
        if (welcome.heartbeatMillis() > 0) {
            heartbeatNanos = Math.min(heartbeatNanos, TimeUnit.MILLISECONDS.toNanos(welcome.heartbeatMillis()));
        }
        LinkHeartbeatHandler heartbeat = new LinkHeartbeatHandler(heartbeatNanos, settings.stallTimeout().toNanos(),
                "link " + target + " (node " + welcome.node() + ")", stats, multiplexer::inflightCount,
                () -> listener.anotherLinkAnswers(multiplexer));
        ctx.pipeline().addAfter(ctx.name(), null, heartbeat);
        ctx.pipeline().addAfter(ctx.name(), null, heartbeat.idleStateHandler());
        ctx.pipeline().remove(this);
        log.info("link {} up: node {}, version {}, max_inflight {}, max_frame {}", target, welcome.node(), version,
                welcome.maxInflight(), welcome.maxFrame());
        multiplexer.ready(welcome, heartbeat, version);
    }

    /** A protocol error of the server's: tell it (ERROR), then close. */
    private void fail(ChannelHandlerContext ctx, int code, String reason) {
        failure = reason;
        LinkFrames.sendErrorAndClose(ctx.channel(), stats, code, reason);
    }

    private void close(ChannelHandlerContext ctx, String reason) {
        failure = reason;
        ctx.close();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        int code = LinkFrames.errorCode(cause);
        if (code != 0) {
            fail(ctx, code, LinkFrames.describe(cause));
        } else {
            close(ctx, LinkFrames.describe(cause));
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        // The slot logs the first failure of a series (with this reason), not every retry.
        String reason = failure != null ? failure : "closed during the handshake";
        log.debug("link {}: {}; closed", target, reason);
        listener.onHandshakeFailed(multiplexer, new LinkHandshakeException(target + ": " + reason));
        ctx.fireChannelInactive();
    }
}
