package io.megaphone.edge;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.haproxy.HAProxyMessageDecoder;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpServerCodec;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.web.server.GracefulShutdownCallback;
import org.springframework.boot.web.server.GracefulShutdownResult;
import org.springframework.boot.web.server.PortInUseException;
import org.springframework.boot.web.server.WebServer;
import org.springframework.boot.web.server.WebServerException;

/**
 * The BOSH port: a plain Netty HTTP/1.1 server (epoll where available) whose pipeline per connection is only
 * Netty's HTTP codec and a {@link BoshConnection}. It is the application's main web server, so {@code server.port},
 * {@code server.address} and Spring's lifecycle apply to it; Actuator runs on the management port.
 */
final class BoshServer implements WebServer {

    private static final Logger log = LoggerFactory.getLogger(BoshServer.class);

    private final BoshEdge edge;
    private final InetAddress address;
    private final int requestedPort;
    private final int ioThreads;
    private EventLoopGroup group;
    private Channel server;
    private volatile int port = -1;

    BoshServer(BoshEdge edge, InetAddress address, int port, int ioThreads) {
        this.edge = edge;
        this.address = address;
        this.requestedPort = port;
        this.ioThreads = ioThreads;
    }

    @Override
    public synchronized void start() throws WebServerException {
        if (server != null) {
            return;
        }
        boolean epoll = Epoll.isAvailable();
        IoHandlerFactory io = epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory();
        Class<? extends ServerChannel> channel = epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
        group = new MultiThreadIoEventLoopGroup(ioThreads, io);
        ServerBootstrap bootstrap = new ServerBootstrap().group(group).channel(channel)
                .option(ChannelOption.SO_BACKLOG, 4096)
                .option(ChannelOption.SO_REUSEADDR, true) // rebind at once after a restart, despite TIME_WAITs
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        if (edge.proxyProtocol) {
                            ch.pipeline().addLast(new HAProxyMessageDecoder());
                        }
                        ch.pipeline().addLast(new HttpServerCodec(new HttpDecoderConfig()
                                .setMaxInitialLineLength(4096).setMaxHeaderSize(16384).setMaxChunkSize(65536)
                                .setInitialBufferSize(64)), new BoshConnection(edge));
                    }
                });
        int bindPort = port > 0 ? port : requestedPort; // a restart keeps the port it had
        InetSocketAddress bind = address == null ? new InetSocketAddress(bindPort)
                : new InetSocketAddress(address, bindPort);
        try {
            server = bootstrap.bind(bind).sync().channel();
        } catch (Exception e) {
            group.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            group = null;
            if (e instanceof java.net.BindException) {
                throw new PortInUseException(requestedPort, e);
            }
            throw new WebServerException("BOSH server cannot bind " + bind, e);
        }
        port = ((InetSocketAddress) server.localAddress()).getPort();
        log.info("BOSH server listening on {} ({}, {} I/O threads)", server.localAddress(), epoll ? "epoll" : "nio",
                ioThreads);
    }

    /** Stops accepting; the drain (EdgeDrain) has already let held requests finish. */
    @Override
    public void shutDownGracefully(GracefulShutdownCallback callback) {
        Channel listening = server;
        if (listening != null) {
            listening.close().syncUninterruptibly();
        }
        callback.shutdownComplete(edge.pool.inflight() == 0 ? GracefulShutdownResult.IDLE
                : GracefulShutdownResult.REQUESTS_ACTIVE);
    }

    @Override
    public synchronized void stop() throws WebServerException {
        if (server != null) {
            server.close().syncUninterruptibly();
            server = null;
        }
        if (group != null) {
            group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
            group = null;
        }
    }

    @Override
    public int getPort() {
        return port;
    }
}
