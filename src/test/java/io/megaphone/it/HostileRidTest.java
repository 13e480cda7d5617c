// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * Issue 21: no rid a client picks makes ejabberd allocate in proportion to it. Sessions created through the real
 * ECM (no login needed) send rids far above their window (creation + 10^9, 2^53 - 1, and 1,000 sessions with one far
 * rid each) and rids below their creation rid. Every answer is a BOSH terminate with {@code item-not-found} within
 * 1 s, ejabberd's {@code erlang:memory(total)} stays within 50 MB of its level before (sampled throughout), and a
 * chat between two logged-in users runs beside it, every message delivered once. At a2186b1 one rid of creation +
 * 10^7 took ejabberd from 86 MB to 1.1 GB.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class HostileRidTest extends RealEcmTest {

    private static final long MB = 1024 * 1024;
    private static final int FAR_SESSIONS = 1000;
    private static final int AT_ONCE = 50;
    private static final int MESSAGES = 20;

    @Test
    void farAndBelowCreationRidsAreItemNotFoundAtOnceAndCostEjabberdNoMemoryWhileAChatGoesOn() throws Exception {
        awaitLinks(2);
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        String alice = SharedEjabberd.newUser("hostile-a");
        String bob = SharedEjabberd.newUser("hostile-b");
        BoshTestClient aliceClient = client().login(alice, SharedEjabberd.PASSWORD, 5);
        BoshTestClient bobClient = client().login(bob, SharedEjabberd.PASSWORD, 5);
        bobClient.clear();

        long before = ejabberd.memoryTotal();
        AtomicLong peak = new AtomicLong(before);
        AtomicBoolean done = new AtomicBoolean();
        Thread sampler = new Thread(() -> {
            while (!done.get()) {
                try {
                    peak.accumulateAndGet(ejabberd.memoryTotal(), Math::max);
                } catch (Exception e) {
                    return;
                }
            }
        }, "ejabberd-memory-sampler");
        sampler.setDaemon(true);
        sampler.start();
        CompletableFuture<List<String>> chat = CompletableFuture.supplyAsync(() -> chat(aliceClient, bobClient, bob));

        List<Long> slowest = new ArrayList<>();
        slowest.add(hostile(1_000_000_000L, false));
        slowest.add(hostile(-1, false)); // 2^53 - 1
        ExecutorService pool = Executors.newFixedThreadPool(AT_ONCE);
        try {
            List<Future<Long>> far = new ArrayList<>();
            for (int i = 0; i < FAR_SESSIONS; i++) {
                long distance = 1_000_000_000L + i;
                far.add(pool.submit(() -> hostile(distance, false)));
            }
            List<Future<Long>> below = new ArrayList<>();
            for (long distance : new long[] {1, 2, 1000, 1_000_000}) {
                below.add(pool.submit(() -> hostile(distance, true)));
            }
            for (Future<Long> f : far) {
                slowest.add(f.get(120, TimeUnit.SECONDS));
            }
            for (Future<Long> f : below) {
                slowest.add(f.get(30, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
        List<String> received = chat.get(60, TimeUnit.SECONDS);
        done.set(true);
        sampler.join(10_000);
        long after = ejabberd.memoryTotal();
        long slowestMs = slowest.stream().mapToLong(Long::longValue).max().orElseThrow();
        System.out.printf("[hostile rids] %d far + 4 below-creation sessions: slowest answer %d ms; ejabberd memory "
                + "before %d MB, peak %d MB, after %d MB; chat %d of %d messages%n", FAR_SESSIONS + 2, slowestMs,
                before / MB, peak.get() / MB, after / MB, received.size(), MESSAGES);

        assertThat(slowestMs).as("slowest answer to a hostile rid, ms").isLessThan(1000);
        assertThat(peak.get() - before).as("ejabberd memory growth at its peak, bytes").isLessThan(50 * MB);
        assertThat(after - before).as("ejabberd memory growth after, bytes").isLessThan(50 * MB);
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < MESSAGES; i++) {
            expected.add("beside " + i);
        }
        assertThat(received).as("the chat beside the attack: every message once, in order").isEqualTo(expected);
        aliceClient.terminate();
        bobClient.terminate();
    }

    /**
     * Creates a session and sends one empty request with rid = creation + distance (2^53 - 1 for a negative
     * distance), or creation - distance when {@code below}; asserts the item-not-found terminate and returns how
     * long it took, in ms.
     */
    private long hostile(long distance, boolean below) throws Exception {
        BoshTestClient client = client();
        long creationRid = 1_000_000_000L + (long) (Math.random() * 1_000_000_000L);
        BoshTestClient.Answer created = client.post(RealStack.SESSION_CREATE.formatted(creationRid));
        String sid = BoshTestClient.parse(created.body()).getAttribute("sid");
        assertThat(sid).as("session created: %s", created.body()).isNotEmpty();
        long rid = below ? creationRid - distance : distance < 0 ? (1L << 53) - 1 : creationRid + distance;
        String body = "<body rid='" + rid + "' sid='" + sid + "' xmlns='" + BoshTestClient.NS + "'/>";
        long started = System.nanoTime();
        BoshTestClient.Answer answer = client.postAsync(body).get(10, TimeUnit.SECONDS);
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started);
        assertThat(answer.status()).as("rid %d: %s", rid, answer.body()).isEqualTo(200);
        assertThat(answer.body()).as("rid %d", rid).contains("type='terminate'").contains("condition='item-not-found'");
        if (below) {
            // a session whose stale copy arrives must go on: end it here (no login, so it would idle 30 s)
            client.post("<body rid='" + (creationRid + 1) + "' sid='" + sid + "' type='terminate' xmlns='"
                    + BoshTestClient.NS + "'/>");
        }
        return ms;
    }

    /** Alice sends MESSAGES chats to bob, one every 100 ms; bob's polls collect them. */
    private static List<String> chat(BoshTestClient alice, BoshTestClient bob, String bobUser) {
        try {
            CompletableFuture<Void> sender = CompletableFuture.runAsync(() -> {
                for (int i = 0; i < MESSAGES; i++) {
                    alice.sendChat(bobUser + "@" + PrivateEjabberd.DOMAIN, "beside " + i);
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                }
            });
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(45);
            while (bob.chatBodies().size() < MESSAGES && System.nanoTime() < deadline) {
                bob.take(bob.poll().get(20, TimeUnit.SECONDS));
            }
            sender.get(10, TimeUnit.SECONDS);
            return bob.chatBodies();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private BoshTestClient client() {
        return new BoshTestClient(boshUrl(), PrivateEjabberd.DOMAIN);
    }
}
