// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * DNS discovery against two fakes of mod_megaphone on 127.0.0.2 and 127.0.0.3, same port (as pods behind a
 * headless Service): nodes that appear get links, nodes that disappear are drained and dropped, and a failed lookup
 * changes nothing.
 */
class NodeDiscoveryTest {

    private static final byte[] SECRET = "discovery-secret-discovery-secret-disc".getBytes(StandardCharsets.UTF_8);
    private FakeMegaphoneServer first;
    private FakeMegaphoneServer second;
    private LinkPool pool;
    private NodeDiscovery discovery;

    @AfterEach
    void stop() {
        discovery.close();
        pool.close();
        first.close();
        second.close();
    }

    @Test
    void nodesFollowTheNameAsItsAddressesChange() throws Exception {
        first = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo, new InetSocketAddress("127.0.0.2", 0));
        int port = first.socketAddress().getPort();
        second = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo, new InetSocketAddress("127.0.0.3", port));
        InetAddress a = InetAddress.getByName("127.0.0.2");
        InetAddress b = InetAddress.getByName("127.0.0.3");
        AtomicReference<Object> dns = new AtomicReference<>(new InetAddress[] {a});
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(), 2, settings, Duration.ofSeconds(30), Duration.ofMillis(20),
                Duration.ofMillis(200), 1);
        pool.start();
        discovery = new NodeDiscovery("ejabberd.test", port, List.of(), pool, name -> {
            Object answer = dns.get();
            if (answer instanceof UnknownHostException e) {
                throw e;
            }
            return (InetAddress[]) answer;
        });

        discovery.refresh();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        assertThat(first.links).hasSize(2);

        dns.set(new InetAddress[] {a, b});
        discovery.refresh();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 4);
        assertThat(second.links).hasSize(2);

        dns.set(new UnknownHostException("ejabberd.test"));
        discovery.refresh();
        assertThat(pool.nodes()).hasSize(2);

        dns.set(new InetAddress[] {b});
        discovery.refresh();
        await().atMost(Duration.ofSeconds(5)).until(() -> first.links.isEmpty());
        assertThat(pool.readyLinks()).isEqualTo(2);
        assertThat(pool.nodes()).containsExactly(new InetSocketAddress(b, port));
        assertThat(pool.links()).extracting(LinkView::name).allMatch(name -> name.startsWith("127.0.0.3:"));
        Frame.Response answer = Submit.of(pool, RequestEnvelope.of(1, "s", a, 1, "<body/>".getBytes(StandardCharsets.UTF_8)))
                .block(Duration.ofSeconds(5));
        assertThat(answer.status()).isEqualTo(200);
    }

    @Test
    void nodesFoundUnderOneHostNameGetLinksNamedApart() throws Exception {
        first = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo, new InetSocketAddress("127.0.0.2", 0));
        int port = first.socketAddress().getPort();
        second = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo, new InetSocketAddress("127.0.0.3", port));
        // What a DNS lookup returns: addresses that carry the name they were found under.
        InetAddress a = InetAddress.getByAddress("ejabberd-link.test", new byte[] {127, 0, 0, 2});
        InetAddress b = InetAddress.getByAddress("ejabberd-link.test", new byte[] {127, 0, 0, 3});
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(), 2, settings, Duration.ofSeconds(30), Duration.ofMillis(20),
                Duration.ofMillis(200), 1);
        pool.start();
        discovery = new NodeDiscovery("ejabberd-link.test", port, List.of(), pool, name -> new InetAddress[] {a, b});

        discovery.refresh();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 4);

        assertThat(pool.links()).extracting(LinkView::name).doesNotHaveDuplicates().containsExactlyInAnyOrder(
                "ejabberd-link.test/127.0.0.2:" + port + "#0", "ejabberd-link.test/127.0.0.2:" + port + "#1",
                "ejabberd-link.test/127.0.0.3:" + port + "#0", "ejabberd-link.test/127.0.0.3:" + port + "#1");
    }
}
