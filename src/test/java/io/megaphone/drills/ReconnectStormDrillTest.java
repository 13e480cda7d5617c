// SPDX-License-Identifier: Apache-2.0
package io.megaphone.drills;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.it.EcmProcess;
import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.SharedEjabberd;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A reconnect storm above the admission limits (session creations from 8 client addresses, 127.0.0.2-9, in a few
 * seconds; the ECM's limits set low) while existing sessions chat through the same ECM: every storm request gets
 * either a session (200) or a 503 with Retry-After, and the existing sessions see no failed request and lose no
 * message.
 */
@Tag("drill")
class ReconnectStormDrillTest {

    private static final String SESSION_CREATE = "<body rid='%d' to='localhost' wait='10' hold='1' ver='1.6'"
            + " xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>";

    @Test
    void sessionCreationsAboveTheLimitsAre503WhileExistingSessionsChatOn() throws Exception {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        int storm = Drill.scaled(200, 2_000);
        int threads = Drill.scaled(8, 32);
        try (EcmProcess ecm = Drill.ecm(ejabberd, "--megaphone.link.links-per-node=2",
                "--megaphone.edge.admission.sessions-per-second=20", "--megaphone.edge.admission.sessions-burst=40",
                "--megaphone.edge.admission.sessions-per-second-per-client=5",
                "--megaphone.edge.admission.sessions-burst-per-client=30")) {
            String prefix = Drill.uniquePrefix("storm");
            int pairs = Drill.scaled(3, 10);
            Drill.registerUsers(ejabberd, prefix, 2 * pairs, SharedEjabberd.PASSWORD);
            ChatLoad chat = new ChatLoad(List.of(ecm.boshUrl()), prefix, SharedEjabberd.PASSWORD, pairs, 300);
            try {
                chat.start();
                Thread.sleep(3000); // the logins' tokens come back
                long chatAttemptsBefore = chat.attempts.sum();
                chat.startSending("storm");
                Thread.sleep(500);

                Map<String, LongAdder> outcomes = new ConcurrentHashMap<>();
                LongAdder withoutRetryAfter = new LongAdder();
                ExecutorService pool = Executors.newFixedThreadPool(threads);
                long start = System.nanoTime();
                List<Future<?>> done = new ArrayList<>();
                for (int i = 0; i < storm; i++) {
                    int n = i;
                    done.add(pool.submit(() -> {
                        InetAddress source = InetAddress.getByAddress(new byte[] {127, 0, 0, (byte) (2 + n % 8)});
                        RawHttp.Outcome o = RawHttp.exchange(source, ecm.port, RawHttp.request("POST", "/http-bind",
                                "text/xml; charset=utf-8", SESSION_CREATE.formatted(1000 + n)
                                        .getBytes(StandardCharsets.UTF_8)), RawHttp.Mode.NORMAL, 15_000);
                        outcomes.computeIfAbsent(o.status(), k -> new LongAdder()).increment();
                        if (o.status().equals("503") && !o.head().toLowerCase().contains("retry-after:")) {
                            withoutRetryAfter.increment();
                        }
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get(5, TimeUnit.MINUTES);
                }
                pool.shutdown();
                long stormMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                ChatLoad.PhaseResult result = chat.quiesce("storm", 30);

                Map<String, Long> statuses = new TreeMap<>();
                outcomes.forEach((s, n) -> statuses.put(s, n.sum()));
                Map<String, Object> figures = new LinkedHashMap<>();
                figures.put("storm_session_creations", storm);
                figures.put("client_addresses", 8);
                figures.put("duration_ms", stormMillis);
                figures.put("rate_per_s", storm * 1000L / Math.max(1, stormMillis));
                figures.put("limits", "20/s burst 40 global; 5/s burst 30 per address");
                figures.put("outcomes", statuses);
                figures.put("503_without_retry_after", withoutRetryAfter.sum());
                figures.put("chat_users", chat.users());
                figures.put("chat_requests", chat.attempts.sum() - chatAttemptsBefore);
                figures.put("chat", result.figures());
                figures.put("chat_outcomes", chat.outcomeCounts());
                figures.put("chat_failures", chat.failures.size());
                Drill.record("reconnect_storm", figures);

                assertThat(statuses.keySet()).containsOnly("200", "503");
                assertThat(statuses.get("503")).as("refused above the limits").isGreaterThan(storm / 2L);
                assertThat(withoutRetryAfter.sum()).isZero();
                assertThat(chat.outcomeCounts().keySet()).as("existing sessions: every request answered 200")
                        .containsOnly("200");
                assertThat(chat.failures).isEmpty();
                assertThat(result.lost()).isZero();
                assertThat(result.duplicates()).isZero();
                assertThat(result.sent()).isPositive();
                chat.logout();
            } finally {
                chat.close();
            }
        }
    }
}
