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

/**
 * A stand-in for mod_megaphone that answers every REQUEST at once with a small empty {@code <body/>}, for the
 * forwarding-throughput benchmark (bench/forwarding.sh): what the ECM costs per request when ejabberd costs
 * nothing. Same handshake as {@link HoldingUpstream}; loopback only.
 *
 * <p>Usage: {@code InstantUpstream <port> <secret> [threads]}. Answers are flushed once per read batch.
 */
public final class InstantUpstream {

    static final byte[] BODY = "<body xmlns='http://jabber.org/protocol/httpbind'/>".getBytes(StandardCharsets.UTF_8);
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final AtomicLong REQUESTS = new AtomicLong();

    private InstantUpstream() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: InstantUpstream <port> <secret> [threads]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        byte[] secret = args[1].getBytes(StandardCharsets.UTF_8);
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        new HandshakeProof(secret);
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(threads, NioIoHandler.newFactory());
        Channel server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new LengthFieldBasedFrameDecoder(1 << 20, 0, 4, 0, 4),
                                new ServerSide(secret));
                    }
                }).bind(new InetSocketAddress("127.0.0.1", port)).sync().channel();
        System.out.println("instant upstream listening on " + server.localAddress());
        long last = -1;
        while (server.isOpen()) {
            Thread.sleep(5000);
            long requests = REQUESTS.get();
            if (requests != last) {
                System.out.println("instant upstream: " + requests + " REQUEST answered");
                last = requests;
            }
        }
    }

    private static final class ServerSide extends SimpleChannelInboundHandler<ByteBuf> {
        private final byte[] secret;
        private byte[] serverNonce;
        private boolean authenticated;
        private boolean pendingFlush;

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
                    byte[] expected = HoldingUpstream.hmac(secret, "megaphone-auth".getBytes(StandardCharsets.US_ASCII),
                            new byte[] {1}, serverNonce, auth.clientNonce(), auth.name().getBytes(StandardCharsets.UTF_8));
                    if (java.security.MessageDigest.isEqual(expected, auth.mac())) {
                        authenticated = true;
                        byte[] welcomeMac = HoldingUpstream.hmac(secret,
                                "megaphone-welcome".getBytes(StandardCharsets.US_ASCII), new byte[] {1},
                                auth.clientNonce(), serverNonce);
                        ctx.writeAndFlush(FrameCodec.encode(new Frame.Welcome(welcomeMac, 1 << 20, 1_000_000,
                                15_000, "instant-upstream@bench"), ctx.alloc()));
                        System.out.println("instant upstream: link from " + ctx.channel().remoteAddress() + " up");
                        return;
                    }
                }
                ctx.writeAndFlush(FrameCodec.encode(new Frame.Error(Frame.Error.AUTH_FAILED, "auth_failed"),
                        ctx.alloc())).addListener(f -> ctx.close());
                return;
            }
            if (frame instanceof Frame.Request request) {
                REQUESTS.incrementAndGet();
                ctx.write(FrameCodec.encode(new Frame.Response(request.id(), 200, "text/xml; charset=utf-8", BODY),
                        ctx.alloc()));
                pendingFlush = true;
            } else if (frame instanceof Frame.Ping ping) {
                ctx.writeAndFlush(FrameCodec.encode(new Frame.Pong(ping.opaque()), ctx.alloc()));
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            if (pendingFlush) {
                pendingFlush = false;
                ctx.flush();
            }
        }
    }
}
