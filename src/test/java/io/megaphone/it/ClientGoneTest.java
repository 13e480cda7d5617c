// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;

/**
 * A client that goes away while its poll is held: the Mono of that POST is cancelled, CANCEL goes upstream, nothing
 * stays held in the ECM, and the session goes on when the client comes back with the same rid (ejabberd answers it).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=1",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class ClientGoneTest extends RealEcmTest {

    @LocalManagementPort
    int managementPort;

    private double sample(String name, String... labels) throws Exception {
        return RealStack.sample(RealStack.get("http://127.0.0.1:" + managementPort + "/actuator/prometheus").body(),
                name, labels);
    }

    @Test
    void aHeldPollWhoseClientLeavesIsCancelledUpstreamAndTheSessionGoesOn() throws Exception {
        awaitLinks(1);
        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = new BoshTestClient(boshUrl(), "localhost").login(alice, SharedEjabberd.PASSWORD, 10);
        BoshTestClient bobClient = new BoshTestClient(boshUrl(), "localhost").login(bob, SharedEjabberd.PASSWORD, 10);
        bobClient.clear();
        double gone = sample("megaphone_edge_requests_total", "outcome=\"client_gone\"");
        double cancels = sample("megaphone_link_frames_total", "direction=\"out\"", "type=\"cancel\"");
        int heldBefore = pool.inflight();

        long rid = bobClient.nextRid();
        byte[] body = bobClient.wrap(rid, "").getBytes(StandardCharsets.UTF_8);
        try (Socket socket = new Socket("127.0.0.1", port)) {
            OutputStream out = socket.getOutputStream();
            out.write(("POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
                    + "Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.flush();
            await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() == heldBefore + 1);
        } // the client goes away with its poll held

        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() == heldBefore);
        await().atMost(Duration.ofSeconds(5)).until(() ->
                sample("megaphone_edge_requests_total", "outcome=\"client_gone\"") == gone + 1);
        assertThat(sample("megaphone_link_frames_total", "direction=\"out\"", "type=\"cancel\"")).isEqualTo(cancels + 1);

        // The client comes back with the same rid (what Strophe.js does), and a message reaches it.
        CompletableFuture<BoshTestClient.Answer> again = bobClient.postAsync(bobClient.wrap(rid, ""));
        aliceClient.sendChat(bob + "@localhost", "still there?");
        BoshTestClient.Answer answer = again.get(15, TimeUnit.SECONDS);
        assertThat(answer.status()).isEqualTo(200);
        String delivered = answer.body();
        if (!delivered.contains("still there?")) { // the re-sent rid was answered empty just before the message
            delivered += bobClient.poll().get(15, TimeUnit.SECONDS).body();
        }
        assertThat(delivered).contains("still there?");
        aliceClient.terminate();
        bobClient.terminate();
    }
}
