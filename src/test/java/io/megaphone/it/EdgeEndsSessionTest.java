// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.micrometer.core.instrument.MeterRegistry;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.w3c.dom.Element;

/**
 * A session whose request the edge answers with a terminate of its own (a body over the limit, or of a type it
 * refuses) ends in ejabberd too, at once: a subscribed peer sees the user go offline within a second and ejabberd
 * lists it no more. Before, ejabberd kept the session until its inactivity timeout. And the session-creation answer's
 * {@code secure} says whether the link to ejabberd is TLS (here it is not; TlsLinkTest has the TLS case).
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=1",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class EdgeEndsSessionTest extends RealEcmTest {

    private static final String NS = "http://jabber.org/protocol/httpbind";

    @Autowired
    MeterRegistry meters;

    @BeforeEach
    void linksUp() {
        awaitLinks(1);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        300 KB with a Content-Length | text/xml; charset=utf-8      | 300000 | false | 413 | policy-violation
        300 KB chunked               | text/xml; charset=utf-8      | 300000 | true  | 413 | policy-violation
        a refused content type       | text/xml; charset=iso-8859-1 | 0      | false | 415 | bad-request
        """)
    void aTerminateOfTheEdgeEndsTheSessionInEjabberdWithinASecond(String name, String contentType, int padding,
            boolean chunked, int status, String condition) throws Exception {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        String alice = SharedEjabberd.newUser("ends-a");
        String bob = SharedEjabberd.newUser("ends-b");
        subscribe(ejabberd, alice, bob);
        subscribe(ejabberd, bob, alice);
        BoshTestClient bobClient = new BoshTestClient(boshUrl(), PrivateEjabberd.DOMAIN)
                .login(bob, SharedEjabberd.PASSWORD, 30);
        BoshTestClient aliceClient = new BoshTestClient(boshUrl(), PrivateEjabberd.DOMAIN)
                .login(alice, SharedEjabberd.PASSWORD, 30);
        bobClient.awaitStanza(e -> isPresenceOf(e, alice) && e.getAttribute("type").isEmpty());
        assertThat(ejabberd.ctl("connected_users")).contains(alice + "@localhost/it");
        double answeredBefore = sessionEnds("answered");

        CompletableFuture<BoshTestClient.Answer> bobsPoll = bobClient.poll();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() >= 1);
        String body = aliceClient.wrap(aliceClient.nextRid(), "<message to='" + bob + "@localhost' type='chat'"
                + " xmlns='jabber:client'><body>" + "x".repeat(padding) + "</body></message>");
        HttpResponse<String> refused = post(contentType, body.getBytes(StandardCharsets.UTF_8), chunked);
        long refusedAt = System.nanoTime();

        assertThat(refused.statusCode()).isEqualTo(status);
        assertThat(BoshTestClient.parse(refused.body()).getAttribute("condition")).isEqualTo(condition);
        BoshTestClient.Answer offline = bobsPoll.get(1, TimeUnit.SECONDS);
        assertThat(Duration.ofNanos(System.nanoTime() - refusedAt)).isLessThan(Duration.ofSeconds(1));
        bobClient.take(offline);
        assertThat(bobClient.awaitStanza(e -> isPresenceOf(e, alice)).getAttribute("type"))
                .as("bob hears alice go offline").isEqualTo("unavailable");
        assertThat(ejabberd.ctl("connected_users")).doesNotContain(alice + "@localhost");
        assertThat(bobClient.chatBodies()).as("nothing of the refused body reached bob").isEmpty();
        await().atMost(Duration.ofSeconds(1)).until(() -> sessionEnds("answered") == answeredBefore + 1);
        assertThat(bobClient.terminate().status()).isEqualTo(200);
    }

    @Test
    void theCreationAnswerSaysTheLinkIsNotSecure() throws Exception {
        BoshTestClient.Answer created = new BoshTestClient(boshUrl(), PrivateEjabberd.DOMAIN).post(
                "<body content='text/xml; charset=utf-8' hold='1' rid='1000' to='localhost' ver='1.6' wait='10'"
                        + " xmlns='" + NS + "' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>");
        Element body = BoshTestClient.parse(created.body());
        assertThat(body.getAttribute("sid")).isNotEmpty();
        assertThat(body.getAttribute("secure")).as("the link to ejabberd is plain TCP here").isEqualTo("false");
    }

    private static void subscribe(PrivateEjabberd ejabberd, String user, String contact) throws Exception {
        ejabberd.ctl("add_rosteritem", user, PrivateEjabberd.DOMAIN, contact, PrivateEjabberd.DOMAIN, contact,
                "friends", "both");
    }

    private static boolean isPresenceOf(Element e, String user) {
        return e.getLocalName().equals("presence") && e.getAttribute("from").startsWith(user + "@");
    }

    private double sessionEnds(String result) {
        return meters.get("megaphone.edge.session.ends").tag("result", result).counter().count();
    }

    /** On a connection of its own: the ECM closes it after a 413, and a POST is not retried. */
    private HttpResponse<String> post(String contentType, byte[] body, boolean chunked) throws Exception {
        HttpRequest.BodyPublisher publisher = chunked
                ? HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(body))
                : HttpRequest.BodyPublishers.ofByteArray(body);
        return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build().send(
                HttpRequest.newBuilder(URI.create(boshUrl())).timeout(Duration.ofSeconds(30))
                        .header("Content-Type", contentType).POST(publisher).build(),
                HttpResponse.BodyHandlers.ofString());
    }
}
