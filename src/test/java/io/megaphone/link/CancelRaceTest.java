// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A client that goes away while its request is being registered on a link: the cancel and the registration race
 * on two threads. Every cancelled request must leave the link (CANCEL sent, or never sent at all), so the held
 * count goes back to 0 at once, not after the upstream timeout.
 */
class CancelRaceTest {

    private static final byte[] SECRET = "cancel-race-test-secret-of-32-bytes!".getBytes(StandardCharsets.UTF_8);
    private static final int THREADS = 2;
    private static final int ROUNDS = 20_000;
    private FakeMegaphoneServer server;
    private LinkPool pool;

    @AfterEach
    void stop() {
        if (pool != null) {
            pool.close();
        }
        if (server != null) {
            server.close();
        }
    }

    @Test
    void manySubmitCancelRacesLeaveNothingHeld() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null); // ejabberd holds every request
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "race-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(server.socketAddress()), 1, settings, Duration.ofMinutes(5),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        RequestEnvelope envelope = RequestEnvelope.of(1, "sid-race", InetAddress.getLoopbackAddress(), 1,
                "<body rid='1'/>".getBytes(StandardCharsets.UTF_8));
        Exchange ignore = new Exchange() {
            @Override
            public void onResponse(Frame.Response response) {
            }

            @Override
            public void onFailure(Throwable error) {
            }
        };
        CyclicBarrier barrier = new CyclicBarrier(THREADS);
        AtomicInteger submitted = new AtomicInteger();
        Thread[] threads = new Thread[THREADS];
        for (int t = 0; t < THREADS; t++) {
            threads[t] = new Thread(() -> {
                try {
                    barrier.await();
                    for (int i = 0; i < ROUNDS; i++) {
                        PendingRequest request = pool.submit(envelope, ignore);
                        submitted.incrementAndGet();
                        if ((i & 3) != 0) {
                            Thread.onSpinWait(); // vary the gap so the cancel lands at every point of register
                        }
                        request.cancel();
                    }
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            threads[t].start();
        }
        for (Thread thread : threads) {
            thread.join();
        }

        assertThat(submitted.get()).isEqualTo(THREADS * ROUNDS);
        // Far less than the 5-minute upstream timeout: only a leaked request would stay.
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(pool.inflight()).isZero());
        await().atMost(Duration.ofSeconds(10)).untilAsserted(
                () -> assertThat(server.cancels.size()).isEqualTo(server.received.size()));
    }
}
