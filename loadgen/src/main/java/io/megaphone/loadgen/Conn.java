// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AttributeKey;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;

/**
 * One browser-like HTTP/1.1 keep-alive connection that carries one request at a time. It connects lazily (and
 * again after the server closed it), from its local source address. Event loop thread only.
 */
final class Conn {

    static final AttributeKey<Conn> KEY = AttributeKey.valueOf("megaphone.loadgen.conn");

    /** What a request's owner hears back. */
    interface Listener {
        void answered(Conn conn, Req req, int status, String body, String retryAfter);

        /** The request got no answer: connect failure, connection closed or reset, timeout. */
        void failed(Conn conn, Req req, String kind);
    }

    /** Makes the connections of one owner (its target URL and source address). */
    interface Factory {
        Conn open(Listener owner);
    }

    /** One request: its body is kept until it is answered, so it can be re-sent with the same rid. */
    static final class Req {
        static final int LOGIN = 0;
        static final int POLL = 1;
        static final int SEND = 2;
        static final int TERMINATE = 3;
        static final int RAW = 4;

        final int kind;
        final long rid;
        final String body;
        final int messages;
        long sentNanos;
        long intendedNanos;
        int attempts;

        Req(int kind, long rid, String body, int messages) {
            this.kind = kind;
            this.rid = rid;
            this.body = body;
            this.messages = messages;
        }
    }

    private final Bootstrap bootstrap;
    private final Stats stats;
    private final URI uri;
    private final String hostHeader;
    private final InetSocketAddress remote;
    private final InetSocketAddress local;
    final Listener listener;
    private Channel channel;
    private boolean connecting;
    Req current;

    Conn(Bootstrap bootstrap, Stats stats, URI uri, InetSocketAddress remote, InetSocketAddress local,
         Listener listener) {
        this.bootstrap = bootstrap;
        this.stats = stats;
        this.uri = uri;
        this.hostHeader = uri.getHost() + (uri.getPort() > 0 ? ":" + uri.getPort() : "");
        this.remote = remote;
        this.local = local;
        this.listener = listener;
    }

    boolean idle() {
        return current == null;
    }

    void send(Req req) {
        if (current != null) {
            throw new IllegalStateException("connection busy");
        }
        current = req;
        req.attempts++;
        req.sentNanos = System.nanoTime();
        if (channel != null && channel.isActive()) {
            write();
        } else if (!connecting) {
            connect();
        }
    }

    private void connect() {
        connecting = true;
        Bootstrap b = bootstrap.clone().attr(KEY, this);
        (local == null ? b.connect(remote) : b.connect(remote, local)).addListener(f -> {
            connecting = false;
            io.netty.channel.ChannelFuture cf = (io.netty.channel.ChannelFuture) f;
            if (!f.isSuccess()) {
                Req req = current;
                current = null;
                listener.failed(this, req, "connect-failed:" + simpleName(f.cause()));
                return;
            }
            Channel ch = cf.channel();
            channel = ch;
            stats.connectionsOpened++;
            stats.openConnections++;
            ch.closeFuture().addListener(x -> closed(ch));
            if (current != null) {
                write();
            }
        });
    }

    private void write() {
        byte[] bytes = current.body.getBytes(StandardCharsets.UTF_8);
        ByteBuf content = Unpooled.wrappedBuffer(bytes);
        FullHttpRequest request = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, HttpMethod.POST,
                uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath(), content);
        request.headers().set(HttpHeaderNames.HOST, hostHeader)
                .set(HttpHeaderNames.CONTENT_TYPE, "text/xml; charset=utf-8")
                .set(HttpHeaderNames.CONTENT_LENGTH, bytes.length)
                .set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
        stats.requestsSent++;
        Channel ch = channel;
        ch.writeAndFlush(request).addListener(f -> {
            if (!f.isSuccess()) {
                ch.close();
            }
        });
    }

    void answered(FullHttpResponse response) {
        Req req = current;
        current = null;
        if (req == null) {
            stats.error("unexpected-answer");
            close();
            return;
        }
        if (!HttpUtil.isKeepAlive(response)) {
            close();
        }
        listener.answered(this, req, response.status().code(), response.content().toString(StandardCharsets.UTF_8),
                response.headers().get(HttpHeaderNames.RETRY_AFTER));
    }

    private void closed(Channel ch) {
        stats.openConnections--;
        if (channel != ch) {
            return;
        }
        channel = null;
        if (current != null && !connecting) {
            Req req = current;
            current = null;
            listener.failed(this, req, "connection-closed");
        }
    }

    /** Gives up the request in flight (its failure is reported with {@code kind}) and closes the connection. */
    void abort(String kind) {
        Req req = current;
        current = null;
        close();
        if (req != null) {
            listener.failed(this, req, kind);
        }
    }

    /** Drops the request in flight silently and closes. */
    void close() {
        Channel ch = channel;
        channel = null;
        if (ch != null) {
            ch.close();
        }
    }

    static String simpleName(Throwable t) {
        if (t == null) {
            return "unknown";
        }
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String msg = root.getMessage();
        String name = root.getClass().getSimpleName();
        if (msg != null && (msg.contains("refused") || msg.contains("reset") || msg.contains("assign")
                || msg.contains("Too many open files"))) {
            return name + "(" + msg.replaceAll("^.*?: ", "").replaceAll("[^A-Za-z ]", "").trim() + ")";
        }
        return name;
    }

    /** Shared by every connection: routes the aggregated response to its {@link Conn}. */
    @ChannelHandler.Sharable
    static final class Handler extends SimpleChannelInboundHandler<FullHttpResponse> {
        private final Stats stats;

        Handler(Stats stats) {
            this.stats = stats;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpResponse response) {
            Conn conn = ctx.channel().attr(KEY).get();
            if (conn != null) {
                conn.answered(response);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            stats.error("io:" + simpleName(cause));
            ctx.close();
        }
    }
}
