package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * A reconnect storm from one client address meets the per-client session bucket: session creations past the
 * burst get a retryable 503 with Retry-After, while a session that already exists chats on untouched.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
    "management.server.port=0", "megaphone.link.links-per-node=1",
    "megaphone.edge.admission.sessions-per-second-per-client=0.01",
    "megaphone.edge.admission.sessions-burst-per-client=4"})
class AdmissionTest extends RealEcmTest {

    @Test
    void sessionCreationsPastTheBurstAre503WhileAnExistingSessionChatsOn() throws Exception {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 1);
        String url = "http://127.0.0.1:" + port + "/http-bind";
        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = new BoshTestClient(url, "localhost").login(alice, SharedEjabberd.PASSWORD, 10);
        BoshTestClient bobClient = new BoshTestClient(url, "localhost").login(bob, SharedEjabberd.PASSWORD, 10);
        bobClient.clear();

        BoshTestClient storm = new BoshTestClient(url, "localhost");
        int refused = 0;
        for (int i = 0; i < 10; i++) {
            BoshTestClient.Answer answer = storm.post(RealStack.SESSION_CREATE.formatted(storm.nextRid()));
            if (answer.status() == 503) {
                refused++;
                assertThat(answer.headers().firstValue("retry-after")).isPresent();
            } else {
                assertThat(answer.status()).isEqualTo(200);
            }
        }
        assertThat(refused).as("2 logins + 2 storm sessions used the burst of 4").isEqualTo(8);

        CompletableFuture<BoshTestClient.Answer> held = bobClient.poll();
        aliceClient.sendChat(bob + "@localhost", "still here");
        BoshTestClient.Answer answer = held.get(10, TimeUnit.SECONDS);
        assertThat(answer.status()).isEqualTo(200);
        assertThat(answer.body()).contains("still here");
        aliceClient.terminate();
        bobClient.terminate();
    }
}
