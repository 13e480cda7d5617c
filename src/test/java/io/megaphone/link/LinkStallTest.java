// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.Disposable;

/**
 * Stall detection against a fake of mod_megaphone that holds every request: a link that goes silent with a request
 * in flight is closed within the stall timeout and the request re-sent on the other link; a link that still answers
 * PINGs, or that has nothing in flight, stays.
 */
class LinkStallTest {

    private static final byte[] SECRET = "stall-test-secret-stall-test-secret-st".getBytes(StandardCharsets.UTF_8);
    private static final Duration STALL = Duration.ofMillis(150);
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

    private void start() throws Exception {
        start(Duration.ofSeconds(15));
    }

    private void start(Duration heartbeat) throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null); // holds every request, as a long poll
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "stall-ecm", heartbeat,
                Duration.ofSeconds(2), 1 << 20, null, null, STALL);
        pool = new LinkPool(List.of(server.socketAddress()), 2, settings, Duration.ofSeconds(30),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
    }

    private static RequestEnvelope envelope(long rid) throws Exception {
        return RequestEnvelope.of(rid, "sid-1", InetAddress.getLoopbackAddress(), 4321,
                "<body/>".getBytes(StandardCharsets.UTF_8));
    }

    private long stalls() {
        return pool.links().stream().mapToLong(link -> link.stats().stalls()).sum();
    }

    @Test
    void aLinkThatGoesSilentWithARequestInFlightIsClosedAndTheRequestReSentOnTheOther() throws Exception {
        start();
        Disposable held = Submit.of(pool, envelope(7)).subscribe();
        try {
            await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 1);
            FakeMegaphoneServer.Received first = server.received.peek();
            long silentAt = System.nanoTime();
            server.silent.add(first.channel());

            await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 2);
            double millis = (System.nanoTime() - silentAt) / 1e6;
            FakeMegaphoneServer.Received again = server.received.stream().skip(1).findFirst().orElseThrow();
            System.out.printf(Locale.ROOT, "[stall] silent link to re-sent request: %.1f ms (stall timeout %d ms)%n",
                    millis, STALL.toMillis());

            assertThat(again.channel()).as("re-sent on the other link").isNotSameAs(first.channel());
            assertThat(again.request().envelope().rid()).isEqualTo(7);
            assertThat(stalls()).as("links closed as stalled").isEqualTo(1);
            assertThat(millis).as("well before the 3 x 15 s heartbeat").isLessThan(2000);
        } finally {
            held.dispose();
        }
    }

    @Test
    void aLinkThatAnswersPingsIsNotStalledByALongHeldRequest() throws Exception {
        start();
        Disposable held = Submit.of(pool, envelope(8)).subscribe();
        try {
            await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 1);
            long pongsBefore = pool.links().stream().mapToLong(l -> l.stats().received(7)).sum();
            // Ten stall timeouts: the PINGs of the busy link keep it alive.
            await().atMost(Duration.ofSeconds(10)).until(() ->
                    pool.links().stream().mapToLong(l -> l.stats().received(7)).sum() >= pongsBefore + 30);

            assertThat(stalls()).as("links closed as stalled").isZero();
            assertThat(server.received).as("the request stayed where it was").hasSize(1);
            assertThat(pool.links()).allSatisfy(link -> assertThat(link.stats().connects()).isEqualTo(1));
        } finally {
            held.dispose();
        }
    }

    @Test
    void anIdleLinkOnASilentServerKeepsTheSlowHeartbeat() throws Exception {
        start(Duration.ofSeconds(1)); // closed as silent only after 3 s
        server.stalled = true; // no PONG on any link
        long pingsBefore = pool.links().stream().mapToLong(l -> l.stats().sent(6)).sum();
        // Each link sends a slow PING in this window, and none of them may count as awaited.
        await().atMost(Duration.ofSeconds(5)).until(() ->
                pool.links().stream().allMatch(l -> l.stats().sent(6) >= 2));
        Thread.sleep(2 * STALL.toMillis()); // a negative: past the stall timeout of that PING

        assertThat(stalls()).as("links closed as stalled").isZero();
        assertThat(pool.readyLinks()).isEqualTo(2);
        assertThat(pool.links().stream().mapToLong(l -> l.stats().sent(6)).sum() - pingsBefore)
                .as("slow PINGs only, no fast ones without requests in flight").isLessThanOrEqualTo(4);
    }

    @Test
    void linksAllSilentAtOnceAreASlowNodeAndStayUntilOneAnswersAgain() throws Exception {
        start();
        Disposable first = Submit.of(pool, envelope(9)).subscribe();
        Disposable second = Submit.of(pool, envelope(10)).subscribe();
        try {
            await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 2);
            List<FakeMegaphoneServer.Received> held = List.copyOf(server.received);
            assertThat(held.get(0).channel()).as("one request per link").isNotSameAs(held.get(1).channel());
            held.forEach(r -> server.silent.add(r.channel()));
            // Ten stall timeouts of silence on every link: the node is slow, no link is closed, nothing re-sent.
            long probesBefore = pool.links().stream().mapToLong(l -> l.stats().sent(6)).sum();
            await().atMost(Duration.ofSeconds(10)).until(() ->
                    pool.links().stream().mapToLong(l -> l.stats().sent(6)).sum() >= probesBefore + 20);
            assertThat(stalls()).as("links closed as stalled while all were silent").isZero();
            assertThat(server.received).as("nothing re-sent").hasSize(2);

            server.silent.remove(held.get(0).channel()); // one link answers again: the other one is stalled
            await().atMost(Duration.ofSeconds(5)).until(() -> stalls() == 1);
            await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 3);
            assertThat(server.received.stream().skip(2).findFirst().orElseThrow().request().envelope().rid())
                    .as("the silent link's request, re-sent").isEqualTo(held.get(1).request().envelope().rid());
        } finally {
            first.dispose();
            second.dispose();
        }
    }
}
