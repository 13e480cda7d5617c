// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkView;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.distribution.CountAtBucket;
import java.util.concurrent.TimeUnit;
import java.time.Duration;
import java.util.Locale;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Issue 22, item 3: a link whose TCP connection stays open but carries nothing any more (the proxy drops its bytes)
 * while Strophe-like sessions with {@code requests='2'} chat through it and a second link, to a stock ejabberd 23.01
 * (no rid-order patch) behind mod_megaphone. A request N stuck on that link must be re-sent before its session's
 * N+1, sent on the other link, has waited mod_megaphone's {@code order_timeout} (300 ms): else ejabberd gets N+1
 * first and the session is lost. The ECM finds the stall within {@code megaphone.link.stall-timeout} and re-sends
 * (same rid); one stall drops both directions, one only the answers. No session may be lost, every message must
 * arrive exactly once.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
@DirtiesContext // its links go through this class's proxy
class StalledLinkTest {

    /** Sessions: pairs × 2. */
    private static final int PAIRS = 15;
    private static final int WAIT = 10;

    private static CuttableProxy proxy;

    @LocalServerPort
    private int port;

    @Autowired
    private LinkPool pool;

    @Autowired
    private MeterRegistry registry;

    @DynamicPropertySource
    static void linkThroughProxy(DynamicPropertyRegistry registry) {
        proxy = CuttableProxy.forSharedEjabberdLinks(registry);
    }

    @AfterAll
    static void closeProxy() {
        proxy.close();
    }

    @Test
    void aStalledLinkMidChatLosesNoSessionAndNoMessageWithRequestsTwo() throws Exception {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        assertThat(proxy.live()).as("both links go through the proxy").isEqualTo(2);
        String userA = SharedEjabberd.newUser("stall-a");
        String userB = SharedEjabberd.newUser("stall-b");
        long resendsBefore = pool.resendsLinkClosed();
        long stallsBefore = stalls();

        try (StropheLikeChat chat = new StropheLikeChat("http://127.0.0.1:" + port + "/http-bind", WAIT, 50, 400)) {
            chat.start(userA, userB, SharedEjabberd.PASSWORD, PAIRS);
            chat.startSending();
            Thread.sleep(1500);
            CuttableProxy.Connection both = proxy.stallOldest(true);
            Thread.sleep(3000);
            CuttableProxy.Connection answers = proxy.stallOldest(false);
            Thread.sleep(3000);
            chat.finish();
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (!chat.withoutEnd().isEmpty() && chat.lost().isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(100); // the assertions below say what is missing
            }

            System.out.printf(Locale.ROOT, "[stalled link] %d sessions, %d messages sent, %d received, %d client"
                    + " re-sends; stall of both directions: closed by the ECM %.1f ms after the stall, %.1f ms after"
                    + " the first request bytes it dropped; stall of the answers: closed %.1f ms after the stall;"
                    + " ECM stall closes %d, requests re-sent %d; sessions lost %d, stuck %d, messages missing %d%n",
                    chat.sessions.size(), chat.sent.size(), chat.received.size(), chat.retries.get(), both.stallToCloseMillis(),
                    since(both.firstRequestBytesDroppedAt, both.clientClosedAt), answers.stallToCloseMillis(),
                    stalls() - stallsBefore, pool.resendsLinkClosed() - resendsBefore, chat.lost().size(),
                    chat.withoutEnd().size(), chat.missing().size());

            System.out.println("[stalled link] heartbeat round trips: " + roundTrips());

            assertThat(chat.lost()).as("sessions lost").isEmpty();
            assertThat(chat.withoutEnd()).as("sessions whose peer's last message never came").isEmpty();
            assertThat(chat.missing()).as("messages sent and never received").isEmpty();
            assertThat(chat.duplicatesAndStrays()).as("messages received twice, or never sent").isEmpty();
            assertThat(both.clientClosedAt).as("the ECM closed the link stalled both ways").isPositive();
            assertThat(answers.clientClosedAt).as("the ECM closed the link stalled for answers").isPositive();
            assertThat(stalls() - stallsBefore).as("links the ECM closed as stalled").isGreaterThanOrEqualTo(2);
            assertThat(pool.resendsLinkClosed() - resendsBefore).as("requests re-sent off the stalled links")
                    .isPositive();
        }
    }

    /** The links' PING round trips so far: how many, how many over 100 ms and 250 ms, the longest. */
    private String roundTrips() {
        long count = 0;
        long over100 = 0;
        long over250 = 0;
        double maxMillis = 0;
        for (Timer rtt : registry.find("megaphone.link.rtt").timers()) {
            count += rtt.count();
            maxMillis = Math.max(maxMillis, rtt.max(TimeUnit.MILLISECONDS));
            for (CountAtBucket bucket : rtt.takeSnapshot().histogramCounts()) {
                if (bucket.bucket(TimeUnit.MILLISECONDS) == 100) {
                    over100 += rtt.count() - (long) bucket.count();
                } else if (bucket.bucket(TimeUnit.MILLISECONDS) == 250) {
                    over250 += rtt.count() - (long) bucket.count();
                }
            }
        }
        return String.format(Locale.ROOT, "%d, %d over 100 ms, %d over 250 ms, longest %.0f ms", count, over100,
                over250, maxMillis);
    }

    private long stalls() {
        return pool.links().stream().map(LinkView::stats).mapToLong(s -> s.stalls()).sum();
    }

    private static double since(long from, long to) {
        return from == 0 || to == 0 ? -1 : (to - from) / 1e6;
    }
}
