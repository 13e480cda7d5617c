// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkView;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A real ejabberd answers a roster too large for the link (mod_megaphone's max_frame_size and the ECM's
 * max-frame-bytes both 16 KiB here, as both are 1 MiB by default). That one request gets a BOSH terminate that
 * says why, it is counted on both sides, and no link closes: other users go on as if nothing happened. Before,
 * the frame closed the link, the re-sent rid got the same answer and closed the next one, up to the re-send
 * limit, and the client got a 503 to retry forever.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                "megaphone.link.max-frame-bytes=16384"})
class OversizedAnswerTest {

    private static final int MAX_FRAME = 16384;
    private static PrivateEjabberd ejabberd;

    @DynamicPropertySource
    static void linkToItsOwnEjabberd(DynamicPropertyRegistry registry) throws Exception {
        ejabberd = PrivateEjabberd.start(Map.of("EJ_MAX_FRAME", Integer.toString(MAX_FRAME)));
        registry.add("megaphone.link.nodes", () -> "127.0.0.1:" + ejabberd.linkPort());
        registry.add("megaphone.link.secret", () -> PrivateEjabberd.SECRET);
    }

    @AfterAll
    static void stopEjabberd() {
        ejabberd.close();
    }

    @LocalServerPort
    int port;

    @Autowired
    LinkPool pool;

    @Autowired
    MeterRegistry meters;

    @Test
    void aRosterTooLargeForTheLinkFailsThatRequestOnlyAndNoLinkCloses() throws Exception {
        String url = "http://127.0.0.1:" + port + "/http-bind";
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(10))
                .until(() -> pool.readyLinks() == 2);
        ejabberd.register("big", "pw");
        ejabberd.register("other", "pw");
        BoshTestClient big = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login("big", "pw", 10);
        // 120 contacts with 200-character names, 10 per request (each request and answer well under 16 KiB)
        String name = "n".repeat(200);
        for (int batch = 0; batch < 12; batch++) {
            StringBuilder sets = new StringBuilder();
            for (int i = 0; i < 10; i++) {
                int n = batch * 10 + i;
                sets.append("<iq type='set' id='r").append(n).append("' xmlns='jabber:client'>")
                        .append("<query xmlns='jabber:iq:roster'><item jid='contact").append(n)
                        .append("@localhost' name='").append(name).append(n).append("'/></query></iq>");
            }
            big.send(sets.toString());
            String last = "r" + (batch * 10 + 9);
            big.awaitStanza(e -> e.getLocalName().equals("iq") && last.equals(e.getAttribute("id")));
        }
        long connectsBefore = connects();

        BoshTestClient.Answer roster = big.post(big.wrap(big.nextRid(),
                "<iq type='get' id='roster' xmlns='jabber:client'><query xmlns='jabber:iq:roster'/></iq>"));

        assertThat(roster.status()).isEqualTo(200);
        assertThat(roster.body()).contains("type='terminate'", "condition='undefined-condition'",
                "answer-too-large");
        assertThat(stat("responses_too_large_total")).isEqualTo(1);
        // the client was told its session is over: ejabberd ends it too (mod_megaphone closes it), long before
        // its 30 s inactivity timeout (each ejabberdctl call takes about a second)
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(5))
                .until(() -> !ejabberd.ctl("connected_users").contains("big@localhost"));
        assertThat(meters.get("megaphone.edge.requests").tag("outcome", "answer_too_large").counter().count())
                .isEqualTo(1.0);
        // No link closed: same connections, both ready, and another user is served on them.
        assertThat(connects()).isEqualTo(connectsBefore);
        assertThat(pool.readyLinks()).isEqualTo(2);
        BoshTestClient other = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login("other", "pw", 10);
        assertThat(other.send("<iq type='get' id='ping' xmlns='jabber:client'><ping xmlns='urn:xmpp:ping'/></iq>")
                .status()).isEqualTo(200);
        assertThat(connects()).isEqualTo(connectsBefore);
        assertThat(pool.resends()).isZero();
    }

    @Test
    void aRequestTooLargeForTheLinkIs413AndEndsItsSessionInEjabberd() throws Exception {
        String url = "http://127.0.0.1:" + port + "/http-bind";
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(10))
                .until(() -> pool.readyLinks() == 2);
        ejabberd.register("wordy", "pw");
        BoshTestClient wordy = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login("wordy", "pw", 10);
        assertThat(ejabberd.ctl("connected_users")).contains("wordy@localhost");

        // 20 KB: under the ECM's body limit (256 KiB), over the 16 KiB max_frame ejabberd announced
        BoshTestClient.Answer refused = wordy.post(wordy.wrap(wordy.nextRid(),
                BoshTestClient.chat("nobody@localhost", "w".repeat(20_000))));

        assertThat(refused.status()).isEqualTo(413);
        assertThat(BoshTestClient.parse(refused.body()).getAttribute("condition")).isEqualTo("policy-violation");
        // long before its 30 s inactivity timeout (each ejabberdctl call takes about a second)
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(5))
                .until(() -> !ejabberd.ctl("connected_users").contains("wordy@localhost"));
    }

    private long connects() {
        return pool.links().stream().map(LinkView::stats).mapToLong(s -> s.connects()).sum();
    }

    private long stat(String name) throws Exception {
        for (String line : ejabberd.ctl("megaphone_stats").split("\n")) {
            String[] fields = line.strip().split("\\s+");
            if (fields.length == 2 && fields[0].equals(name)) {
                return Long.parseLong(fields[1]);
            }
        }
        throw new AssertionError(name + " not in megaphone_stats");
    }
}
