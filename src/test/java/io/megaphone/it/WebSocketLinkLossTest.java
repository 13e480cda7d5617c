// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.link.LinkPool;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A link that carries an XMPP-over-WebSocket stream dies mid-chat (issue 23, item 4), through the real parts: this
 * test's ECM ("A") reaches the shared private ejabberd through a {@link CuttableProxy}, a second ECM ("B") runs as
 * its own process, linked directly; the peer is a WebSocket user on B. The proxy resets A's link; the WebSocket client on
 * A gets close 1012 and comes back through B. With stream management (XEP-0198) it resumes the very session, and
 * every numbered message of a steady chat both ways arrives exactly once, in order; without, the session ends in
 * ejabberd (the peer sees it go unavailable) and a fresh login works.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=1",
                "megaphone.edge.websocket.link-lost-jitter=" + WebSocketLinkLossTest.JITTER_MILLIS + "ms",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
@DirtiesContext // its links go through this class's proxy
class WebSocketLinkLossTest {

    static final int JITTER_MILLIS = 1000;
    private static final int MESSAGES = 80;
    private static final int CUT_AT = 25;
    private static final Pattern RESUME_TIMEOUT = Pattern.compile("waiting (\\d+) seconds for stream resumption");

    private static CuttableProxy proxy;
    private static EcmProcess ecmB;

    @LocalServerPort
    private int port;

    @Autowired
    private LinkPool pool;

    @DynamicPropertySource
    static void linkThroughProxy(DynamicPropertyRegistry registry) {
        proxy = CuttableProxy.forSharedEjabberdLinks(registry);
    }

    @BeforeAll
    static void startSecondEcm() throws Exception {
        ecmB = EcmProcess.builder().name("ws-b").linkedTo(SharedEjabberd.get())
                .args("--" + RealEcmTest.MANY_SESSIONS_PER_CLIENT, "--" + RealEcmTest.MANY_SESSIONS_BURST).start();
    }

    @AfterAll
    static void stop() throws Exception {
        if (ecmB != null) {
            ecmB.close();
        }
        proxy.close();
    }

    private String wsA() {
        return "ws://127.0.0.1:" + port + "/xmpp-websocket";
    }

    private static String wsB() {
        return "ws://127.0.0.1:" + ecmB.port + "/xmpp-websocket";
    }

    private void awaitOneLinkThroughTheProxy() {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 1 && proxy.live() == 1);
    }

    private static String chat(String to, String text) {
        return BoshTestClient.chat(to, text);
    }

    @Test
    void withStreamManagementTheClientResumesThroughAnotherEcmAndEveryMessageArrivesOnce() throws Exception {
        awaitOneLinkThroughTheProxy();
        String alice = SharedEjabberd.newUser("smalice");
        String bob = SharedEjabberd.newUser("smbob");
        SmWebSocketClient bobWs = new SmWebSocketClient(bob, SharedEjabberd.PASSWORD, "peer", false);
        bobWs.login(wsB());
        SmWebSocketClient aliceWs = new SmWebSocketClient(alice, SharedEjabberd.PASSWORD, "ws", true);
        aliceWs.login(wsA());
        SmWebSocketClient.Connection first = aliceWs.connection();
        String aliceJid = aliceWs.jid();

        List<String> aliceSent = new ArrayList<>();
        List<String> bobSent = new ArrayList<>();
        AtomicInteger bobSentCount = new AtomicInteger();
        // directed presence: ejabberd would tell bob if alice's session ended (it must not)
        aliceWs.send("<presence to='" + bobWs.jid() + "' xmlns='jabber:client'/>");
        await().atMost(Duration.ofSeconds(10)).until(() -> bobWs.presences.contains(aliceJid + " available"));

        CompletableFuture<Void> bobSends = CompletableFuture.runAsync(() -> {
            try {
                for (int i = 1; i <= MESSAGES; i++) {
                    String text = "b" + i;
                    bobSent.add(text);
                    bobWs.send(chat(aliceJid, text));
                    bobSentCount.incrementAndGet();
                    Thread.sleep(40);
                }
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
        long cutAt = 0;
        int bobSentAtCut = 0;
        CompletableFuture<String> resumed = null;
        CompletableFuture<Integer> bobSentAtResume = new CompletableFuture<>();
        AtomicLong closedAt = new AtomicLong();
        AtomicLong resumedAt = new AtomicLong();
        for (int i = 1; i <= MESSAGES; i++) {
            String text = "a" + i;
            aliceSent.add(text);
            aliceWs.send(chat(bobWs.jid(), text));
            if (i % 10 == 0) {
                aliceWs.requestAck();
            }
            if (i == CUT_AT) {
                assertThat(first.closed).as("the stream is open before the cut").isNotDone();
                cutAt = System.nanoTime();
                bobSentAtCut = bobSentCount.get();
                assertThat(proxy.cutOldest()).isTrue();
                // the client comes back through ECM B as soon as ECM A closes its WebSocket
                first.closed.thenRun(() -> closedAt.set(System.nanoTime()));
                resumed = first.closed.thenApplyAsync(code -> {
                    try {
                        String outcome = aliceWs.resume(wsB());
                        resumedAt.set(System.nanoTime());
                        bobSentAtResume.complete(bobSentCount.get());
                        return outcome;
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
            }
            Thread.sleep(40);
        }
        int closeCode = first.closed.get(JITTER_MILLIS + 5000, TimeUnit.MILLISECONDS);
        assertThat(closeCode).as("ECM A's close code for a lost link").isEqualTo(1012);
        assertThat(resumed.get(20, TimeUnit.SECONDS)).as("<resume/> answered").isEqualTo("resumed");
        bobSends.get(30, TimeUnit.SECONDS);

        // last messages as barriers: a copy of any earlier one (a stanza re-sent twice) would come before them
        aliceSent.add("a-last");
        aliceWs.send(chat(bobWs.jid(), "a-last"));
        bobSent.add("b-last");
        bobWs.send(chat(aliceJid, "b-last"));
        await().atMost(Duration.ofSeconds(20)).until(() -> (bobWs.chatBodies.contains("a-last")
                && aliceWs.chatBodies.contains("b-last")));

        assertThat(bobWs.failures).isEmpty();
        assertThat(aliceWs.failures).isEmpty();
        assertThat(bobWs.chatBodies).as("alice's messages at bob").containsExactlyElementsOf(aliceSent);
        assertThat(aliceWs.chatBodies).as("bob's messages at alice").containsExactlyElementsOf(bobSent);
        assertThat(aliceWs.resends()).as("alice's stanzas re-sent after <resumed/> (sent while cut off)")
                .isPositive();
        assertThat(bobSentAtResume.get() - bobSentAtCut).as("bob's messages sent while alice was cut off")
                .isPositive();
        assertThat(bobWs.presences).as("bob never sees alice go unavailable")
                .noneMatch(p -> p.startsWith(aliceJid + " unavailable"));
        long cutToClose = TimeUnit.NANOSECONDS.toMillis(closedAt.get() - cutAt);
        assertThat(cutToClose).as("from the cut to the close (ms)").isLessThan(JITTER_MILLIS + 2000);
        System.out.printf("[ws link loss] cut to close %d ms (jitter up to %d), cut to resumed %d ms; alice re-sent"
                + " %d stanzas, bob sent %d while alice was away%n", cutToClose, JITTER_MILLIS,
                TimeUnit.NANOSECONDS.toMillis(resumedAt.get() - cutAt), aliceWs.resends(),
                bobSentAtResume.get() - bobSentAtCut);

        String log = SharedEjabberd.get().log();
        assertThat(count(log, "Opened c2s session for " + aliceJid)).as("ejabberd's logins of alice").isEqualTo(1);
        assertThat(count(log, "Resumed session for " + aliceJid)).as("ejabberd's resumptions").isEqualTo(1);
        Matcher pending = RESUME_TIMEOUT.matcher(log.lines().filter(l -> l.contains(aliceJid)
                && l.contains("stream resumption")).findFirst().orElse(""));
        assertThat(pending.find()).as("ejabberd held the session for resumption (mod_stream_mgmt)").isTrue();
        String sessions = SharedEjabberd.get().ctl("connected_users_info");
        assertThat(sessions.lines().filter(l -> l.startsWith(aliceJid)))
                .as("one session of alice, a WebSocket one: %s", sessions)
                .singleElement().asString().contains("websocket");

        aliceWs.close();
        bobWs.close();
    }

    @Test
    void withoutStreamManagementTheSessionEndsAndAFreshLoginWorks() throws Exception {
        awaitOneLinkThroughTheProxy();
        String alice = SharedEjabberd.newUser("plainalice");
        String bob = SharedEjabberd.newUser("plainbob");
        SmWebSocketClient bobWs = new SmWebSocketClient(bob, SharedEjabberd.PASSWORD, "peer", false);
        bobWs.login(wsB());
        SmWebSocketClient aliceWs = new SmWebSocketClient(alice, SharedEjabberd.PASSWORD, "ws", false);
        aliceWs.login(wsA());
        SmWebSocketClient.Connection first = aliceWs.connection();
        String aliceJid = aliceWs.jid();

        aliceWs.send("<presence to='" + bobWs.jid() + "' xmlns='jabber:client'/>");
        await().atMost(Duration.ofSeconds(10)).until(() -> bobWs.presences.contains(aliceJid + " available"));
        bobWs.send(chat(aliceJid, "before the cut"));
        await().atMost(Duration.ofSeconds(10)).until(() -> aliceWs.chatBodies.contains("before the cut"));

        assertThat(proxy.cutOldest()).isTrue();
        long cutAt = System.nanoTime();
        assertThat(first.closed.get(JITTER_MILLIS + 5000, TimeUnit.MILLISECONDS)).isEqualTo(1012);
        await().atMost(Duration.ofSeconds(5)).until(() -> !SharedEjabberd.get().ctl("connected_users")
                .contains(aliceJid));
        await().atMost(Duration.ofSeconds(10)).until(() -> bobWs.presences.contains(aliceJid + " unavailable"));
        long goneMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - cutAt);
        assertThat(goneMillis).as("from the cut to the session's end in ejabberd").isLessThan(JITTER_MILLIS + 5000);

        SmWebSocketClient again = new SmWebSocketClient(alice, SharedEjabberd.PASSWORD, "ws", false);
        again.login(wsB());
        again.send("<presence to='" + bobWs.jid() + "' xmlns='jabber:client'/>");
        again.send(chat(bobWs.jid(), "after the cut"));
        bobWs.send(chat(aliceJid, "welcome back"));
        await().atMost(Duration.ofSeconds(10)).until(() -> bobWs.chatBodies.contains("after the cut")
                && again.chatBodies.contains("welcome back"));
        assertThat(bobWs.presences).containsSubsequence(aliceJid + " available", aliceJid + " unavailable",
                aliceJid + " available");
        assertThat(bobWs.failures).isEmpty();
        again.close();
        String log = SharedEjabberd.get().log();
        assertThat(count(log, "Opened c2s session for " + aliceJid)).as("two logins: before and after").isEqualTo(2);
        assertThat(log.lines().filter(l -> l.contains(aliceJid) && l.contains("stream resumption")))
                .as("no session held for resumption").isEmpty();
        bobWs.close();
    }

    private static long count(String text, String what) {
        return text.lines().filter(l -> l.contains(what)).count();
    }
}
