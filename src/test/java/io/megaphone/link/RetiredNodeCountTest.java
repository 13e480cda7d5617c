// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Discovery drops a node while requests are held on its link: the link drains, and until its requests are answered
 * they still count as held ({@link LinkPool#inflight()}: the held gauge, admission and the drain read it), then
 * they stop counting once answered and the link is gone.
 */
class RetiredNodeCountTest {

    private static final byte[] SECRET = "retired-node-secret-retired-node-secret".getBytes(StandardCharsets.UTF_8);
    private FakeMegaphoneServer a;
    private FakeMegaphoneServer b;
    private LinkPool pool;

    @AfterEach
    void stop() {
        if (pool != null) {
            pool.close();
        }
        if (a != null) {
            a.close();
        }
        if (b != null) {
            b.close();
        }
    }

    @Test
    void requestsHeldOnADroppedNodeStillCountUntilTheyAreAnswered() throws Exception {
        a = new FakeMegaphoneServer(SECRET, request -> null);
        b = new FakeMegaphoneServer(SECRET, request -> null);
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "retire-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(a.socketAddress(), b.socketAddress()), 1, settings, Duration.ofSeconds(60),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        List<CompletableFuture<Frame.Response>> answers = new ArrayList<>();
        for (int i = 1; i <= 10; i++) {
            CompletableFuture<Frame.Response> answer = new CompletableFuture<>();
            answers.add(answer);
            pool.submit(RequestEnvelope.of(i, "sid-" + i, InetAddress.getLoopbackAddress(), 1,
                    ("<body rid='" + i + "'/>").getBytes(StandardCharsets.UTF_8)), new Exchange() {
                        @Override
                        public void onResponse(Frame.Response response) {
                            answer.complete(response);
                        }

                        @Override
                        public void onFailure(Throwable error) {
                            answer.completeExceptionally(error);
                        }
                    });
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> a.received.size() + b.received.size() == 10);
        int onB = b.received.size();
        assertThat(onB).as("requests spread over both nodes").isBetween(1, 9);

        pool.setNodes(Set.of(a.socketAddress())); // discovery lost node b

        assertThat(pool.inflight()).isEqualTo(10);
        Thread.sleep(300);
        assertThat(pool.inflight()).as("b's held requests still count while its link drains").isEqualTo(10);
        for (FakeMegaphoneServer.Received held : b.received) {
            b.answer(held, 200, "<body/>");
        }
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() == 10 - onB);
        await().atMost(Duration.ofSeconds(5)).until(() -> b.links.isEmpty()); // drained and closed
        assertThat(pool.inflight()).isEqualTo(10 - onB);
        assertThat(answers.stream().filter(CompletableFuture::isDone).count()).isEqualTo(onB);
    }
}
