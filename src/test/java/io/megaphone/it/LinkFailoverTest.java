package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Two links to a real ejabberd; users chat while the links' TCP connections are killed under them. Every
 * message must arrive exactly once and no session may end: requests in flight on a dead link are re-sent with
 * the same rid on the other, and mod_megaphone / ejabberd answer them from the running request or the buffer.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class LinkFailoverTest extends RealEcmTest {

    @Test
    void killingLinksMidConversationLosesNoMessageAndEndsNoSession() throws Exception {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        String url = "http://127.0.0.1:" + port + "/http-bind";
        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login(alice, SharedEjabberd.PASSWORD, 20);
        BoshTestClient bobClient = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login(bob, SharedEjabberd.PASSWORD, 20);
        bobClient.clear();

        List<String> sent = new ArrayList<>();
        List<CompletableFuture<BoshTestClient.Answer>> aliceRequests = new ArrayList<>();
        try (BoshPoller bobPoller = new BoshPoller(bobClient)) {
            for (int i = 1; i <= 30; i++) {
                String text = "message " + i;
                sent.add(text);
                aliceRequests.add(aliceClient.sendChat(bob + "@localhost", text));
                if (i % 5 == 0) {
                    pool.dropLink(i / 5 % 2); // alternate between the two links
                }
                int expected = i;
                await().atMost(Duration.ofSeconds(15)).until(() -> bobPoller.chatBodies.size() >= expected
                        || !bobPoller.failures.isEmpty());
            }
            Thread.sleep(500); // a duplicate would arrive now
            assertThat(bobPoller.failures).isEmpty();
            assertThat(bobPoller.chatBodies).containsExactlyElementsOf(sent);
        }
        BoshTestClient.Answer end = aliceClient.terminate();
        assertThat(end.status()).isEqualTo(200);
        for (CompletableFuture<BoshTestClient.Answer> request : aliceRequests) {
            BoshTestClient.Answer answer = request.get();
            assertThat(answer.status()).as("alice's request answered: %s", answer.body()).isIn(200);
        }
        bobClient.terminate();
    }
}
