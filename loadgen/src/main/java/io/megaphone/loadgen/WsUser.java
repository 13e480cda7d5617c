// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.websocketx.CloseWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketClientHandshakeException;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolHandler;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketFrameAggregator;
import io.netty.util.AttributeKey;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One simulated XMPP over WebSocket user (RFC 7395, subprotocol {@code xmpp}), like Strophe.js: one WebSocket,
 * the login of {@link XmppWsLogin}, then idle or chatting on the same socket. A login whose connection or
 * handshake fails (a refused handshake is a 503 from the ECM) starts over on a new socket, up to 5 attempts; an
 * online user whose socket is lost counts an error and is gone (no reconnect). Event loop thread only.
 */
final class WsUser extends SimUser {

    static final AttributeKey<WsUser> KEY = AttributeKey.valueOf("megaphone.loadgen.ws");
    private static final Pattern MESSAGE_BODY = Pattern.compile("<body>m (\\d+) (\\d+) (\\d+)</body>");
    private static final int MAX_ATTEMPTS = 5;

    enum State { NEW, CONNECTING, LOGIN, ONLINE, ENDING, DONE, DEAD }

    private final LoadGenerator gen;
    private final Stats stats;
    private final Bootstrap bootstrap;
    final URI uri;
    private final InetSocketAddress remote;
    private final InetSocketAddress local;
    private final boolean sender;
    State state = State.NEW;
    private Channel channel;
    private XmppWsLogin login;
    private long startNanos;
    private long stepNanos;
    private int attempts;
    private boolean closeReceived;
    private long messageSeq;

    WsUser(int index, String name, LoadGenerator gen, Bootstrap bootstrap, URI uri, InetSocketAddress local,
           boolean sender) {
        super(index, name);
        this.gen = gen;
        this.stats = gen.stats;
        this.bootstrap = bootstrap;
        this.uri = uri;
        this.remote = new InetSocketAddress(uri.getHost(), uri.getPort() > 0 ? uri.getPort() : 80);
        this.local = local;
        this.sender = sender;
    }

    /** The pipeline of a user's socket: HTTP for the upgrade, then WebSocket frames (whole messages) to the user. */
    static ChannelInitializer<SocketChannel> initializer(Stats stats) {
        Handler handler = new Handler(stats);
        return new ChannelInitializer<>() {
            @Override
            protected void initChannel(SocketChannel ch) {
                WsUser user = ch.attr(KEY).get();
                WebSocketClientProtocolConfig config = WebSocketClientProtocolConfig.newBuilder()
                        .webSocketUri(user.uri)
                        .subprotocol("xmpp")
                        .handleCloseFrames(false)
                        .handshakeTimeoutMillis(30_000)
                        .maxFramePayloadLength(1 << 20)
                        .build();
                ch.pipeline().addLast(new HttpClientCodec(), new HttpObjectAggregator(65536),
                        new WebSocketClientProtocolHandler(config), new WebSocketFrameAggregator(1 << 20), handler);
            }
        };
    }

    @Override
    boolean sender() {
        return sender;
    }

    @Override
    void start() {
        stats.usersStarted++;
        startNanos = System.nanoTime();
        connect();
    }

    private void connect() {
        state = State.CONNECTING;
        attempts++;
        closeReceived = false;
        Bootstrap b = bootstrap.clone().attr(KEY, this);
        ChannelFuture cf = local == null ? b.connect(remote) : b.connect(remote, local);
        Channel ch = cf.channel();
        channel = ch;
        cf.addListener(f -> {
            if (!f.isSuccess()) {
                if (channel == ch) {
                    channel = null;
                    retryLogin("connect-failed:" + Conn.simpleName(f.cause()));
                }
                return;
            }
            stats.connectionsOpened++;
            stats.openConnections++;
            ch.closeFuture().addListener(x -> closed(ch));
        });
    }

    /** The 101 arrived: the XMPP stream starts. */
    void handshakeDone(Channel ch) {
        if (ch != channel || state != State.CONNECTING) {
            return;
        }
        state = State.LOGIN;
        login = new XmppWsLogin(gen.options.domain, name, gen.options.password, "lg");
        stepNanos = System.nanoTime();
        write(login.start());
    }

    void handshakeFailed(Channel ch, String kind) {
        if (ch != channel) {
            return;
        }
        channel = null;
        ch.close();
        retryLogin(kind);
    }

    /** Before ONLINE: counts {@code kind} and starts over on a new socket later, or gives up. */
    private void retryLogin(String kind) {
        if (state != State.CONNECTING && state != State.LOGIN) {
            return;
        }
        stats.error(kind);
        if (attempts >= MAX_ATTEMPTS) {
            stats.error("gave-up-after-5-attempts");
            die();
            return;
        }
        state = State.CONNECTING;
        stats.resends++;
        gen.loop().schedule(() -> {
            if (state == State.CONNECTING && channel == null) {
                connect();
            }
        }, 500 + ThreadLocalRandom.current().nextLong(500), TimeUnit.MILLISECONDS);
    }

    private void write(String text) {
        Channel ch = channel;
        if (ch == null) {
            return;
        }
        stats.requestsSent++;
        ch.writeAndFlush(new TextWebSocketFrame(text)).addListener(f -> {
            if (!f.isSuccess()) {
                ch.close();
            }
        });
    }

    /** One whole text message from the server. */
    void onText(Channel ch, String text) {
        if (ch != channel) {
            return;
        }
        stats.answers++;
        switch (state) {
            case LOGIN -> {
                XmppWsLogin.Reply reply = login.onMessage(text);
                if (reply.failure() != null) {
                    stats.error(reply.failure());
                    die();
                    return;
                }
                long now = System.nanoTime();
                if (!reply.send().isEmpty() || login.step() == XmppWsLogin.Step.ONLINE) {
                    Stats.record(stats.request, now - stepNanos);
                    stepNanos = now;
                }
                for (String s : reply.send()) {
                    write(s);
                }
                if (login.step() == XmppWsLogin.Step.ONLINE) {
                    online();
                }
            }
            case ONLINE, ENDING -> {
                String t = text.strip();
                if (t.startsWith("<message")) {
                    receivedMessages(t);
                } else if (t.startsWith("<close")) {
                    serverClosed(null);
                } else if (t.contains("<stream:error") && state == State.ONLINE) {
                    stats.error("ws-stream-error");
                }
            }
            default -> { }
        }
    }

    private void online() {
        state = State.ONLINE;
        stats.usersOnline++;
        Stats.record(stats.login, System.nanoTime() - startNanos);
        gen.online(this);
    }

    /** The server's {@code <close/>} (code null) or a WebSocket close frame. */
    void serverClosed(Integer code) {
        closeReceived = true;
        switch (state) {
            case ENDING -> {
                stats.usersTerminated++;
                finish();
            }
            case ONLINE -> {
                stats.error(code == null ? "ws-server-close" : "ws-close:" + code);
                die();
            }
            case CONNECTING, LOGIN -> {
                Channel ch = channel;
                channel = null;
                if (ch != null) {
                    ch.close();
                }
                retryLogin(code == null ? "ws-close-during-login" : "ws-close:" + code);
            }
            default -> { }
        }
    }

    private void closed(Channel ch) {
        stats.openConnections--;
        if (ch != channel) {
            return;
        }
        channel = null;
        switch (state) {
            case CONNECTING, LOGIN -> retryLogin("connection-closed");
            case ONLINE -> {
                stats.error("connection-closed");
                die();
            }
            case ENDING -> {
                if (closeReceived) {
                    stats.usersTerminated++;
                }
                finish();
            }
            default -> { }
        }
    }

    @Override
    void chat(SimUser to) {
        long seq = ++messageSeq;
        String text = "<message to='" + to.name + "@" + gen.options.domain + "' type='chat' xmlns='jabber:client'>"
                + "<body>m " + index + " " + seq + " " + System.nanoTime() + "</body></message>";
        stats.messagesQueued++;
        stats.awaitedMessages.add(Stats.messageKey(index, seq));
        Channel ch = channel;
        if (ch == null) {
            return;
        }
        stats.requestsSent++;
        ch.writeAndFlush(new TextWebSocketFrame(text)).addListener(f -> {
            if (f.isSuccess()) {
                stats.messagesSent++;
            } else {
                ch.close();
            }
        });
    }

    private void receivedMessages(String text) {
        Matcher m = MESSAGE_BODY.matcher(text);
        long now = System.nanoTime();
        while (m.find()) {
            if (stats.messageReceived(Stats.messageKey(Long.parseLong(m.group(1)), Long.parseLong(m.group(2))))) {
                Stats.record(stats.delivery, now - Long.parseLong(m.group(3)));
            }
        }
    }

    @Override
    void sweep(long now) {
        if ((state == State.CONNECTING || state == State.LOGIN)
                && now - startNanos > (long) (gen.options.loginTimeout * 1e9)) {
            stats.error("login-timeout");
            die();
        }
    }

    /** Ends the stream: unavailable presence and {@code <close/>}; done when the server's close comes back. */
    @Override
    void end(boolean terminate) {
        if (state != State.ONLINE) {
            if (state != State.DEAD && state != State.DONE) {
                die();
            }
            return;
        }
        state = State.ENDING;
        gen.offline(this);
        if (!terminate) {
            finish();
            return;
        }
        write("<presence type='unavailable' xmlns='jabber:client'/>");
        write(XmppWsLogin.close());
    }

    private void finish() {
        if (state == State.ONLINE) {
            gen.offline(this);
        }
        state = State.DONE;
        closeConnections();
    }

    private void die() {
        if (state == State.ONLINE) {
            gen.offline(this);
        }
        if (state != State.DEAD) {
            stats.usersFailed++;
        }
        state = State.DEAD;
        closeConnections();
    }

    @Override
    void closeConnections() {
        Channel ch = channel;
        channel = null;
        if (ch != null) {
            if (ch.isActive() && closeReceived) {
                ch.writeAndFlush(new CloseWebSocketFrame(1000, null)).addListener(f -> ch.close());
            } else {
                ch.close();
            }
        }
    }

    @Override
    boolean settled() {
        return state == State.ONLINE || state == State.DEAD || state == State.DONE || state == State.ENDING;
    }

    @Override
    boolean finished() {
        return state == State.DONE || state == State.DEAD;
    }

    @Override
    boolean ending() {
        return state == State.ENDING;
    }

    /** Shared by every user's socket: routes handshake events and whole messages to the socket's {@link WsUser}. */
    @ChannelHandler.Sharable
    static final class Handler extends SimpleChannelInboundHandler<WebSocketFrame> {
        private final Stats stats;

        Handler(Stats stats) {
            this.stats = stats;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, WebSocketFrame frame) {
            WsUser user = ctx.channel().attr(KEY).get();
            if (user == null) {
                return;
            }
            if (frame instanceof TextWebSocketFrame text) {
                user.onText(ctx.channel(), text.text());
            } else if (frame instanceof CloseWebSocketFrame close) {
                if (ctx.channel() == user.channel) {
                    user.serverClosed(close.statusCode());
                }
                ctx.close();
            }
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            WsUser user = ctx.channel().attr(KEY).get();
            if (user != null && evt == WebSocketClientProtocolHandler.ClientHandshakeStateEvent.HANDSHAKE_COMPLETE) {
                user.handshakeDone(ctx.channel());
            } else if (user != null
                    && evt == WebSocketClientProtocolHandler.ClientHandshakeStateEvent.HANDSHAKE_TIMEOUT) {
                user.handshakeFailed(ctx.channel(), "ws-handshake-timeout");
            }
            super.userEventTriggered(ctx, evt);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            WsUser user = ctx.channel().attr(KEY).get();
            if (cause instanceof WebSocketClientHandshakeException e && user != null) {
                user.handshakeFailed(ctx.channel(), "ws-handshake:"
                        + (e.response() != null ? e.response().status().code() : "failed"));
                return;
            }
            stats.error("io:" + Conn.simpleName(cause));
            ctx.close();
        }
    }
}
