// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A link slot stopped or retired at each point of its connect (TCP connect pending, before HELLO, before WELCOME,
 * after WELCOME) leaves no connection open and never connects again;
 * a pool drained by the ECM does not reconnect; a node's own GOAWAY is followed by a reconnect after a backoff, not
 * at once. Counted on the stand-in's side: connections accepted, and open now.
 */
class LinkLifecycleTest {

    private static final byte[] SECRET = "lifecycle-secret-lifecycle-secret-lifecycle".getBytes(StandardCharsets.UTF_8);
    private static final Duration MAX_BACKOFF = Duration.ofMillis(300);
    /** Long enough for several reconnects: 3 of the longest backoff. */
    private static final long QUIET_MILLIS = 3 * MAX_BACKOFF.toMillis();
    private final EventLoopGroup loops = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
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
        loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    private LinkPool pool(int links) {
        // A handshake deadline far beyond every wait below: only the slot's own stop may close a connection.
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "lifecycle-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(30), 1 << 20);
        // The loops outlive the pool, as the web server's do in production: closing the pool must close its links.
        pool = new LinkPool(List.of(server.socketAddress()), links, settings, Duration.ofSeconds(30),
                Duration.ofMillis(20), MAX_BACKOFF, loops, NioSocketChannel.class, false,
                LinkPool.dnsResolver(NioDatagramChannel.class, List.of(), LinkPool.DEFAULT_DNS_QUERY_TIMEOUT));
        pool.start();
        return pool;
    }

    private void assertNothingOpenAndNoMoreConnects(int acceptedSoFar) throws InterruptedException {
        await().atMost(Duration.ofSeconds(2)).untilAsserted(() -> assertThat(server.open.get()).isZero());
        server.release(); // a HELLO or WELCOME that arrives late must not bring a link up either
        Thread.sleep(QUIET_MILLIS);
        assertThat(server.open.get()).as("connections open on the stand-in").isZero();
        assertThat(server.accepted.get()).as("connections accepted (no reconnect)").isEqualTo(acceptedSoFar);
        assertThat(server.links).as("links that got WELCOME and are still open").isEmpty();
    }

    @Test
    void stoppedAfterTheTcpConnectBeforeHelloItLeavesNoConnection() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        server.holdHello = true;
        pool(1);
        await().atMost(Duration.ofSeconds(5)).until(() -> server.held.size() == 1);

        pool.close();

        assertNothingOpenAndNoMoreConnects(1);
    }

    @Test
    void stoppedBeforeWelcomeItLeavesNoConnectionEvenIfWelcomeComesLate() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        server.holdWelcome = true;
        pool(1);
        await().atMost(Duration.ofSeconds(5)).until(() -> server.held.size() == 1);

        pool.close();

        assertNothingOpenAndNoMoreConnects(1);
    }

    @Test
    void retiredBeforeWelcomeItLeavesNoConnectionEvenIfWelcomeComesLate() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        server.holdWelcome = true;
        pool(2);
        await().atMost(Duration.ofSeconds(5)).until(() -> server.held.size() == 2);

        pool.setNodes(List.of()); // discovery lost the node

        assertNothingOpenAndNoMoreConnects(2);
        assertThat(pool.readyLinks()).isZero();
    }

    @Test
    void stoppedAfterWelcomeItClosesItsLinkAndDoesNotReconnect() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(2);
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);

        pool.close();

        assertNothingOpenAndNoMoreConnects(2);
    }

    @Test
    void afterTheEcmsDrainTheLinksCloseAndDoNotReconnect() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(2);
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);

        pool.drain();

        assertNothingOpenAndNoMoreConnects(2);
        assertThat(pool.readyLinks()).isZero();
    }

    @Test
    void afterTheNodesGoAwayTheLinkReconnectsOnlyAfterABackoff() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(1);
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);

        server.goAway(); // nothing in flight: the link closes at once

        await().atMost(Duration.ofSeconds(5)).until(() -> server.accepted.get() == 2 && pool.readyLinks() == 1);
        List<Long> accepted = new ArrayList<>(server.acceptedAt);
        long closed = server.closedAt.peek();
        long gapMillis = TimeUnit.NANOSECONDS.toMillis(accepted.get(1) - closed);
        assertThat(gapMillis).as("ms from the drained link's close to the next connect")
                .isGreaterThanOrEqualTo(MAX_BACKOFF.toMillis() - 50);
    }

    @Test
    void retiredDuringTheTcpConnectItNeverCompletesThatConnect() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null); // only for stop()
        try (ServerSocket full = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            // A listener whose accept queue is full: the kernel drops the next SYN, so a connect stays pending.
            List<Socket> filling = new ArrayList<>();
            Set<Integer> ours = new HashSet<>();
            for (int i = 0; i < 8; i++) {
                Socket socket = new Socket();
                try {
                    socket.connect(full.getLocalSocketAddress(), 200);
                    filling.add(socket);
                    ours.add(socket.getLocalPort());
                } catch (IOException queueFull) {
                    socket.close();
                    break;
                }
            }
            assertThat(filling).as("connects until one stays pending (the queue is full)").hasSizeLessThan(8);
            LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "lifecycle-ecm",
                    Duration.ofSeconds(15), Duration.ofSeconds(30), 1 << 20);
            pool = new LinkPool(List.of(new InetSocketAddress(InetAddress.getLoopbackAddress(), full.getLocalPort())),
                    1, settings, Duration.ofSeconds(30), Duration.ofMillis(20), MAX_BACKOFF, loops,
                    NioSocketChannel.class, false,
                    LinkPool.dnsResolver(NioDatagramChannel.class, List.of(), LinkPool.DEFAULT_DNS_QUERY_TIMEOUT));
            pool.start();
            Thread.sleep(300); // the connect is under way (its SYN dropped); the connect timeout is 2 s

            pool.setNodes(List.of());

            // Room again: a connect still under way would get in with its next SYN (after about 1 s).
            full.setSoTimeout(2500);
            int others = 0;
            try {
                while (true) {
                    Socket accepted = full.accept();
                    if (!ours.contains(accepted.getPort())) {
                        others++;
                    }
                    accepted.close();
                }
            } catch (SocketTimeoutException quiet) {
                // nothing more came
            }
            for (Socket socket : filling) {
                socket.close();
            }
            assertThat(others).as("connections of the retired link that completed").isZero();
        }
    }
}
