// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Admission control against reconnect storms, through the real ECM and ejabberd: the per-client session bucket
 * refuses a storm from one client with a retryable 503 while an existing session chats on, and it applies only where
 * the address is known to be the client's, so a fleet behind a load balancer is not throttled as one client.
 */
class AdmissionTest {

    static int stormRefusals(String url, String forwardedFor, int sessions) throws Exception {
        BoshTestClient storm = new BoshTestClient(url, "localhost");
        if (forwardedFor != null) {
            storm.withHeader("X-Forwarded-For", forwardedFor);
        }
        int refused = 0;
        for (int i = 0; i < sessions; i++) {
            BoshTestClient.Answer answer = storm.post(RealStack.SESSION_CREATE.formatted(storm.nextRid()));
            if (answer.status() == 503) {
                refused++;
                assertThat(answer.headers().firstValue("retry-after")).isPresent();
            } else {
                assertThat(answer.status()).isEqualTo(200);
            }
        }
        return refused;
    }

    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "management.server.port=0", "megaphone.link.links-per-node=1",
        "megaphone.edge.admission.per-client=on",
        "megaphone.edge.admission.sessions-per-second-per-client=0.01",
        "megaphone.edge.admission.sessions-burst-per-client=4"})
    class ClientsConnectingDirectly extends RealEcmTest {

        @Test
        void sessionCreationsPastTheBurstAre503WhileAnExistingSessionChatsOn() throws Exception {
            awaitLinks(1);
            String url = boshUrl();
            String alice = SharedEjabberd.newUser("alice");
            String bob = SharedEjabberd.newUser("bob");
            BoshTestClient aliceClient = new BoshTestClient(url, "localhost").login(alice, SharedEjabberd.PASSWORD, 10);
            BoshTestClient bobClient = new BoshTestClient(url, "localhost").login(bob, SharedEjabberd.PASSWORD, 10);
            bobClient.clear();

            assertThat(stormRefusals(url, null, 10)).as("2 logins + 2 storm sessions used the burst of 4")
                    .isEqualTo(8);

            CompletableFuture<BoshTestClient.Answer> held = bobClient.poll();
            aliceClient.sendChat(bob + "@localhost", "still here");
            BoshTestClient.Answer answer = held.get(10, TimeUnit.SECONDS);
            assertThat(answer.status()).isEqualTo(200);
            assertThat(answer.body()).contains("still here");
            aliceClient.terminate();
            bobClient.terminate();
        }
    }

    /** The chart's and the application's default: per-client auto, no trusted proxies (a balancer in front). */
    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "management.server.port=0", "megaphone.link.links-per-node=1"})
    class BehindALoadBalancerWithNoTrustedProxies extends RealEcmTest {

        @Test
        void aFleetSharingTheBalancersAddressIsNotThrottledAsOneClient() throws Exception {
            awaitLinks(1);
            // 40 logins from one address at once: the per-client default (10/s, burst 20) would refuse about 20.
            assertThat(stormRefusals("http://127.0.0.1:" + port + "/http-bind", null, 40)).isZero();
        }
    }

    /** Behind a trusted proxy the rate applies to each address the proxy reports. */
    @Nested
    @SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
        "management.server.port=0", "megaphone.link.links-per-node=1",
        "megaphone.edge.trusted-proxies=127.0.0.0/8",
        "megaphone.edge.admission.sessions-per-second-per-client=0.01",
        "megaphone.edge.admission.sessions-burst-per-client=3"})
    class BehindATrustedProxy extends RealEcmTest {

        @Test
        void eachReportedClientHasItsOwnBucket() throws Exception {
            awaitLinks(1);
            String url = "http://127.0.0.1:" + port + "/http-bind";
            assertThat(stormRefusals(url, "203.0.113.7", 6)).as("past the burst of 3").isEqualTo(3);
            assertThat(stormRefusals(url, "203.0.113.8", 3)).as("another client behind the same proxy").isZero();
            assertThat(stormRefusals(url, null, 5)).as("the proxy reporting no client: not throttled as one")
                    .isZero();
        }
    }
}
