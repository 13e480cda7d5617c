// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import io.megaphone.link.LinkPool;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Two links to a real ejabberd, through a proxy; users chat while the proxy resets the links' TCP connections
 * under them, one at a time. Every message must arrive exactly once, no session may end and no client may see a
 * 5xx: requests in flight on a dead link are re-sent with the same rid on the other, and mod_megaphone / ejabberd
 * answer them from the running request or the buffer.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
@DirtiesContext // its links go through this class's proxy
class LinkFailoverTest {

    private static CuttableProxy proxy;

    @LocalServerPort
    private int port;

    @Autowired
    private LinkPool pool;

    /** Not a RealEcmTest: its links go to the shared ejabberd through the proxy. */
    @DynamicPropertySource
    static void linkThroughProxy(DynamicPropertyRegistry registry) {
        proxy = CuttableProxy.forSharedEjabberdLinks(registry);
    }

    @AfterAll
    static void closeProxy() {
        proxy.close();
    }

    @Test
    void killingLinksMidConversationLosesNoMessageAndEndsNoSession() throws Exception {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        assertThat(proxy.live()).as("both links go through the proxy").isEqualTo(2);
        long resendsBefore = pool.resends();
        int cuts = 0;
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
                    assertThat(proxy.cutOldest()).isTrue(); // the oldest: the two links take turns
                    cuts++;
                }
                int expected = i;
                await().atMost(Duration.ofSeconds(15)).until(() -> bobPoller.chatBodies.size() >= expected
                        || !bobPoller.failures.isEmpty());
            }
            // A last message as a barrier instead of a pause: ejabberd routes alice's stanzas to bob in order, and a
            // copy of one of her requests can only enter ejabberd before a later rid does (mod_megaphone releases a
            // session's rids in order), so a duplicate of any message above would reach bob before this one.
            sent.add("last");
            aliceRequests.add(aliceClient.sendChat(bob + "@localhost", "last"));
            await().atMost(Duration.ofSeconds(15)).until(() -> bobPoller.chatBodies.contains("last")
                    || !bobPoller.failures.isEmpty());
            assertThat(bobPoller.failures).isEmpty();
            assertThat(bobPoller.chatBodies).containsExactlyElementsOf(sent);
            assertThat(bobPoller.retries).as("5xx answers bob's client saw").hasValue(0);
        }
        BoshTestClient.Answer end = aliceClient.terminate();
        assertThat(end.status()).isEqualTo(200);
        for (CompletableFuture<BoshTestClient.Answer> request : aliceRequests) {
            BoshTestClient.Answer answer = request.get();
            assertThat(answer.status()).as("alice's request answered: %s", answer.body()).isIn(200);
        }
        bobClient.terminate();
        int expectedCuts = cuts;
        assertThat(pool.resends() - resendsBefore).as("requests re-sent after the cuts").isPositive();
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        assertThat(proxy.accepted).as("each cut link reconnected").hasValueGreaterThanOrEqualTo(2 + expectedCuts);
    }
}
