// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The real ECM whose ejabberd node is named by a host name, resolved through a name server that hangs at first:
 * the BOSH port answers at once meanwhile (the links' lookups do not block the web server's event loops, which
 * the links share), and the links come up, and a user logs in through them, once the name server answers.
 */
class LinkNameResolutionTest {

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @Test
    void theBoshPortAnswersWhileTheNodesNameHangsAndTheLinksComeUpOnceItResolves() throws Exception {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        try (StallingDnsServer dns = new StallingDnsServer(60);
             EcmProcess ecm = EcmProcess.builder()
                     .args("--megaphone.link.nodes=ejabberd-0.megaphone-links.test:" + ejabberd.linkPort(),
                             "--megaphone.link.links-per-node=2",
                             "--megaphone.link.dns.name-servers=127.0.0.1:" + dns.address().getPort(),
                             "--megaphone.link.dns.query-timeout=2s")
                     .waitForHealthOnly().start()) {
            await().atMost(Duration.ofSeconds(10)).until(() -> dns.queries.get() >= 1);

            long worstNanos = 0;
            for (int i = 0; i < 30; i++) {
                long start = System.nanoTime();
                HttpResponse<String> page = HTTP.send(HttpRequest.newBuilder(URI.create(ecm.boshUrl()))
                        .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
                worstNanos = Math.max(worstNanos, System.nanoTime() - start);
                assertThat(page.statusCode()).isLessThan(500);
                Thread.sleep(100);
            }
            assertThat(TimeUnit.NANOSECONDS.toMillis(worstNanos)).as("slowest GET on the BOSH path, ms")
                    .isLessThan(1000);
            assertThat(ecm.readyLinks()).as("ready links while the name server hangs").isZero();

            dns.startAnswering();

            await().atMost(Duration.ofSeconds(15)).until(() -> ecm.readyLinks() == 2);
            String user = SharedEjabberd.newUser("dns");
            new BoshTestClient(ecm.boshUrl(), "localhost").login(user, SharedEjabberd.PASSWORD, 5);
        }
    }
}
