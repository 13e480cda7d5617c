// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The RFC 7395 endpoint of the real ECM ({@link EcmOnFakeLink}) with java.net.http's WebSocket client,
 * through a version-2 link to the Java fake of mod_megaphone, which echoes each message. In the link package for the
 * fake's internals; what it tests is io.megaphone.edge.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class XmppWebSocketEndpointTest {

    private static final String OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
    private static EcmOnFakeLink linked;
    private static FakeMegaphoneServer server;
    private static URI endpoint;
    private final HttpClient http = HttpClient.newHttpClient();

    @BeforeAll
    static void start() throws Exception {
        linked = EcmOnFakeLink.start(fake -> fake.streamWindow = 4096,
                "megaphone.edge.websocket.max-message-bytes=1024",
                "megaphone.edge.websocket.stream-window=4096",
                "megaphone.edge.websocket.allowed-origins=https://good.example",
                "megaphone.edge.websocket.link-lost-jitter=100ms",
                "megaphone.edge.idle-timeout=1s", "megaphone.edge.drain-delay=0s",
                "megaphone.edge.drain-timeout=2s");
        server = linked.server;
        endpoint = linked.webSocket();
    }

    @AfterAll
    static void stop() {
        if (linked != null) {
            linked.close();
        }
    }

    @AfterEach
    void serverDefaults() {
        server.refuseStreamsWith = 0;
    }

    /** What a client WebSocket heard: text messages, and its close code. */
    static final class Heard implements WebSocket.Listener {
        final BlockingQueue<String> texts = new LinkedBlockingQueue<>();
        final CompletableFuture<Integer> closed = new CompletableFuture<>();
        private final StringBuilder partial = new StringBuilder();

        @Override
        public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                texts.add(partial.toString());
                partial.setLength(0);
            }
            ws.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket ws, int statusCode, String reason) {
            closed.complete(statusCode);
            return null;
        }

        @Override
        public void onError(WebSocket ws, Throwable error) {
            closed.completeExceptionally(error);
        }
    }

    private WebSocket connect(Heard heard, String origin, String... subprotocols) throws Exception {
        WebSocket.Builder builder = http.newWebSocketBuilder();
        if (origin != null) {
            builder.header("Origin", origin);
        }
        if (subprotocols.length > 0) {
            builder.subprotocols(subprotocols[0], java.util.Arrays.copyOfRange(subprotocols, 1, subprotocols.length));
        }
        return builder.buildAsync(endpoint, heard).get(5, TimeUnit.SECONDS);
    }

    private int refusedStatus(String origin, String... subprotocols) throws Exception {
        try {
            connect(new Heard(), origin, subprotocols);
            return fail("the handshake was accepted");
        } catch (ExecutionException e) {
            assertThat(e.getCause()).isInstanceOf(WebSocketHandshakeException.class);
            return ((WebSocketHandshakeException) e.getCause()).getResponse().statusCode();
        }
    }

    private double meter(String name, String tag, String value) {
        return linked.counter(name, tag, value);
    }

    @Test
    @Order(1)
    void theXmppSubprotocolIsChosenAndMessagesGoBothWaysThroughTheStream() throws Exception {
        Heard heard = new Heard();
        WebSocket ws = connect(heard, "https://good.example", "xmpp");
        assertThat(ws.getSubprotocol()).isEqualTo("xmpp");
        ws.sendText(OPEN, true).get(5, TimeUnit.SECONDS);
        assertThat(heard.texts.poll(5, TimeUnit.SECONDS)).isEqualTo(OPEN);
        Frame.StreamOpen open = server.streamOpens.stream().reduce((a, b) -> b).orElseThrow();
        assertThat(open.client().getAddress().isLoopbackAddress()).isTrue();
        assertThat(open.window()).isEqualTo(4096);
        assertThat(meter("megaphone.edge.websocket.opens", "result", "opened")).isGreaterThanOrEqualTo(1);

        Thread.sleep(1500); // over the edge's idle-timeout: an upgraded connection is not an idle HTTP one
        ws.sendText("<message/>", true).get(5, TimeUnit.SECONDS);
        assertThat(heard.texts.poll(5, TimeUnit.SECONDS)).isEqualTo("<message/>");

        int closes = server.streamCloses.size();
        ws.sendClose(WebSocket.NORMAL_CLOSURE, "bye").get(5, TimeUnit.SECONDS);
        assertThat(heard.closed.get(5, TimeUnit.SECONDS)).isEqualTo(1000);
        await().atMost(Duration.ofSeconds(5)).until(() -> server.streamCloses.size() == closes + 1);
        assertThat(server.streamCloses.stream().reduce((a, b) -> b).orElseThrow().code()).isEqualTo(1000);
    }

    @Test
    @Order(2)
    void aMessageOverTheLimitIsClosedWith1009() throws Exception {
        Heard heard = new Heard();
        WebSocket ws = connect(heard, null, "xmpp");
        ws.sendText("x".repeat(2000), true);
        assertThat(heard.closed.get(5, TimeUnit.SECONDS)).isEqualTo(1009);
        await().atMost(Duration.ofSeconds(5)).untilAsserted(() -> assertThat(server.streamCloses)
                .anyMatch(c -> c.code() == 1009));
    }

    @Test
    @Order(2)
    void aBinaryMessageIsClosedWith1003() throws Exception {
        Heard heard = new Heard();
        WebSocket ws = connect(heard, null, "xmpp");
        ws.sendBinary(ByteBuffer.wrap(new byte[] {1, 2, 3}), true);
        assertThat(heard.closed.get(5, TimeUnit.SECONDS)).isEqualTo(1003);
        await().atMost(Duration.ofSeconds(5)).until(() -> server.streamCloses.stream().anyMatch(c -> c.code() == 1003));
        assertThat(meter("megaphone.edge.websocket.closes", "reason", "binary")).isEqualTo(1);
    }

    @Test
    @Order(2)
    void aBadOriginOrNoXmppSubprotocolIsRefusedWithoutAnUpgradeAndWithoutAStream() throws Exception {
        int opens = server.streamOpens.size();
        assertThat(refusedStatus("https://evil.example", "xmpp")).isEqualTo(403);
        assertThat(refusedStatus("https://good.example", "chat")).isEqualTo(400);
        assertThat(server.streamOpens).hasSize(opens);
        assertThat(meter("megaphone.edge.websocket.opens", "result", "bad_origin")).isEqualTo(1);
    }

    @Test
    @Order(3)
    void aStreamTheServerRefusesIsAn503WithoutAnUpgrade() throws Exception {
        server.refuseStreamsWith = 1013;
        assertThat(refusedStatus(null, "xmpp")).isEqualTo(503);
        assertThat(meter("megaphone.edge.websocket.opens", "result", "unavailable")).isEqualTo(1);
    }

    @Test
    @Order(4)
    void aLostLinkClosesItsClientsWith1012() throws Exception {
        Heard heard = new Heard();
        connect(heard, null, "xmpp");
        server.links.forEach(io.netty.channel.Channel::close);
        assertThat(heard.closed.get(5, TimeUnit.SECONDS)).isEqualTo(1012);
        await().atMost(Duration.ofSeconds(10)).until(() -> server.links.size() == 1); // it reconnects
    }

    @Test
    @Order(5)
    void withNoVersion2LinkTheHandshakeIsAn503() throws Exception {
        server.maxVersion = 1;
        server.links.forEach(io.netty.channel.Channel::close);
        await().atMost(Duration.ofSeconds(10)).until(() -> server.authVersions.stream().reduce((a, b) -> b)
                .orElseThrow() == 1 && server.links.size() == 1);
        assertThat(refusedStatus(null, "xmpp")).isEqualTo(503);
        server.maxVersion = 2;
        server.links.forEach(io.netty.channel.Channel::close);
        await().atMost(Duration.ofSeconds(10)).until(() -> server.authVersions.stream().reduce((a, b) -> b)
                .orElseThrow() == 2 && server.links.size() == 1);
    }

    @Test
    @Order(6)
    void theDrainClosesOpenStreamsWith1001() throws Exception {
        Heard heard = new Heard();
        WebSocket ws = connect(heard, null, "xmpp");
        ws.sendText(OPEN, true).get(5, TimeUnit.SECONDS);
        assertThat(heard.texts.poll(5, TimeUnit.SECONDS)).isEqualTo(OPEN);
        linked.ecm.stop(); // SIGTERM's lifecycle stop: EdgeDrain first
        assertThat(heard.closed.get(5, TimeUnit.SECONDS)).isEqualTo(1001);
        assertThat(server.streamCloses.stream().reduce((a, b) -> b).orElseThrow().code()).isEqualTo(1001);
    }
}
