package io.megaphone.bench;

import io.megaphone.link.Frame;
import io.megaphone.link.FrameCodec;
import io.megaphone.link.HandshakeProof;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.LengthFieldBasedFrameDecoder;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.concurrent.atomic.AtomicLong;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * A stand-in for mod_megaphone's side of the link, for the held-request memory benchmark
 * (bench/held-requests.sh). It completes the handshake of docs/protocol.md section 2, answers PING with PONG,
 * and never answers a REQUEST: every request the ECM forwards stays held there, which is what a long-polling
 * BOSH request is in production. Loopback only.
 *
 * <p>Usage: {@code HoldingUpstream <port> <secret>}. Prints "upstream listening on 127.0.0.1:<port>", then a
 * line per link and a count of REQUEST/CANCEL frames every 5 seconds when it changed.
 *
 * <p>It uses only the public API of {@code io.megaphone.link} (Frame, FrameCodec) and computes the handshake
 * MACs itself with the formulas of docs/protocol.md (HandshakeProof's mac methods are package-private).
 */
public final class HoldingUpstream {

    private static final SecureRandom RANDOM = new SecureRandom();
    private static final AtomicLong REQUESTS = new AtomicLong();
    private static final AtomicLong CANCELS = new AtomicLong();

    private HoldingUpstream() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: HoldingUpstream <port> <secret>");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        byte[] secret = args[1].getBytes(StandardCharsets.UTF_8);
        new HandshakeProof(secret); // same validation as the ECM (non-empty secret)
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        Channel server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(1 << 20, 0, 4, 0, 4),
                                new ServerSide(secret));
                    }
                }).bind(new InetSocketAddress("127.0.0.1", port)).sync().channel();
        System.out.println("upstream listening on " + server.localAddress());
        long lastRequests = -1;
        long lastCancels = -1;
        while (server.isOpen()) {
            Thread.sleep(5000);
            long requests = REQUESTS.get();
            long cancels = CANCELS.get();
            if (requests != lastRequests || cancels != lastCancels) {
                System.out.println("upstream: " + requests + " REQUEST, " + cancels + " CANCEL received");
                lastRequests = requests;
                lastCancels = cancels;
            }
        }
    }

    static byte[] hmac(byte[] secret, byte[]... parts) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            for (byte[] part : parts) {
                mac.update(part);
            }
            return mac.doFinal();
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static final class ServerSide extends SimpleChannelInboundHandler<ByteBuf> {
        private final byte[] secret;
        private byte[] serverNonce;
        private boolean authenticated;

        ServerSide(byte[] secret) {
            this.secret = secret;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            serverNonce = new byte[32];
            RANDOM.nextBytes(serverNonce);
            ctx.writeAndFlush(FrameCodec.encode(new Frame.Hello(1, 1, serverNonce), ctx.alloc()));
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ByteBuf bytes) {
            Frame frame = FrameCodec.decode(bytes);
            if (!authenticated) {
                if (frame instanceof Frame.Auth auth && auth.version() == 1) {
                    byte[] expected = hmac(secret, "megaphone-auth".getBytes(StandardCharsets.US_ASCII),
                            new byte[] {1}, serverNonce, auth.clientNonce(),
                            auth.name().getBytes(StandardCharsets.UTF_8));
                    if (java.security.MessageDigest.isEqual(expected, auth.mac())) {
                        authenticated = true;
                        byte[] welcomeMac = hmac(secret, "megaphone-welcome".getBytes(StandardCharsets.US_ASCII),
                                new byte[] {1}, auth.clientNonce(), serverNonce);
                        ctx.writeAndFlush(FrameCodec.encode(new Frame.Welcome(welcomeMac, 1 << 20, 1_000_000,
                                15_000, "holding-upstream@bench"), ctx.alloc()));
                        System.out.println("upstream: link from " + ctx.channel().remoteAddress() + " ("
                                + auth.name() + ") authenticated");
                        return;
                    }
                }
                System.out.println("upstream: handshake refused from " + ctx.channel().remoteAddress());
                ctx.writeAndFlush(FrameCodec.encode(new Frame.Error(Frame.Error.AUTH_FAILED, "auth_failed"),
                        ctx.alloc())).addListener(f -> ctx.close());
                return;
            }
            if (frame instanceof Frame.Request) {
                REQUESTS.incrementAndGet(); // held forever: never answered
            } else if (frame instanceof Frame.Cancel) {
                CANCELS.incrementAndGet();
            } else if (frame instanceof Frame.Ping ping) {
                ctx.writeAndFlush(FrameCodec.encode(new Frame.Pong(ping.opaque()), ctx.alloc()));
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            System.out.println("upstream: link from " + ctx.channel().remoteAddress() + " closed");
        }
    }
}
