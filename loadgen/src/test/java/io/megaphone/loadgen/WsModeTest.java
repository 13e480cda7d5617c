// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler;
import io.netty.util.AttributeKey;
import io.netty.util.ReferenceCountUtil;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --mode ws} end to end against a fake XMPP over WebSocket server (RFC 7395 framing, subprotocol xmpp,
 * PLAIN, bind, ping, message routing between its users, {@code <close/>}), with its phases and counts.
 */
class WsModeTest {

    private static final AttributeKey<String> USER = AttributeKey.valueOf("fake.user");
    private static final Pattern TO = Pattern.compile("<message to='([^@']+)@");

    private final EventLoopGroup serverGroup = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final Map<String, Channel> bound = new ConcurrentHashMap<>();
    /** Handshakes still to refuse with a 503, as the ECM does when no link can take a stream. */
    private final AtomicInteger refuse = new AtomicInteger();
    private final AtomicInteger closesReceived = new AtomicInteger();
    private final AtomicInteger droppedMessages = new AtomicInteger();
    private volatile int dropEvery;
    private final AtomicInteger routed = new AtomicInteger();

    @TempDir
    Path tmp;

    @AfterEach
    void stop() {
        serverGroup.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS);
    }

    @Test
    void everyUserLogsInChatsAndClosesAndEachMessageIsCountedOnce() throws Exception {
        int port = startServer();
        LoadGenerator gen = run(port, 12);
        Stats s = gen.stats;
        assertEquals(12, s.usersOnline);
        assertEquals(0, s.usersFailed);
        assertEquals(12, s.usersTerminated, "each <close/> answered by the server's");
        assertEquals(12, closesReceived.get());
        assertTrue(s.messagesQueued > 20, "messages queued: " + s.messagesQueued);
        assertEquals(s.messagesQueued, s.messagesSent);
        assertEquals(s.messagesQueued, s.messagesReceived);
        assertEquals(routed.get(), s.messagesReceived);
        assertEquals(0, s.messagesDuplicated + s.messagesUnexpected);
        assertEquals(Map.of(), s.errors);
        assertEquals(12, s.login.getTotalCount());
        String json = Files.readString(tmp.resolve("result.json"));
        assertTrue(json.contains("\"mode\": \"ws\"") || json.contains("\"mode\":\"ws\""), json);
    }

    @Test
    void aRefusedHandshakeIsCountedAndTheLoginStartsOverOnANewSocket() throws Exception {
        refuse.set(3);
        int port = startServer();
        LoadGenerator gen = run(port, 4);
        assertEquals(4, gen.stats.usersOnline);
        assertEquals(0, gen.stats.usersFailed);
        assertEquals(Map.of("ws-handshake:503", 3L), gen.stats.errors);
    }

    @Test
    void aMessageTheServerLosesIsNotCountedReceived() throws Exception {
        dropEvery = 5;
        int port = startServer();
        LoadGenerator gen = run(port, 6);
        assertTrue(droppedMessages.get() > 0);
        assertEquals(gen.stats.messagesQueued - droppedMessages.get(), gen.stats.messagesReceived);
        assertEquals(droppedMessages.get(), gen.stats.awaitedMessages.size(), "the lost ones stay awaited");
    }

    private LoadGenerator run(int port, int users) throws Exception {
        Options o = Options.parse(new String[] {"--mode", "ws", "--url", "ws://127.0.0.1:" + port + "/ws",
            "--users", Integer.toString(users), "--password", "pw", "--ramp", "200", "--duration", "1.5",
            "--msg-rate", "40", "--drain", "3", "--progress", "60", "--nio",
            "--out", tmp.resolve("result.json").toString()});
        LoadGenerator gen = new LoadGenerator(o);
        try {
            assertEquals(0, gen.runUsers());
        } finally {
            gen.close();
        }
        return gen;
    }

    private int startServer() throws InterruptedException {
        Channel server = new ServerBootstrap().group(serverGroup).channel(NioServerSocketChannel.class)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(65536),
                                new Refuser(), new WebSocketServerProtocolHandler("/ws", "xmpp", false, 1 << 20),
                                new Xmpp());
                    }
                }).bind("127.0.0.1", 0).sync().channel();
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    /** Answers the first {@link #refuse} upgrade requests with a 503. */
    private final class Refuser extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof FullHttpRequest req && refuse.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
                ReferenceCountUtil.release(req);
                DefaultFullHttpResponse res = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                        HttpResponseStatus.SERVICE_UNAVAILABLE);
                res.headers().set(HttpHeaderNames.CONTENT_LENGTH, 0);
                ctx.writeAndFlush(res).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            ctx.fireChannelRead(msg);
        }
    }

    /** The server side of the login, ping, routing and close, one element per message. */
    private final class Xmpp extends SimpleChannelInboundHandler<TextWebSocketFrame> {
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, TextWebSocketFrame frame) {
            String t = frame.text();
            Channel ch = ctx.channel();
            if (t.startsWith("<open")) {
                send(ch, XmppWsLoginTest.OPEN);
                send(ch, ch.hasAttr(USER) ? XmppWsLoginTest.BIND_FEATURES : XmppWsLoginTest.SASL_FEATURES);
            } else if (t.startsWith("<auth")) {
                String[] creds = new String(Base64.getDecoder().decode(t.replaceAll("<[^>]+>", "")),
                        StandardCharsets.UTF_8).split("\0");
                if (creds[2].equals("pw")) {
                    ch.attr(USER).set(creds[1]);
                    send(ch, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
                } else {
                    send(ch, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
                }
            } else if (t.startsWith("<iq") && t.contains("bind1")) {
                bound.put(ch.attr(USER).get(), ch);
                send(ch, "<iq xmlns='jabber:client' type='result' id='bind1'><bind"
                        + " xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>" + ch.attr(USER).get()
                        + "@localhost/lg</jid></bind></iq>");
            } else if (t.startsWith("<iq") && t.contains(XmppWsLogin.PING_ID)) {
                send(ch, "<iq xmlns='jabber:client' type='result' id='" + XmppWsLogin.PING_ID + "'/>");
            } else if (t.startsWith("<message")) {
                Matcher m = TO.matcher(t);
                Channel to = m.find() ? bound.get(m.group(1)) : null;
                int d = dropEvery;
                if (d > 0 && routed.get() % d == d - 1) {
                    droppedMessages.incrementAndGet();
                    routed.incrementAndGet();
                    return;
                }
                if (to != null) {
                    routed.incrementAndGet();
                    send(to, t);
                }
            } else if (t.startsWith("<close")) {
                closesReceived.incrementAndGet();
                send(ch, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
            }
        }

        private void send(Channel ch, String text) {
            ch.writeAndFlush(new TextWebSocketFrame(text));
        }
    }
}
