// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.it.StallingDnsServer;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A node named by a host name whose name server does not answer: the link's event loop stays free for other work
 * meanwhile, the link comes up once the name resolves, and a link retired while it waits connects nothing later.
 */
class LinkNameResolutionTest {

    private static final byte[] SECRET = "resolve-secret-resolve-secret-resolve-secr".getBytes(StandardCharsets.UTF_8);
    /** Not in /etc/hosts: only the stalling name server can resolve it. */
    private static final String NODE = "ejabberd-0.megaphone-links.test";
    private final EventLoopGroup loops = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private FakeMegaphoneServer server;
    private StallingDnsServer dns;
    private LinkPool pool;

    @AfterEach
    void stop() {
        if (pool != null) {
            pool.close();
        }
        server.close();
        dns.close();
        loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private void start() throws Exception {
        server = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo);
        dns = new StallingDnsServer(60);
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "resolve-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(5), 1 << 20);
        pool = new LinkPool(List.of(InetSocketAddress.createUnresolved(NODE, server.socketAddress().getPort())), 1,
                settings, Duration.ofSeconds(30), Duration.ofMillis(20), Duration.ofMillis(300), loops,
                NioSocketChannel.class, false,
                LinkPool.dnsResolver(NioDatagramChannel.class, List.of(dns.address()), Duration.ofSeconds(10)));
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> dns.queries.get() >= 1);
    }

    @Test
    void theLoopStaysFreeWhileTheNameServerHangsAndTheLinkComesUpOnceItAnswers() throws Exception {
        start();
        EventLoop loop = loops.next(); // the only loop: the link's, and every other task's

        long worstNanos = 0;
        for (int i = 0; i < 20; i++) {
            long start = System.nanoTime();
            loop.submit(() -> { }).get(5, TimeUnit.SECONDS);
            worstNanos = Math.max(worstNanos, System.nanoTime() - start);
            Thread.sleep(50);
        }
        assertThat(TimeUnit.NANOSECONDS.toMillis(worstNanos)).as("worst wait for the link's loop, ms")
                .isLessThan(200);
        assertThat(pool.readyLinks()).isZero();
        assertThat(server.accepted.get()).as("no connect before the name resolves").isZero();

        dns.startAnswering();

        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        Frame.Response answer = Submit.of(pool, RequestEnvelope.of(1, "sid", java.net.InetAddress.getLoopbackAddress(),
                1, "<body/>".getBytes(StandardCharsets.UTF_8))).block(Duration.ofSeconds(5));
        assertThat(answer.status()).isEqualTo(200);
    }

    @Test
    void aLinkRetiredWhileItsNameIsResolvingConnectsNothingWhenTheAnswerComesLate() throws Exception {
        start();

        pool.setNodes(List.of()); // discovery dropped the node; the resolver stays open (closing the pool closes it)
        dns.startAnswering(); // answers the questions it held

        Thread.sleep(1000);
        assertThat(server.accepted.get()).as("connections the retired link made").isZero();
    }
}
