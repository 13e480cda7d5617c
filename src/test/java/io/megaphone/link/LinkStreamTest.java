// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.reactivestreams.Subscription;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

/** Link protocol version 2 against the Java fake of mod_megaphone: negotiation, and streams with their credit. */
class LinkStreamTest {

    private static final byte[] SECRET = "stream-test-secret-stream-test-secret".getBytes(StandardCharsets.UTF_8);
    private static final Duration WAIT = Duration.ofSeconds(5);
    private FakeMegaphoneServer server;
    private LinkPool pool;
    private InetSocketAddress client;

    @AfterEach
    void stop() {
        if (pool != null) {
            pool.close();
        }
        if (server != null) {
            server.close();
        }
    }

    private void start(int serverMaxVersion, int links) throws Exception {
        client = new InetSocketAddress(InetAddress.getByName("192.0.2.7"), 40000);
        server = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo);
        server.maxVersion = serverMaxVersion;
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "test-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(server.socketAddress()), links, settings, Duration.ofSeconds(30),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(WAIT).until(() -> pool.readyLinks() == links);
    }

    private static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static String submitEcho(LinkPool pool) {
        RequestEnvelope envelope = RequestEnvelope.of(0, "", InetAddress.getLoopbackAddress(), 1, utf8("<body/>"));
        return new String(Submit.of(pool, envelope).block(WAIT).body(), StandardCharsets.UTF_8);
    }

    @Test
    void aVersion1ServerGetsVersion1AndBoshKeepsWorkingButNoStreamOpens() throws Exception {
        start(1, 1);
        assertThat(server.authVersions).containsExactly(1);
        assertThat(submitEcho(pool)).isEqualTo("<body/>");
        assertThatThrownBy(() -> pool.openStream(client, 1024).block(WAIT))
                .isInstanceOf(UpstreamUnavailableException.class).hasMessageContaining("version 2");
        assertThat(server.streamOpens).isEmpty();
    }

    @Test
    void aVersion2ServerGetsVersion2AndBoshStillWorks() throws Exception {
        start(2, 1);
        assertThat(server.authVersions).containsExactly(2);
        assertThat(submitEcho(pool)).isEqualTo("<body/>");
    }

    @Test
    void aVersion2WelcomeWithoutStreamFieldsIsAProtocolError() throws Exception {
        client = new InetSocketAddress(InetAddress.getByName("192.0.2.7"), 40000);
        server = new FakeMegaphoneServer(SECRET, FakeMegaphoneServer::echo);
        server.maxVersion = 2;
        server.welcomeStreamFields = false;
        LinkSettings settings = new LinkSettings(new HandshakeProof(SECRET), "test-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        pool = new LinkPool(List.of(server.socketAddress()), 1, settings, Duration.ofSeconds(30),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(WAIT).until(() -> server.accepted.get() >= 3); // it retries, and never comes up
        assertThat(pool.readyLinks()).isZero();
    }

    @Test
    void aStreamOpensCarriesMessagesBothWaysAndClosesWithItsCode() throws Exception {
        start(2, 1);
        LinkStream stream = pool.openStream(client, 4096).block(WAIT);
        Frame.StreamOpen open = server.streamOpens.peek();
        assertThat(open.client()).isEqualTo(client);
        assertThat(open.window()).isEqualTo(4096);
        assertThat(pool.streams()).isEqualTo(1);

        BlockingQueue<String> echoed = new LinkedBlockingQueue<>();
        stream.inbound().subscribe(bytes -> echoed.add(new String(bytes, StandardCharsets.UTF_8)));
        Sinks.Many<byte[]> browser = Sinks.many().unicast().onBackpressureBuffer();
        stream.send(browser.asFlux()).subscribe();
        browser.tryEmitNext(utf8("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"));
        browser.tryEmitNext(utf8("<message/>"));
        assertThat(echoed.poll(5, TimeUnit.SECONDS)).isEqualTo("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
        assertThat(echoed.poll(5, TimeUnit.SECONDS)).isEqualTo("<message/>");
        // the taken echo's credit goes back to the server
        await().atMost(WAIT).until(() -> server.windowsReceived.stream().mapToLong(Frame.Window::credit).sum()
                == 51 + 10);

        stream.close(1000, "bye");
        await().atMost(WAIT).until(() -> !server.streamCloses.isEmpty());
        assertThat(server.streamCloses.peek()).isEqualTo(new Frame.StreamClose(open.stream(), 1000, "bye"));
        assertThat(stream.ended().block(WAIT)).isEqualTo(new LinkStream.End(1000, "bye"));
        await().atMost(WAIT).until(() -> pool.streams() == 0);
    }

    @Test
    void aRefusedOpenFailsWithTheServersCode() throws Exception {
        start(2, 1);
        server.refuseStreamsWith = Frame.StreamClose.TRY_AGAIN_LATER;
        assertThatThrownBy(() -> pool.openStream(client, 1024).block(WAIT))
                .isInstanceOf(UpstreamUnavailableException.class).hasMessageContaining("1013");
        await().atMost(WAIT).until(() -> pool.streams() == 0);
    }

    @Test
    void noMessageGoesBeyondTheServersCreditUntilAWindowComes() throws Exception {
        start(2, 1);
        server.streamWindow = 10;
        server.holdWindow = true;
        LinkStream stream = pool.openStream(client, 4096).block(WAIT);
        stream.send(Flux.just(utf8("aaaa"), utf8("bbbb"), utf8("cccc"))).subscribe();
        await().atMost(WAIT).until(() -> server.dataReceived.size() == 2);
        Thread.sleep(200); // the third (4 bytes over the 2 left) must not come
        assertThat(server.dataReceived).hasSize(2);
        server.sendOnStream(stream.id, new Frame.Window(stream.id, 2));
        await().atMost(WAIT).until(() -> server.dataReceived.size() == 3);
        assertThat(new String(server.dataReceived.stream().toList().get(2).payload(), StandardCharsets.UTF_8))
                .isEqualTo("cccc");
    }

    @Test
    void aMessageWaitingForCreditAndADataWaitingForItsSubscriberAreEachAStall() throws Exception {
        start(2, 1);
        server.streamWindow = 10;
        server.holdWindow = true;
        LinkStream stream = pool.openStream(client, 4096).block(WAIT);
        AtomicInteger upstream = new AtomicInteger();
        AtomicInteger downstream = new AtomicInteger();
        stream.onStalls(upstream::incrementAndGet, downstream::incrementAndGet);
        List<byte[]> taken = new CopyOnWriteArrayList<>();
        BaseSubscriber<byte[]> slow = new BaseSubscriber<>() {
            @Override
            protected void hookOnSubscribe(Subscription subscription) {
                request(3); // the server's echoes of the three messages below
            }

            @Override
            protected void hookOnNext(byte[] value) {
                taken.add(value);
            }
        };
        stream.inbound().subscribe(slow);

        stream.send(Flux.just(utf8("aaaa"), utf8("bbbb"), utf8("cccc"))).subscribe();
        await().atMost(WAIT).until(() -> server.dataReceived.size() == 2);
        await().atMost(WAIT).until(() -> upstream.get() == 1); // "cccc": 4 bytes over the 2 left, counted once
        server.sendOnStream(stream.id, new Frame.Window(stream.id, 2));
        await().atMost(WAIT).until(() -> server.dataReceived.size() == 3 && taken.size() == 3);
        assertThat(upstream).hasValue(1);
        assertThat(downstream).hasValue(0); // each echo was taken as it came

        server.sendOnStream(stream.id, new Frame.Data(stream.id, utf8("waits")));
        server.sendOnStream(stream.id, new Frame.Data(stream.id, utf8("waits too")));
        await().atMost(WAIT).until(() -> downstream.get() == 2);
        slow.request(2);
        await().atMost(WAIT).until(() -> taken.size() == 5);
        assertThat(downstream).hasValue(2);
    }

    @Test
    void dataOverTheEcmsCreditEndsThatStreamWith1008AndNotTheLink() throws Exception {
        start(2, 1);
        LinkStream stream = pool.openStream(client, 8).block(WAIT);
        LinkStream other = pool.openStream(client, 8).block(WAIT);
        server.sendOnStream(stream.id, new Frame.Data(stream.id, utf8("123456789")));
        assertThat(stream.ended().block(WAIT).code()).isEqualTo(Frame.StreamClose.POLICY);
        await().atMost(WAIT).until(() -> !server.streamCloses.isEmpty());
        assertThat(server.streamCloses.peek().code()).isEqualTo(Frame.StreamClose.POLICY);
        assertThat(pool.readyLinks()).isEqualTo(1);
        assertThat(pool.streams()).isEqualTo(1);
        java.util.concurrent.atomic.AtomicBoolean otherEnded = new java.util.concurrent.atomic.AtomicBoolean();
        other.ended().subscribe(end -> otherEnded.set(true));
        Thread.sleep(100);
        assertThat(otherEnded).isFalse();
    }

    @Test
    void aServerCloseEndsTheStreamAndItsInboundWithoutAnAnswer() throws Exception {
        start(2, 1);
        LinkStream stream = pool.openStream(client, 1024).block(WAIT);
        server.closeStream(stream.id, 1011, "c2s crashed");
        assertThat(stream.ended().block(WAIT)).isEqualTo(new LinkStream.End(1011, "c2s crashed"));
        assertThat(stream.inbound().collectList().block(WAIT)).isEmpty();
        Thread.sleep(100);
        assertThat(server.streamCloses).isEmpty();
    }

    @Test
    void aLinkThatClosesEndsEachOfItsStreamsWith1012() throws Exception {
        start(2, 1);
        LinkStream a = pool.openStream(client, 1024).block(WAIT);
        LinkStream b = pool.openStream(client, 1024).block(WAIT);
        server.links.forEach(io.netty.channel.Channel::close);
        assertThat(a.ended().block(WAIT).code()).isEqualTo(Frame.StreamClose.SERVICE_RESTART);
        assertThat(b.ended().block(WAIT).code()).isEqualTo(Frame.StreamClose.SERVICE_RESTART);
        assertThat(pool.streams()).isZero();
    }

    @Test
    void streamsGoToTheLinkWithTheFewest() throws Exception {
        start(2, 2);
        List<LinkStream> opened = new java.util.ArrayList<>();
        for (int i = 0; i < 4; i++) {
            opened.add(pool.openStream(client, 1024).block(WAIT));
        }
        LinkMultiplexer first = opened.get(0).link();
        assertThat(opened.stream().filter(s -> s.link() == first)).hasSize(2);
        opened.stream().filter(s -> s.link() == first).forEach(s -> s.close(1000, ""));
        await().atMost(WAIT).until(() -> first.streamCount() == 0);
        LinkStream next = pool.openStream(client, 1024).block(WAIT);
        LinkStream after = pool.openStream(client, 1024).block(WAIT);
        assertThat(next.link()).isSameAs(first);
        assertThat(after.link()).isSameAs(first);
    }

    @Test
    void aStreamFrameOnAVersion1LinkIsAProtocolError() throws Exception {
        start(1, 1);
        io.netty.channel.Channel link = server.links.get(0);
        FakeMegaphoneServer.send(link, new Frame.Data(1, utf8("x")));
        await().atMost(WAIT).until(() -> server.closedAt.size() >= 1);
    }

    @Test
    void aLinkTheServerDrainsKeepsItsStreamsWhileAFreshLinkTakesItsSlot() throws Exception {
        start(2, 1);
        LinkStream old = pool.openStream(client, 4096).block(WAIT);
        BlockingQueue<String> echoed = new LinkedBlockingQueue<>();
        old.inbound().subscribe(bytes -> echoed.add(new String(bytes, StandardCharsets.UTF_8)));
        Sinks.Many<byte[]> browser = Sinks.many().unicast().onBackpressureBuffer();
        old.send(browser.asFlux()).subscribe();

        server.goAway(); // a stream may last hours: the slot must not wait for it to end
        await().atMost(WAIT).until(() -> server.accepted.get() == 2 && pool.readyLinks() == 1);
        browser.tryEmitNext(utf8("<message/>"));
        assertThat(echoed.poll(5, TimeUnit.SECONDS)).as("the drained link still carries its stream")
                .isEqualTo("<message/>");
        assertThat(old.ended().toFuture()).isNotDone();
        assertThat(pool.streams()).isEqualTo(1);

        LinkStream fresh = pool.openStream(client, 4096).block(WAIT);
        assertThat(new java.util.HashSet<>(server.streamOpenedOn)).as("the new stream is on the new link").hasSize(2);
        assertThat(pool.streams()).isEqualTo(2);

        old.close(1000, "bye");
        await().atMost(WAIT).until(() -> server.open.get() == 1); // the drained link closes once it carries nothing
        assertThat(pool.streams()).isEqualTo(1);
        assertThat(pool.readyLinks()).isEqualTo(1);
        fresh.close(1000, "bye");
    }

    @Test
    void anOpenStreamDoesNotKeepWhatSubscribedToItsOpeningReachable() throws Exception {
        start(2, 1);
        // The subscriber stands for the handshake's operator chain, down to the HTTP exchange: it ends with the
        // handshake, and must not live as long as the stream does.
        java.util.concurrent.CompletableFuture<LinkStream> opened = new java.util.concurrent.CompletableFuture<>();
        java.lang.ref.WeakReference<Object> subscriber = subscribeToOpening(opened);
        LinkStream stream = opened.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        for (int i = 0; i < 20 && subscriber.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertThat(subscriber.get()).as("the opening's subscriber, after a GC").isNull();
        assertThat(pool.streams()).isEqualTo(1);
        stream.close(Frame.StreamClose.NORMAL, "");
    }

    private java.lang.ref.WeakReference<Object> subscribeToOpening(
            java.util.concurrent.CompletableFuture<LinkStream> opened) {
        reactor.core.publisher.BaseSubscriber<LinkStream> subscriber = new reactor.core.publisher.BaseSubscriber<>() {
            @Override
            protected void hookOnNext(LinkStream stream) {
                opened.complete(stream);
            }
        };
        pool.openStream(client, 4096).subscribe(subscriber);
        return new java.lang.ref.WeakReference<>(subscriber);
    }
}
