// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A Java stand-in for mod_megaphone's side of the link, for fast tests of the ECM's link code. It speaks the
 * server side of the handshake and answers each REQUEST with what {@code answer} returns (or holds it when that
 * is null). It is never a replacement for the real ejabberd tests.
 */
public final class FakeMegaphoneServer implements AutoCloseable {

    /** One REQUEST as the fake received it, with the channel it came on. */
    public record Received(Channel channel, Frame.Request request) {
    }

    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final HandshakeProof proof;
    private final Function<Frame.Request, Frame.Response> answer;
    final List<Channel> links = new CopyOnWriteArrayList<>();
    public final Queue<Received> received = new ConcurrentLinkedQueue<>();
    public final Queue<Frame.Cancel> cancels = new ConcurrentLinkedQueue<>();
    /** AUTH frames refused (wrong mac): proof that a client tried and failed. */
    final java.util.concurrent.atomic.AtomicInteger refusedAuths = new java.util.concurrent.atomic.AtomicInteger();
    /** When true the fake stops answering PINGs: a link that is up but stalled. */
    volatile boolean stalled;
    /** Links on which the fake sends nothing any more (no PONG, no RESPONSE), though it still reads them. */
    final java.util.Set<Channel> silent = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** TCP connections accepted, and open now: what a client left behind shows here. */
    final java.util.concurrent.atomic.AtomicInteger accepted = new java.util.concurrent.atomic.AtomicInteger();
    final java.util.concurrent.atomic.AtomicInteger open = new java.util.concurrent.atomic.AtomicInteger();
    /** When each connection was accepted, and when each closed, in System.nanoTime(). */
    final Queue<Long> acceptedAt = new ConcurrentLinkedQueue<>();
    final Queue<Long> closedAt = new ConcurrentLinkedQueue<>();
    /** When true a new connection gets no HELLO until {@link #release()}; when holdWelcome, an AUTH no WELCOME. */
    volatile boolean holdHello;
    volatile boolean holdWelcome;
    /** The HELLOs and WELCOMEs held back, in order. */
    final Queue<Runnable> held = new ConcurrentLinkedQueue<>();
    private final Channel server;
    /** The HELLO's max_version: 1 (a v1 mod_megaphone) or 2 (streams). */
    volatile int maxVersion = 1;
    /** The version each AUTH chose, in order. */
    final Queue<Integer> authVersions = new ConcurrentLinkedQueue<>();
    /** v2 WELCOME fields; {@code welcomeStreamFields} null: present exactly on version 2 links. */
    volatile long maxStreams;
    volatile long streamWindow = 65_536;
    volatile Boolean welcomeStreamFields;
    /** When set, every STREAM_OPEN is answered STREAM_CLOSE with this code (1013: over max_streams, draining). */
    volatile int refuseStreamsWith;
    /** When true, DATA is echoed but no WINDOW goes back: the ECM's credit runs out. */
    volatile boolean holdWindow;
    final Queue<Frame.StreamOpen> streamOpens = new ConcurrentLinkedQueue<>();
    final Queue<Frame.Data> dataReceived = new ConcurrentLinkedQueue<>();
    final Queue<Frame.StreamClose> streamCloses = new ConcurrentLinkedQueue<>();
    /** The link each STREAM_OPEN came on, in order. */
    final Queue<Channel> streamOpenedOn = new ConcurrentLinkedQueue<>();
    final Queue<Frame.Window> windowsReceived = new ConcurrentLinkedQueue<>();
    /** Open streams by id (ids are per link; tests use one link), with the channel each came on. */
    final java.util.Map<Integer, Channel> streams = new java.util.concurrent.ConcurrentHashMap<>();

    public FakeMegaphoneServer(byte[] secret, Function<Frame.Request, Frame.Response> answer) throws InterruptedException {
        this(secret, answer, new InetSocketAddress("127.0.0.1", 0));
    }

    FakeMegaphoneServer(byte[] secret, Function<Frame.Request, Frame.Response> answer, InetSocketAddress bind)
            throws InterruptedException {
        this.proof = new HandshakeProof(secret);
        this.answer = answer;
        this.server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new LinkFrameDecoder(1 << 20, new LinkStats()), new ServerSide());
                    }
                }).bind(bind).sync().channel();
    }

    /** An answer function that echoes the request's body back with status 200. */
    static Frame.Response echo(Frame.Request request) {
        return new Frame.Response(request.id(), 200, "text/xml; charset=utf-8", request.envelope().body());
    }

    String address() {
        InetSocketAddress local = (InetSocketAddress) server.localAddress();
        return local.getAddress().getHostAddress() + ":" + local.getPort();
    }

    public InetSocketAddress socketAddress() {
        return (InetSocketAddress) server.localAddress();
    }

    public void answer(Received held, int status, String body) {
        held.channel().writeAndFlush(FrameCodec.encode(new Frame.Response(held.request().id(), status,
                "text/xml; charset=utf-8", body.getBytes(StandardCharsets.UTF_8)), held.channel().alloc()));
    }

    /** Refuses a held request as mod_megaphone does over max_inflight or while draining: 503, no type, no body. */
    void refuse(Received held) {
        held.channel().writeAndFlush(FrameCodec.encode(new Frame.Response(held.request().id(), 503, "", new byte[0]),
                held.channel().alloc()));
    }

    /** Sends GOAWAY on every link, as mod_megaphone does when it stops. */
    void goAway() {
        for (Channel link : links) {
            link.writeAndFlush(FrameCodec.encode(new Frame.GoAway(0, "shutdown"), link.alloc()));
        }
    }

    static void send(Channel channel, Frame frame) {
        channel.writeAndFlush(FrameCodec.encode(frame, channel.alloc()));
    }

    /** Sends {@code frame} on the link stream {@code stream} came on. */
    void sendOnStream(int stream, Frame frame) {
        send(streams.get(stream), frame);
    }

    /** Ends a stream from the server's side. */
    void closeStream(int stream, int code, String reason) {
        Channel channel = streams.remove(stream);
        send(channel, new Frame.StreamClose(stream, code, reason));
    }

    /** Sends every held HELLO or WELCOME (to connections still open). */
    void release() {
        Runnable next;
        while ((next = held.poll()) != null) {
            next.run();
        }
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        links.forEach(Channel::close);
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private final class ServerSide extends SimpleChannelInboundHandler<Frame> {
        private byte[] serverNonce;
        private boolean authenticated;

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            acceptedAt.add(System.nanoTime());
            accepted.incrementAndGet();
            open.incrementAndGet();
            serverNonce = HandshakeProof.newNonce();
            Runnable hello = () -> ctx.writeAndFlush(FrameCodec.encode(new Frame.Hello(1, maxVersion, serverNonce),
                    ctx.alloc()));
            if (holdHello) {
                held.add(hello);
            } else {
                hello.run();
            }
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, Frame frame) {
            if (!authenticated) {
                if (frame instanceof Frame.Auth auth && auth.version() <= maxVersion && HandshakeProof.matches(
                        proof.authMac(auth.version(), serverNonce, auth.clientNonce(), auth.name()), auth.mac())) {
                    authenticated = true;
                    authVersions.add(auth.version());
                    Runnable welcome = () -> {
                        if (!ctx.channel().isActive()) {
                            return;
                        }
                        links.add(ctx.channel());
                        byte[] mac = proof.welcomeMac(auth.version(), auth.clientNonce(), serverNonce);
                        Boolean fields = welcomeStreamFields;
                        boolean withStreams = fields != null ? fields : auth.version() >= 2;
                        Frame.Welcome w = withStreams
                                ? new Frame.Welcome(mac, 1 << 20, 10_000, 15_000, "fake@node", maxStreams, streamWindow)
                                : new Frame.Welcome(mac, 1 << 20, 10_000, 15_000, "fake@node");
                        ctx.writeAndFlush(FrameCodec.encode(w, ctx.alloc()));
                    };
                    if (holdWelcome) {
                        held.add(welcome);
                    } else {
                        welcome.run();
                    }
                } else {
                    refusedAuths.incrementAndGet();
                    ctx.writeAndFlush(FrameCodec.encode(new Frame.Error(Frame.Error.AUTH_FAILED, "auth_failed"),
                            ctx.alloc())).addListener(f -> ctx.close());
                }
                return;
            }
            if (frame instanceof Frame.Request request) {
                received.add(new Received(ctx.channel(), request));
                Frame.Response response = answer.apply(request);
                if (response != null && !silent.contains(ctx.channel())) {
                    ctx.writeAndFlush(FrameCodec.encode(response, ctx.alloc()));
                }
            } else if (frame instanceof Frame.StreamOpen open) {
                streamOpens.add(open);
                streamOpenedOn.add(ctx.channel());
                int refuse = refuseStreamsWith;
                if (refuse != 0) {
                    send(ctx.channel(), new Frame.StreamClose(open.stream(), refuse, "refused"));
                } else {
                    streams.put(open.stream(), ctx.channel());
                    send(ctx.channel(), new Frame.StreamOpened(open.stream(), streamWindow));
                }
            } else if (frame instanceof Frame.Data data) {
                dataReceived.add(data);
                if (streams.containsKey(data.stream()) && !silent.contains(ctx.channel())) {
                    send(ctx.channel(), data); // the echo
                    if (!holdWindow) {
                        send(ctx.channel(), new Frame.Window(data.stream(), data.payload().length));
                    }
                }
            } else if (frame instanceof Frame.Window window) {
                windowsReceived.add(window);
            } else if (frame instanceof Frame.StreamClose close) {
                streamCloses.add(close);
                streams.remove(close.stream());
            } else if (frame instanceof Frame.Cancel cancel) {
                cancels.add(cancel);
            } else if (frame instanceof Frame.Ping ping && !stalled && !silent.contains(ctx.channel())) {
                ctx.writeAndFlush(FrameCodec.encode(new Frame.Pong(ping.opaque()), ctx.alloc()));
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            closedAt.add(System.nanoTime());
            open.decrementAndGet();
            links.remove(ctx.channel());
        }
    }
}
