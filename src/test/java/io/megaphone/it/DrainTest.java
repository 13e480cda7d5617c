// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * A rolling update under load: users chat through ECM A (a stand-in load balancer sends each request to A while
 * A's readiness is UP, else to ECM B). A gets SIGTERM mid-conversation. No client request may fail and every
 * message must arrive exactly once; A must exit by itself once drained.
 */
class DrainTest {

    private static final int PAIRS = 5;

    @Test
    void anEcmStoppedWhileClientsChatFailsNoRequest() throws Exception {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        try (EcmProcess a = EcmProcess.start(ejabberd, "--megaphone.edge.drain-timeout=20s");
             EcmProcess b = EcmProcess.start(ejabberd)) {
            AtomicBoolean aReady = new AtomicBoolean(true);
            AtomicBoolean watching = new AtomicBoolean(true);
            Thread healthCheck = new Thread(() -> {
                while (watching.get()) {
                    aReady.set(a.ready());
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            healthCheck.start();
            java.util.function.Supplier<String> balancer = () -> aReady.get() ? a.boshUrl() : b.boshUrl();

            List<BoshTestClient> senders = new ArrayList<>();
            List<BoshPoller> receivers = new ArrayList<>();
            List<String> receiverJids = new ArrayList<>();
            for (int i = 0; i < PAIRS; i++) {
                String from = SharedEjabberd.newUser("drainfrom");
                String to = SharedEjabberd.newUser("drainto");
                senders.add(new BoshTestClient(balancer, "localhost").login(from, SharedEjabberd.PASSWORD, 10));
                BoshTestClient receiver = new BoshTestClient(balancer, "localhost").login(to, SharedEjabberd.PASSWORD, 10);
                receiver.clear();
                receivers.add(new BoshPoller(receiver));
                receiverJids.add(to + "@localhost");
            }

            List<String> sent = new ArrayList<>();
            List<CompletableFuture<BoshTestClient.Answer>> sends = new ArrayList<>();
            for (int round = 1; round <= 40; round++) {
                String text = "round " + round;
                sent.add(text);
                for (int i = 0; i < PAIRS; i++) {
                    sends.add(senders.get(i).sendChat(receiverJids.get(i), text));
                }
                if (round == 10) {
                    a.terminate();
                }
                Thread.sleep(150);
            }
            for (BoshPoller receiver : receivers) {
                await().atMost(Duration.ofSeconds(20)).until(() -> receiver.chatBodies.size() >= sent.size()
                        || !receiver.failures.isEmpty());
            }
            assertThat(a.waitForExit(40)).as("A exits by itself after draining").isTrue();
            for (BoshTestClient sender : senders) {
                sends.add(CompletableFuture.completedFuture(sender.terminate()));
            }
            watching.set(false);
            for (BoshPoller receiver : receivers) {
                receiver.close();
                assertThat(receiver.failures).isEmpty();
                assertThat(receiver.retries.get()).as("no 5xx answer to retry").isZero();
                assertThat(receiver.chatBodies).containsExactlyElementsOf(sent);
            }
            for (CompletableFuture<BoshTestClient.Answer> send : sends) {
                assertThat(send.get().status()).isEqualTo(200);
            }
            assertThat(a.logText()).contains("draining: readiness DOWN").contains("links sent GOAWAY");
        }
    }
}
