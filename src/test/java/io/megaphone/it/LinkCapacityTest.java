// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.link.LinkPool;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The links' capacity (mod_megaphone's max_inflight x links: 3 x 2 = 6 here) below max-held (the default
 * 500,000): the ECM shows it in the links health details and a metric, and a request past it is refused by
 * admission as {@code link_capacity}, counted, instead of failing as "ejabberd cannot be reached" while ejabberd
 * is fine. Before, nothing showed the cap, and the refusal read as an unreachable ejabberd.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class LinkCapacityTest {

    private static final int MAX_INFLIGHT = 3;
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static PrivateEjabberd ejabberd;

    @DynamicPropertySource
    static void linkToItsOwnEjabberd(DynamicPropertyRegistry registry) throws Exception {
        ejabberd = PrivateEjabberd.start(Map.of("EJ_MAX_INFLIGHT", Integer.toString(MAX_INFLIGHT)));
        registry.add("megaphone.link.nodes", () -> "127.0.0.1:" + ejabberd.linkPort());
        registry.add("megaphone.link.secret", () -> PrivateEjabberd.SECRET);
    }

    @AfterAll
    static void stopEjabberd() {
        ejabberd.close();
    }

    @LocalServerPort
    int port;

    @LocalManagementPort
    int managementPort;

    @Autowired
    LinkPool pool;

    private String management(String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort + path)).build(),
                HttpResponse.BodyHandlers.ofString()).body();
    }

    @Test
    void heldRequestsStopAtTheLinksCapacityWhichHealthAndMetricsShow() throws Exception {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        assertThat(management("/actuator/health/links")).contains("\"capacity\":6", "\"inflight\":0");
        assertThat(RealStack.sample(management("/actuator/prometheus"), "megaphone_link_capacity_requests"))
                .isEqualTo(6.0);

        String url = "http://127.0.0.1:" + port + "/http-bind";
        // Six logged-in users, each with one empty poll that ejabberd holds for `wait`.
        List<CompletableFuture<BoshTestClient.Answer>> held = new ArrayList<>();
        for (int u = 0; u < 6; u++) {
            ejabberd.register("cap" + u, "pw");
            BoshTestClient client = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login("cap" + u, "pw", 30);
            held.add(client.poll());
            int expected = u + 1;
            await().atMost(Duration.ofSeconds(10)).until(() -> pool.inflight() == expected);
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.inflight() == 6);
        assertThat(management("/actuator/health/links")).contains("\"capacity\":6", "\"inflight\":6");
        double unavailableBefore = RealStack.sample(management("/actuator/prometheus"),
                "megaphone_edge_requests_total", "outcome=\"upstream_unavailable\"");

        BoshTestClient extra = new BoshTestClient(url, PrivateEjabberd.DOMAIN);
        BoshTestClient.Answer refused = extra.post("<body rid='" + extra.nextRid() + "' to='localhost' wait='20'"
                + " hold='1' ver='1.6' xmlns='http://jabber.org/protocol/httpbind'/>");

        assertThat(refused.status()).isEqualTo(503);
        assertThat(refused.headers().firstValue("Retry-After")).isPresent();
        String scrape = management("/actuator/prometheus");
        assertThat(RealStack.sample(scrape, "megaphone_admission_rejected_total", "reason=\"link_capacity\""))
                .isEqualTo(1.0);
        assertThat(RealStack.sample(scrape, "megaphone_edge_requests_total", "outcome=\"upstream_unavailable\""))
                .isEqualTo(unavailableBefore);
        assertThat(held).noneMatch(CompletableFuture::isDone); // the held ones are untouched
    }
}
