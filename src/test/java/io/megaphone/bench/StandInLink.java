// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import io.megaphone.link.Frame;
import io.megaphone.link.FrameCodec;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import java.net.InetSocketAddress;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import javax.crypto.Mac;
import java.util.function.Supplier;
import javax.crypto.spec.SecretKeySpec;

/**
 * The server side of one link for the benchmarks' stand-ins of mod_megaphone: the handshake of docs/protocol.md
 * section 2 (HELLO, check AUTH's mac, WELCOME or ERROR), PING → PONG; everything after the handshake goes to
 * {@link #onFrame}. A stand-in built with {@code maxVersion} 2 offers version 2 (section 9: WebSocket streams, with
 * {@code max_streams} 0 and a {@code stream_window} of 262,144 bytes, mod_megaphone's default) and takes either.
 * Uses only the public API of {@code io.megaphone.link} and computes the macs itself from the spec, as a
 * third-party server would. After a {@code LengthFieldBasedFrameDecoder(1 << 20, 0, 4, 0, 4)}.
 */
abstract class StandInLink extends SimpleChannelInboundHandler<ByteBuf> {

    private static final SecureRandom RANDOM = new SecureRandom();

    /** WELCOME's stream_window on a version-2 link: mod_megaphone's default. */
    static final long STREAM_WINDOW = 262_144;

    private final byte[] secret;
    private final String node;
    private final int maxVersion;
    private byte[] serverNonce;
    private boolean authenticated;

    StandInLink(byte[] secret, String node) {
        this(secret, node, 1);
    }

    StandInLink(byte[] secret, String node, int maxVersion) {
        this.secret = secret;
        this.node = node;
        this.maxVersion = maxVersion;
    }

    /** Listens on 127.0.0.1:{@code port} with one {@code link.get()} per accepted connection. */
    static Channel listen(int port, int threads, Supplier<StandInLink> link) throws InterruptedException {
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(threads, NioIoHandler.newFactory());
        return new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(1 << 20, 0, 4, 0, 4), link.get());
                    }
                }).bind(new InetSocketAddress("127.0.0.1", port)).sync().channel();
    }

    /** A frame after the handshake (PING is answered already). */
    abstract void onFrame(ChannelHandlerContext ctx, Frame frame);

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        serverNonce = new byte[32];
        RANDOM.nextBytes(serverNonce);
        ctx.writeAndFlush(FrameCodec.encode(new Frame.Hello(1, maxVersion, serverNonce), ctx.alloc()));
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, ByteBuf bytes) {
        Frame frame = FrameCodec.decode(bytes);
        if (authenticated) {
            if (frame instanceof Frame.Ping ping) {
                ctx.writeAndFlush(FrameCodec.encode(new Frame.Pong(ping.opaque()), ctx.alloc()));
            } else {
                onFrame(ctx, frame);
            }
            return;
        }
        if (frame instanceof Frame.Auth auth && auth.version() >= 1 && auth.version() <= maxVersion
                && MessageDigest.isEqual(hmac("megaphone-auth", auth.version(), serverNonce, auth.clientNonce(),
                        auth.name().getBytes(StandardCharsets.UTF_8)), auth.mac())) {
            authenticated = true;
            byte[] welcomeMac = hmac("megaphone-welcome", auth.version(), auth.clientNonce(), serverNonce);
            Frame.Welcome welcome = auth.version() >= 2
                    ? new Frame.Welcome(welcomeMac, 1 << 20, 1_000_000, 15_000, node, 0, STREAM_WINDOW)
                    : new Frame.Welcome(welcomeMac, 1 << 20, 1_000_000, 15_000, node);
            ctx.writeAndFlush(FrameCodec.encode(welcome, ctx.alloc()));
            System.out.println(node + ": link from " + ctx.channel().remoteAddress() + " (" + auth.name()
                    + ") authenticated");
            return;
        }
        System.out.println(node + ": handshake refused from " + ctx.channel().remoteAddress());
        ctx.writeAndFlush(FrameCodec.encode(new Frame.Error(Frame.Error.AUTH_FAILED, "auth_failed"), ctx.alloc()))
                .addListener(f -> ctx.close());
    }

    /** HMAC-SHA256(secret, label || version || parts...). */
    private byte[] hmac(String label, int version, byte[]... parts) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            mac.update(label.getBytes(StandardCharsets.US_ASCII));
            mac.update((byte) version);
            for (byte[] part : parts) {
                mac.update(part);
            }
            return mac.doFinal();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }
}
