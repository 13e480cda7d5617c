// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;

/**
 * The WebSocket stream metrics of both sides follow real streams through the real ejabberd, as Prometheus scrapes
 * them: the ECM's {@code megaphone_edge_websocket_*} and mod_megaphone's {@code megaphone_ejabberd_stream*}. A stream
 * the client closes counts as reason {@code client} on both sides; one whose session ejabberd ends (the client's
 * {@code <close/>}) as {@code server}; the open-stream gauges go up with each and back down.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class WebSocketMetricsTest extends RealEcmTest {

    private static final String FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

    @LocalManagementPort
    int managementPort;

    /** The samples this test reads, from one scrape of each side. */
    private record Scrape(double ecmOpen, double ecmOpened, double ecmClient, double ecmServer,
                          double ejOpen, double ejOpened, double ejClient, double ejServer) {
    }

    private Scrape scrape() throws Exception {
        String ecm = RealStack.get("http://127.0.0.1:" + managementPort + "/actuator/prometheus").body();
        var ej = RealStack.get(SharedEjabberd.get().metricsUrl());
        assertThat(ej.statusCode()).as(ej.body()).isEqualTo(200);
        String e = ej.body();
        return new Scrape(RealStack.sample(ecm, "megaphone_edge_websocket_open_streams"),
                RealStack.sample(ecm, "megaphone_edge_websocket_opens_total", "result=\"opened\""),
                RealStack.sample(ecm, "megaphone_edge_websocket_closes_total", "reason=\"client\""),
                RealStack.sample(ecm, "megaphone_edge_websocket_closes_total", "reason=\"server\""),
                RealStack.sample(e, "megaphone_ejabberd_streams"),
                RealStack.sample(e, "megaphone_ejabberd_stream_opens_total", "result=\"opened\""),
                RealStack.sample(e, "megaphone_ejabberd_stream_closes_total", "reason=\"client\""),
                RealStack.sample(e, "megaphone_ejabberd_stream_closes_total", "reason=\"server\""));
    }

    private WebSocket openStream(WebSocketChatTest.Heard heard) throws Exception {
        WebSocket ws = HttpClient.newHttpClient().newWebSocketBuilder().subprotocols("xmpp")
                .buildAsync(URI.create("ws://127.0.0.1:" + port + "/xmpp-websocket"), heard)
                .get(10, TimeUnit.SECONDS);
        ws.sendText("<open xmlns='" + FRAMING + "' to='" + PrivateEjabberd.DOMAIN + "' version='1.0'/>", true)
                .get(5, TimeUnit.SECONDS);
        heard.awaitContaining("features"); // ejabberd's c2s runs behind the stream
        return ws;
    }

    @Test
    void openStreamsOpensAndClosesByReasonMoveOnBothSidesWithRealStreams() throws Exception {
        awaitLinks(2);
        Scrape before = scrape();

        WebSocketChatTest.Heard byClient = new WebSocketChatTest.Heard();
        WebSocket first = openStream(byClient);
        WebSocketChatTest.Heard byServer = new WebSocketChatTest.Heard();
        WebSocket second = openStream(byServer);
        Scrape open = scrape();
        assertThat(open.ecmOpen()).isEqualTo(before.ecmOpen() + 2);
        assertThat(open.ecmOpened()).isEqualTo(before.ecmOpened() + 2);
        assertThat(open.ejOpen()).isEqualTo(before.ejOpen() + 2);
        assertThat(open.ejOpened()).isEqualTo(before.ejOpened() + 2);

        first.sendClose(WebSocket.NORMAL_CLOSURE, "bye").get(5, TimeUnit.SECONDS);
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            Scrape s = scrape();
            assertThat(s.ecmClient()).isEqualTo(before.ecmClient() + 1);
            assertThat(s.ejClient()).isEqualTo(before.ejClient() + 1);
            assertThat(s.ejOpen()).isEqualTo(before.ejOpen() + 1);
        });

        second.sendText("<close xmlns='" + FRAMING + "'/>", true).get(5, TimeUnit.SECONDS);
        await().atMost(Duration.ofSeconds(10)).until(() -> byServer.closeCode != -1);
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            Scrape s = scrape();
            assertThat(s.ecmServer()).isEqualTo(before.ecmServer() + 1);
            assertThat(s.ejServer()).isEqualTo(before.ejServer() + 1);
            assertThat(s.ecmOpen()).isEqualTo(before.ecmOpen());
            assertThat(s.ejOpen()).isEqualTo(before.ejOpen());
            assertThat(s.ejClient()).as("the server's close is not the client's").isEqualTo(before.ejClient() + 1);
        });
    }
}
