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
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A client that goes away while its request is being registered on a link: the cancel and the registration race
 * on two threads. Every cancelled request must leave the link (CANCEL sent, or never sent at all), so the held
 * count goes back to 0 at once, not after the upstream timeout; and once a cancel has won, that request gets no
 * outcome (each request ends once: an answer, or client_gone).
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
    void manySubmitCancelRacesLeaveNothingHeldAndDeliverNoOutcomeAfterACancel() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null); // ejabberd holds every request
        startPool();
        Recording[] exchanges = race(ROUNDS, false);

        // Far less than the 5-minute upstream timeout: only a leaked request would stay.
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(pool.inflight()).isZero());
        await().atMost(Duration.ofSeconds(10)).untilAsserted(
                () -> assertThat(server.cancels.size()).isEqualTo(server.received.size()));
        // Nothing answered, so every cancel won: no outcome at all, and each counted once as client_gone.
        assertThat(outcomes(exchanges)).isZero();
        assertThat(pool.clientGone()).isEqualTo(THREADS * ROUNDS);
    }

    @Test
    void whenAnswersRaceTheCancelsEachRequestEndsOnceAndNeverWithAnOutcomeAfterItsCancel() throws Exception {
        server = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo); // ejabberd answers at once
        startPool();
        Recording[] exchanges = race(ROUNDS / 4, true);

        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(pool.inflight()).isZero());
        int answered = outcomes(exchanges);
        long gone = pool.clientGone();
        assertThat(answered).as("answers that won").isPositive();
        assertThat(gone).as("cancels that won").isPositive();
        assertThat(answered + gone).as("outcomes %d + client_gone %d", answered, gone)
                .isEqualTo(exchanges.length);
        for (Recording exchange : exchanges) {
            assertThat(exchange.afterCancel).as("an outcome delivered after its cancel won").isZero();
            assertThat(exchange.outcomes.get()).isLessThanOrEqualTo(1);
            assertThat(exchange.outcomes.get() == 1).as("an outcome xor a won cancel")
                    .isNotEqualTo(exchange.request.cancelled);
        }
    }

    private void startPool() {
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "race-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(server.socketAddress()), 1, settings, Duration.ofMinutes(5),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
    }

    /** Each of THREADS threads submits {@code rounds} requests and cancels each at once. */
    private Recording[] race(int rounds, boolean nearTheAnswer) throws Exception {
        RequestEnvelope envelope = RequestEnvelope.of(1, "sid-race", InetAddress.getLoopbackAddress(), 1,
                "<body rid='1'/>".getBytes(StandardCharsets.UTF_8));
        Recording[] exchanges = new Recording[THREADS * rounds];
        CyclicBarrier barrier = new CyclicBarrier(THREADS);
        Thread[] threads = new Thread[THREADS];
        for (int t = 0; t < THREADS; t++) {
            int first = t * rounds;
            threads[t] = new Thread(() -> {
                try {
                    barrier.await();
                    for (int i = 0; i < rounds; i++) {
                        Recording exchange = new Recording();
                        exchanges[first + i] = exchange;
                        exchange.request = pool.submit(envelope, exchange);
                        if (nearTheAnswer && (i & 1) == 0) {
                            LockSupport.parkNanos(i % 200 * 1_000L); // up to a round trip: the answer may win
                        } else if ((i & 3) != 0) {
                            Thread.onSpinWait(); // vary the gap so the cancel lands at every point of register
                        }
                        exchange.request.cancel();
                        exchange.cancelWon = exchange.request.cancelled;
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
        for (Recording exchange : exchanges) {
            assertThat(exchange).isNotNull();
        }
        return exchanges;
    }

    private static int outcomes(Recording[] exchanges) {
        int sum = 0;
        for (Recording exchange : exchanges) {
            sum += exchange.outcomes.get();
        }
        return sum;
    }

    /** An exchange that records its outcomes, and any that comes after a cancel that won. */
    private static final class Recording implements Exchange {
        final AtomicInteger outcomes = new AtomicInteger();
        volatile PendingRequest request;
        volatile boolean cancelWon;
        volatile int afterCancel;

        @Override
        public void onResponse(Frame.Response response) {
            outcome();
        }

        @Override
        public void onFailure(Throwable error) {
            outcome();
        }

        private void outcome() {
            outcomes.incrementAndGet();
            if (cancelWon) {
                afterCancel++;
            }
        }
    }
}
