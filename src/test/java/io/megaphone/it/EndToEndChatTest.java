// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * The first slice end to end, through real parts only: a BOSH client over HTTP → the ECM on a real port → a
 * megaphone link → mod_megaphone → ejabberd_bosh in a real ejabberd, and back.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class EndToEndChatTest extends RealEcmTest {

    @BeforeEach
    void linksAreUp() {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
    }

    private BoshTestClient client() {
        return new BoshTestClient("http://127.0.0.1:" + port + "/http-bind", PrivateEjabberd.DOMAIN);
    }

    @Test
    void aliceSendsBobAChatMessageThatBobsHeldPollBringsBack() throws Exception {
        System.out.println("[real ejabberd] chatting through ejabberd " + SharedEjabberd.get().version());
        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = client().login(alice, SharedEjabberd.PASSWORD, 30);
        BoshTestClient bobClient = client().login(bob, SharedEjabberd.PASSWORD, 30);
        bobClient.clear();

        CompletableFuture<BoshTestClient.Answer> held = bobClient.poll();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() >= 1);
        assertThat(held).as("the poll is held until there is something for bob").isNotDone();

        aliceClient.sendChat(bob + "@localhost", "hello bob, through megaphone");

        BoshTestClient.Answer answer = held.get(10, TimeUnit.SECONDS);
        assertThat(answer.status()).isEqualTo(200);
        bobClient.take(answer);
        assertThat(bobClient.chatBodies()).containsExactly("hello bob, through megaphone");
        assertThat(answer.headers().firstValue("content-type")).hasValueSatisfying(ct -> assertThat(ct).contains("xml"));

        assertThat(BoshTestClient.parse(aliceClient.terminate().body()).getAttribute("type")).isEqualTo("terminate");
        assertThat(BoshTestClient.parse(bobClient.terminate().body()).getAttribute("type")).isEqualTo("terminate");
    }

    @Test
    void aReSentRidGetsTheSameBodyFromEjabberdsBuffer() throws Exception {
        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = client().login(alice, SharedEjabberd.PASSWORD, 30);
        BoshTestClient bobClient = client().login(bob, SharedEjabberd.PASSWORD, 30);

        long rid = bobClient.nextRid();
        String pollBody = bobClient.wrap(rid, "");
        CompletableFuture<BoshTestClient.Answer> held = bobClient.postAsync(pollBody);
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() >= 1);
        aliceClient.sendChat(bob + "@localhost", "say it twice");
        BoshTestClient.Answer first = held.get(10, TimeUnit.SECONDS);
        assertThat(first.body()).contains("say it twice");

        BoshTestClient.Answer again = bobClient.post(pollBody);
        assertThat(again.status()).isEqualTo(200);
        assertThat(again.body()).isEqualTo(first.body());
        aliceClient.terminate();
        bobClient.terminate();
    }
}
