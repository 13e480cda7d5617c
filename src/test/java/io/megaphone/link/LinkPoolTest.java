// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;

/** The link pool against a Java fake of mod_megaphone: handshake, failover, cancel, unavailability. */
class LinkPoolTest {

    private static final byte[] SECRET = "pool-test-secret-pool-test-secret-pool".getBytes(StandardCharsets.UTF_8);
    private FakeMegaphoneServer server;
    private LinkPool pool;
    private EventLoopGroup loops;

    @AfterEach
    void stop() {
        if (pool != null) {
            pool.close();
        }
        if (server != null) {
            server.close();
        }
        if (loops != null) {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    /** A pool on two event loops of the test's, as production's runs on the web server's: link #i on loop i. */
    private List<EventLoop> poolOnTwoLoops() {
        loops = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "test-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(server.socketAddress()), 2, settings, Duration.ofSeconds(30),
                Duration.ofMillis(20), Duration.ofMillis(200), loops, NioSocketChannel.class, false,
                LinkPool.dnsResolver(NioDatagramChannel.class, List.of(), LinkPool.DEFAULT_DNS_QUERY_TIMEOUT));
        pool.start();
        List<EventLoop> each = new ArrayList<>();
        loops.forEach(loop -> each.add((EventLoop) loop));
        return each;
    }

    private int inflightOn(int index) {
        return pool.links().stream().filter(link -> link.name().endsWith("#" + index)).findFirst().orElseThrow()
                .inflight();
    }

    /** Submits from {@code loop}, as the web server does for a request that arrived on that loop. */
    private void submitOn(EventLoop loop, RequestEnvelope envelope) throws Exception {
        Exchange ignore = new Exchange() {
            @Override
            public void onResponse(Frame.Response response) {
            }

            @Override
            public void onFailure(Throwable error) {
            }
        };
        loop.submit(() -> pool.submit(envelope, ignore)).get(5, TimeUnit.SECONDS);
    }

    private LinkPool pool(byte[] secret, int links, Duration upstreamTimeout) {
        return pool(secret, links, upstreamTimeout, Duration.ofSeconds(15));
    }

    private LinkPool pool(byte[] secret, int links, Duration upstreamTimeout, Duration heartbeat) {
        LinkSettings settings = new LinkSettings(new HandshakeProof(secret), "test-ecm", heartbeat,
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(server.socketAddress()), links, settings, upstreamTimeout,
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        return pool;
    }

    private static RequestEnvelope envelope(long rid, String text) throws Exception {
        return RequestEnvelope.of(rid, "sid-1", InetAddress.getByName("10.1.2.3"), 4321,
                text.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void aRequestTravelsOverTheLinkAndItsAnswerComesBack() throws Exception {
        server = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo);
        pool(SECRET, 2, Duration.ofSeconds(30));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);

        Frame.Response response = Submit.of(pool, envelope(5, "<body/>")).block(Duration.ofSeconds(5));

        assertThat(new String(response.body(), StandardCharsets.UTF_8)).isEqualTo("<body/>");
        FakeMegaphoneServer.Received received = server.received.poll();
        assertThat(received.request().envelope().address()).isEqualTo(InetAddress.getByName("10.1.2.3"));
        assertThat(received.request().envelope().port()).isEqualTo(4321);
    }

    @Test
    void aWrongSecretNeverGetsALinkReady() throws Exception {
        server = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo);
        pool("not-the-secret-not-the-secret-not-the".getBytes(StandardCharsets.UTF_8), 1, Duration.ofSeconds(30));
        // The pool does try (and retries): only then does "no link" mean the secret was refused.
        await().atMost(Duration.ofSeconds(5)).until(() -> server.refusedAuths.get() >= 2);
        assertThat(pool.readyLinks()).isZero();
        assertThat(server.links).isEmpty();
    }

    @Test
    void withNoLinkReadyARequestFailsAsUnavailableAtOnce() throws Exception {
        server = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo);
        pool("not-the-secret-not-the-secret-not-the".getBytes(StandardCharsets.UTF_8), 1, Duration.ofSeconds(30));
        AtomicReference<Throwable> error = new AtomicReference<>();
        Submit.of(pool, envelope(1, "<body/>")).doOnError(error::set).onErrorResume(e -> Mono.empty())
                .block(Duration.ofSeconds(1));
        assertThat(error.get()).isInstanceOf(UpstreamUnavailableException.class);
    }

    @Test
    void aHeldRequestWhoseLinkDiesIsReSentWithTheSameEnvelopeOnAnotherLink() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(SECRET, 2, Duration.ofSeconds(30));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        RequestEnvelope envelope = envelope(77, "<body rid='77'/>");
        AtomicReference<Frame.Response> answer = new AtomicReference<>();
        Submit.of(pool, envelope).subscribe(answer::set);
        await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received first = server.received.poll();

        first.channel().close();

        await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received again = server.received.poll();
        assertThat(again.channel()).isNotSameAs(first.channel());
        assertThat(again.request().envelope()).isEqualTo(envelope);
        server.answer(again, 200, "<body>kept</body>");
        await().atMost(Duration.ofSeconds(5)).until(() -> answer.get() != null);
        assertThat(new String(answer.get().body(), StandardCharsets.UTF_8)).isEqualTo("<body>kept</body>");
    }

    @Test
    void modMegaphonesOwn503IsReSentOnAnotherLinkAndNeverReachesTheClient() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(SECRET, 2, Duration.ofSeconds(30));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        RequestEnvelope envelope = envelope(78, "<body rid='78'/>");
        AtomicReference<Frame.Response> answer = new AtomicReference<>();
        Submit.of(pool, envelope).subscribe(answer::set);
        await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received first = server.received.poll();

        server.refuse(first); // over max_inflight or draining

        await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received again = server.received.poll();
        assertThat(again.channel()).as("another link").isNotSameAs(first.channel());
        assertThat(again.request().envelope()).isEqualTo(envelope);
        assertThat(answer.get()).as("the client saw nothing of the refusal").isNull();
        server.answer(again, 200, "<body>taken</body>");
        await().atMost(Duration.ofSeconds(5)).until(() -> answer.get() != null);
        assertThat(answer.get().status()).isEqualTo(200);
        assertThat(pool.resends()).isEqualTo(1);
        assertThat(pool.resendsRefused()).as("counted as refused, not as a dead link").isEqualTo(1);
    }

    @Test
    void anUpstreamThatKeepsRefusingEndsAsUnavailableNotAsIts503() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> new Frame.Response(request.id(), 503, "", new byte[0]));
        pool(SECRET, 2, Duration.ofSeconds(30));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Submit.of(pool, envelope(79, "<body rid='79'/>")).subscribe(response -> { }, failure::set);
        await().atMost(Duration.ofSeconds(5)).until(() -> failure.get() != null);
        assertThat(failure.get()).isInstanceOf(UpstreamUnavailableException.class);
        assertThat(server.received).as("the first try and %d re-sends", LinkPool.MAX_RESENDS)
                .hasSize(1 + LinkPool.MAX_RESENDS);
    }

    @Test
    void aClientThatGoesAwaySendsCancelUpstream() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(SECRET, 1, Duration.ofSeconds(30));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        Disposable held = Submit.of(pool, envelope(9, "<body/>")).subscribe();
        await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == 1);
        int id = server.received.peek().request().id();

        held.dispose();

        await().atMost(Duration.ofSeconds(5)).until(() -> !server.cancels.isEmpty());
        assertThat(server.cancels.peek().id()).isEqualTo(id);
        await().atMost(Duration.ofSeconds(2)).until(() -> pool.inflight() == 0);
    }

    @Test
    void aRequestUnansweredPastTheUpstreamTimeoutFailsAsTimeoutAndIsCancelled() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(SECRET, 1, Duration.ofMillis(600));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        AtomicReference<Throwable> error = new AtomicReference<>();
        Submit.of(pool, envelope(3, "<body/>")).subscribe(r -> { }, error::set);
        await().atMost(Duration.ofSeconds(5)).until(() -> error.get() != null);
        assertThat(error.get()).isInstanceOf(UpstreamTimeoutException.class);
        await().atMost(Duration.ofSeconds(2)).until(() -> !server.cancels.isEmpty());
    }

    @Test
    void requestsGoToTheLinkWithTheFewestInFlight() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(SECRET, 2, Duration.ofSeconds(30));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        for (int i = 1; i <= 10; i++) {
            Submit.of(pool, envelope(i, "<body/>")).subscribe(r -> { }, e -> { });
            int expected = i;
            await().atMost(Duration.ofSeconds(2)).until(() -> server.received.size() == expected);
        }
        long onFirst = server.received.stream().filter(r -> r.channel() == server.links.get(0)).count();
        assertThat(onFirst).isEqualTo(5);
    }

    @Test
    void aStalledLinkIsFoundByHeartbeatsAndItsRequestsMoveOn() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(SECRET, 1, Duration.ofSeconds(30), Duration.ofMillis(300));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        AtomicReference<Frame.Response> answer = new AtomicReference<>();
        Submit.of(pool, envelope(11, "<body/>")).subscribe(answer::set, e -> { });
        await().atMost(Duration.ofSeconds(2)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received first = server.received.poll();

        server.stalled = true; // the TCP connection stays open, but nothing comes back

        await().atMost(Duration.ofSeconds(3)).until(() -> !first.channel().isActive());
        server.stalled = false;
        await().atMost(Duration.ofSeconds(3)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received again = server.received.poll();
        assertThat(again.request().envelope()).isEqualTo(first.request().envelope());
        server.answer(again, 200, "<body/>");
        await().atMost(Duration.ofSeconds(2)).until(() -> answer.get() != null);
    }

    @Test
    void aGoAwayFromTheServerDrainsTheLinkInFlightRequestsFinishAndNewOnesGoElsewhere() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        pool(SECRET, 1, Duration.ofSeconds(30));
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        AtomicReference<Frame.Response> answer = new AtomicReference<>();
        Submit.of(pool, envelope(21, "<body/>")).subscribe(answer::set, e -> { });
        await().atMost(Duration.ofSeconds(2)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received held = server.received.poll();

        server.goAway();

        await().atMost(Duration.ofSeconds(2)).until(() -> pool.readyLinks() == 0);
        assertThat(held.channel().isActive()).as("the draining link stays for its request").isTrue();
        server.answer(held, 200, "<body>last</body>");
        await().atMost(Duration.ofSeconds(2)).until(() -> answer.get() != null);
        assertThat(new String(answer.get().body(), StandardCharsets.UTF_8)).isEqualTo("<body>last</body>");
        await().atMost(Duration.ofSeconds(2)).until(() -> !held.channel().isActive());
        await().atMost(Duration.ofSeconds(3)).until(() -> pool.readyLinks() == 1); // a fresh link replaces it
    }

    @Test
    void aRequestSubmittedOnALinksEventLoopGoesOutOnThatLinkThoughAnotherHasFewerInFlight() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        List<EventLoop> each = poolOnTwoLoops();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);

        for (int i = 1; i <= 6; i++) {
            submitOn(each.get(1), envelope(i, "<body/>"));
        }
        submitOn(each.get(0), envelope(7, "<body/>"));

        // Registered synchronously on the caller's loop (no hand-over), so counted when submitOn returns.
        assertThat(inflightOn(1)).as("in flight on the link of loop 1").isEqualTo(6);
        assertThat(inflightOn(0)).as("in flight on the link of loop 0").isEqualTo(1);
    }

    @Test
    void theLocalLinkIsPickedOnlyWhileWithinTheSlackOfTheLeastLoaded() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        List<EventLoop> each = poolOnTwoLoops();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);

        for (int i = 1; i <= LinkPool.AFFINITY_SLACK + 1; i++) {
            submitOn(each.get(0), envelope(i, "<body/>"));
        }
        assertThat(inflightOn(0)).isEqualTo(LinkPool.AFFINITY_SLACK + 1);
        assertThat(inflightOn(1)).isZero();

        submitOn(each.get(0), envelope(100, "<body/>")); // the local link is now SLACK + 1 above the other

        await().atMost(Duration.ofSeconds(2)).until(() -> inflightOn(1) == 1);
        assertThat(inflightOn(0)).isEqualTo(LinkPool.AFFINITY_SLACK + 1);
    }

    @Test
    void aRequestParkedJustAsALinkComesUpGoesOutOnThatLinkNotAs503() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        poolOnTwoLoops();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        AtomicReference<Frame.Response> answer = new AtomicReference<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        RequestEnvelope envelope = envelope(31, "<body rid='31'/>");
        Submit.of(pool, envelope).subscribe(answer::set, failure::set);
        await().atMost(Duration.ofSeconds(2)).until(() -> server.received.size() == 1);
        FakeMegaphoneServer.Received held = server.received.poll();
        // The other link goes and comes back up to WELCOME, which the stand-in holds (as every later one).
        server.holdWelcome = true;
        server.links.stream().filter(link -> link != held.channel()).findFirst().orElseThrow().close();
        await().atMost(Duration.ofSeconds(5)).until(() -> server.held.size() == 1 && pool.readyLinks() == 1);
        // The race, made deterministic: the request's link dies, the pick finds no link ready; before the request is
        // parked, the other link gets its WELCOME and the pool's onReady has run (it found nothing parked).
        pool.beforePark = () -> {
            pool.beforePark = null;
            server.release();
            await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
            LinkMultiplexer other = pool.links().stream().map(link -> ((LinkSlot) link).current())
                    .filter(link -> link != null).findFirst().orElseThrow();
            try {
                other.channel().eventLoop().submit(() -> { }).get(5, TimeUnit.SECONDS); // after its onReady
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        };

        held.channel().close();

        await().atMost(Duration.ofSeconds(3)).until(() -> server.received.size() == 1 || failure.get() != null);
        assertThat(failure.get()).as("the request failed instead of going out on the link that came up").isNull();
        FakeMegaphoneServer.Received again = server.received.poll();
        assertThat(again.request().envelope()).isEqualTo(envelope);
        assertThat(pool.beforePark).as("the race was run").isNull();
        server.answer(again, 200, "<body>kept</body>");
        await().atMost(Duration.ofSeconds(2)).until(() -> answer.get() != null);
    }

    @Test
    void aRequestThatReachesItsLinkJustAfterTheLinkClosedGoesOutOnAnotherLinkNotAs503() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null);
        List<EventLoop> each = poolOnTwoLoops();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 2);
        submitOn(each.get(1), envelope(1, "<body/>")); // link #1 has one in flight: the next pick is link #0
        await().atMost(Duration.ofSeconds(2)).until(() -> server.received.size() == 1);
        server.received.poll();
        LinkMultiplexer link0 = pool.links().stream().filter(link -> link.name().endsWith("#0")).findFirst()
                .map(link -> ((LinkSlot) link).current()).orElseThrow();
        // The race, made deterministic: link #0 is picked while it is ready, and before its event loop registers the
        // request the connection dies (closed; channelInactive, which would re-send what it holds, not yet run).
        CountDownLatch gate = new CountDownLatch(1);
        link0.channel().eventLoop().execute(() -> {
            try {
                gate.await(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            link0.channel().close();
        });
        AtomicReference<Frame.Response> answer = new AtomicReference<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        RequestEnvelope envelope = envelope(2, "<body rid='2'/>");
        Submit.of(pool, envelope).subscribe(answer::set, failure::set);
        gate.countDown();

        await().atMost(Duration.ofSeconds(3)).until(() -> server.received.size() == 1 || failure.get() != null);
        assertThat(failure.get()).as("the request failed instead of going out on the other link").isNull();
        FakeMegaphoneServer.Received again = server.received.poll();
        assertThat(again.request().envelope()).isEqualTo(envelope);
        server.answer(again, 200, "<body>kept</body>");
        await().atMost(Duration.ofSeconds(2)).until(() -> answer.get() != null);
    }
}
