// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.net.http.WebSocketHandshakeException;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Admission for WebSocket handshakes, as for BOSH session creations: a cap on open streams
 * ({@code megaphone.edge.websocket.max-open}, the memory budget) and the session-creation token buckets, the same
 * ones BOSH's creations take from. Refusals are 503 with a Retry-After and no 101. Real ECM ({@link EcmOnFakeLink}),
 * java.net.http's WebSocket client.
 */
class XmppWebSocketAdmissionTest {

    private static EcmOnFakeLink ecm;
    private final HttpClient http = HttpClient.newHttpClient();

    @BeforeAll
    static void start() throws Exception {
        ecm = EcmOnFakeLink.start(fake -> { }, "megaphone.edge.websocket.max-open=2",
                "megaphone.edge.admission.per-client=on",
                "megaphone.edge.admission.sessions-per-second-per-client=0.001",
                "megaphone.edge.admission.sessions-burst-per-client=3");
    }

    @AfterAll
    static void stop() {
        if (ecm != null) {
            ecm.close();
        }
    }

    @Test
    void overMaxOpenAndOverTheSessionRateBothTransportsShareTheHandshakeGets503() throws Exception {
        WebSocket first = connect();
        WebSocket second = connect();
        assertThat(refusal()).as("a third stream, over max-open 2").isEqualTo(503);
        assertThat(opens("stream_limit")).isEqualTo(1);

        first.sendClose(WebSocket.NORMAL_CLOSURE, "").get(5, TimeUnit.SECONDS);
        await().atMost(Duration.ofSeconds(5)).until(() -> openStreams() == 1);
        WebSocket third = connect(); // the third token of the client's burst: a refusal over max-open took none
        second.sendClose(WebSocket.NORMAL_CLOSURE, "").get(5, TimeUnit.SECONDS);
        await().atMost(Duration.ofSeconds(5)).until(() -> openStreams() == 1);

        assertThat(refusal()).as("a fourth session of the client, over its burst of 3").isEqualTo(503);
        assertThat(opens("session_rate_per_client")).isEqualTo(1);
        HttpResponse<String> bosh = http.send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + ecm.port + "/http-bind"))
                .POST(HttpRequest.BodyPublishers.ofString("<body rid='1' to='localhost' wait='60' hold='1'"
                        + " xmlns='http://jabber.org/protocol/httpbind'/>")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(bosh.statusCode()).as("a BOSH session creation pays from the same bucket").isEqualTo(503);
        assertThat(bosh.headers().firstValue("Retry-After")).isPresent();
        third.sendClose(WebSocket.NORMAL_CLOSURE, "").get(5, TimeUnit.SECONDS);
    }

    private WebSocket connect() throws Exception {
        return http.newWebSocketBuilder().subprotocols("xmpp")
                .buildAsync(ecm.webSocket(), new WebSocket.Listener() { })
                .get(5, TimeUnit.SECONDS);
    }

    private int refusal() throws Exception {
        try {
            connect();
            throw new AssertionError("the handshake was accepted");
        } catch (ExecutionException e) {
            HttpResponse<?> response = ((WebSocketHandshakeException) e.getCause()).getResponse();
            assertThat(response.headers().firstValue("Retry-After")).as("Retry-After").isPresent();
            return response.statusCode();
        }
    }

    private static double opens(String result) {
        return ecm.counter("megaphone.edge.websocket.opens", "result", result);
    }

    private static double openStreams() {
        return ecm.openStreams();
    }
}
