// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The ECM pings its WebSocket clients every {@code ping-interval} (as ejabberd does its own) and ends a stream whose
 * client answered nothing since the previous ping: a client gone without closing its TCP connection must not keep
 * its ejabberd session online. Real ECM ({@link EcmOnFakeLink}), java.net.http's client (it answers pings) and a raw
 * socket that never answers.
 */
class XmppWebSocketPingTest {

    private static EcmOnFakeLink ecm;

    @BeforeAll
    static void start() throws Exception {
        ecm = EcmOnFakeLink.start(fake -> { }, "megaphone.edge.websocket.ping-interval=300ms");
    }

    @AfterAll
    static void stop() {
        if (ecm != null) {
            ecm.close();
        }
    }

    @Test
    void aClientThatAnswersPingsStaysAndOneThatAnswersNothingIsEnded() throws Exception {
        AtomicInteger pings = new AtomicInteger();
        WebSocket.Listener listener = new WebSocket.Listener() {
            @Override
            public CompletionStage<?> onPing(WebSocket ws, ByteBuffer message) {
                pings.incrementAndGet(); // java.net.http sends the pong itself
                ws.request(1);
                return null;
            }
        };
        WebSocket answering = HttpClient.newHttpClient().newWebSocketBuilder().subprotocols("xmpp")
                .buildAsync(ecm.webSocket(), listener)
                .get(5, TimeUnit.SECONDS);
        double timeoutsBefore = pingTimeouts();

        try (Socket silent = new Socket("127.0.0.1", ecm.port)) {
            OutputStream out = silent.getOutputStream();
            out.write(("GET /xmpp-websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            assertThat(readHeaders(silent.getInputStream())).startsWith("HTTP/1.1 101");
            await().atMost(Duration.ofSeconds(5)).until(() -> openStreams() == 2);

            // The silent client is ended after one unanswered ping (300-600 ms), and its stream closed upstream.
            await().atMost(Duration.ofSeconds(3)).until(() -> pingTimeouts() == timeoutsBefore + 1);
            await().atMost(Duration.ofSeconds(3)).until(() -> openStreams() == 1 && ecm.server.streams.size() == 1);
        }
        Thread.sleep(1500); // five more intervals: the answering client stays
        assertThat(pings.get()).as("pings the answering client got").isGreaterThanOrEqualTo(3);
        assertThat(openStreams()).isEqualTo(1);
        assertThat(pingTimeouts()).isEqualTo(timeoutsBefore + 1);
        answering.sendClose(WebSocket.NORMAL_CLOSURE, "").get(5, TimeUnit.SECONDS);
    }

    private static String readHeaders(InputStream in) throws Exception {
        StringBuilder headers = new StringBuilder();
        while (!headers.toString().endsWith("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                break;
            }
            headers.append((char) b);
        }
        return headers.toString();
    }

    private static double pingTimeouts() {
        return ecm.counter("megaphone.edge.websocket.closes", "reason", "ping_timeout");
    }

    private static double openStreams() {
        return ecm.openStreams();
    }
}
