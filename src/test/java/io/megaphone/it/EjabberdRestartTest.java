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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * ejabberd goes away and comes back. While it is down the ECM answers at once with a retryable 503 (no hang)
 * and readiness is DOWN; when it is back the links reconnect by themselves within a second.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2"})
class EjabberdRestartTest {

    private static PrivateEjabberd ejabberd;
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @DynamicPropertySource
    static void linkToItsOwnEjabberd(DynamicPropertyRegistry registry) throws Exception {
        ejabberd = PrivateEjabberd.start();
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

    private HttpResponse<String> readiness() throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort
                + "/actuator/health/readiness")).build(), HttpResponse.BodyHandlers.ofString());
    }

    private BoshTestClient.Answer createSession(BoshTestClient client) throws Exception {
        return client.post("<body rid='" + client.nextRid() + "' to='localhost' wait='10' hold='1' ver='1.6'"
                + " xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>");
    }

    @Test
    void whileEjabberdIsDownRequestsGetA503AtOnceAndReadinessIsDownThenLinksComeBackWithinASecond()
            throws Exception {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        assertThat(readiness().statusCode()).isEqualTo(200);
        String user = "carol";
        ejabberd.register(user, "pw");
        BoshTestClient client = new BoshTestClient("http://127.0.0.1:" + port + "/http-bind", "localhost")
                .login(user, "pw", 30);
        CompletableFuture<BoshTestClient.Answer> held = client.poll();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() == 1);

        ejabberd.stop();

        // Not left hanging: ejabberd ends the session on its way down (a BOSH terminate), or the ECM answers 503.
        BoshTestClient.Answer heldAnswer = held.get(5, TimeUnit.SECONDS);
        System.out.println("[real ejabberd] held poll answered on shutdown: " + heldAnswer.status() + " "
                + heldAnswer.body());
        if (heldAnswer.status() == 200) {
            assertThat(BoshTestClient.parse(heldAnswer.body()).getAttribute("type")).isEqualTo("terminate");
        } else {
            assertThat(heldAnswer.status()).isEqualTo(503);
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 0);
        long start = System.nanoTime();
        BoshTestClient.Answer refused = createSession(client);
        long elapsedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertThat(refused.status()).isEqualTo(503);
        assertThat(refused.headers().firstValue("retry-after")).isPresent();
        assertThat(elapsedMillis).as("503 without waiting").isLessThan(1000);
        HttpResponse<String> down = readiness();
        assertThat(down.statusCode()).isEqualTo(503);
        assertThat(down.body()).contains("DOWN");

        ejabberd.restart();
        long up = System.nanoTime();
        await().atMost(Duration.ofSeconds(3)).pollInterval(Duration.ofMillis(20)).until(() -> pool.readyLinks() == 2);
        long reconnectMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - up);
        System.out.println("[real ejabberd] links back " + reconnectMillis + " ms after ejabberd was up");
        assertThat(reconnectMillis).as("links back within 1 s of ejabberd being up").isLessThan(1000);
        assertThat(readiness().statusCode()).isEqualTo(200);
        BoshTestClient.Answer created = createSession(client);
        assertThat(created.status()).isEqualTo(200);
        assertThat(created.body()).contains("sid=");
    }
}
