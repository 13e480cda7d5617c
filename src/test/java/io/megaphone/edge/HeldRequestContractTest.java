// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.FakeMegaphoneServer;
import io.megaphone.link.HandshakeProof;
import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkSettings;
import io.megaphone.link.UpstreamTimeoutException;
import io.megaphone.metrics.EdgeMetrics;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.reactivestreams.Publisher;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DefaultDataBufferFactory;
import org.springframework.mock.http.server.reactive.MockServerHttpRequest;
import org.springframework.web.reactive.function.server.ServerResponse;
import reactor.core.CoreSubscriber;
import reactor.core.Scannable;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Hooks;
import reactor.test.StepVerifier;
import reactor.test.StepVerifierOptions;
import reactor.test.publisher.TestPublisher;
import reactor.util.context.Context;

/**
 * {@link HeldRequest} keeps Reactor's operator contract (StepVerifier against a real link pool and a stand-in of
 * mod_megaphone): cancel before and during the body read, an answer before demand, signals after cancel, a second
 * subscriber, the subscriber's Context inside the body read, Scannable.
 */
class HeldRequestContractTest {

    private static final byte[] SECRET = "held-request-contract-secret-32-bytes!".getBytes(StandardCharsets.UTF_8);
    private static final byte[] BODY =
            "<body rid='7' sid='s1' xmlns='http://jabber.org/protocol/httpbind'/>".getBytes(StandardCharsets.UTF_8);

    private FakeMegaphoneServer server;
    private LinkPool pool;
    private BoshHandler handler;
    private final Queue<Object> droppedValues = new ConcurrentLinkedQueue<>();
    private final Queue<Throwable> droppedErrors = new ConcurrentLinkedQueue<>();

    @BeforeEach
    void start() throws Exception {
        server = new FakeMegaphoneServer(SECRET, request -> null); // ejabberd holds every request
        pool = new LinkPool(List.of(server.socketAddress()), 1, new LinkSettings(new HandshakeProof(SECRET),
                "held-contract", Duration.ofSeconds(15), Duration.ofSeconds(2), 1 << 20), Duration.ofMinutes(5),
                Duration.ofMillis(20), Duration.ofMillis(200), 1);
        pool.start();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.readyLinks() == 1);
        MegaphoneProperties.Edge edge = new Binder(new MapConfigurationPropertySource())
                .bindOrCreate("megaphone.edge", Bindable.of(MegaphoneProperties.Edge.class));
        handler = new BoshHandler(edge, pool, new EdgeMetrics(new SimpleMeterRegistry()));
        Hooks.onNextDropped(droppedValues::add);
        Hooks.onErrorDropped(droppedErrors::add);
    }

    @AfterEach
    void stop() {
        Hooks.resetOnNextDropped();
        Hooks.resetOnErrorDropped();
        pool.close();
        server.close();
    }

    private HeldRequest held(Publisher<? extends DataBuffer> body) {
        MockServerHttpRequest request = MockServerHttpRequest.post("http://127.0.0.1/http-bind")
                .header("Content-Type", "text/xml; charset=utf-8")
                .remoteAddress(new InetSocketAddress("127.0.0.1", 40000)).body(Flux.from(body));
        return new HeldRequest(handler, request, System.nanoTime());
    }

    private static DataBuffer buffer(byte[] bytes, int from, int to) {
        return DefaultDataBufferFactory.sharedInstance.wrap(java.util.Arrays.copyOfRange(bytes, from, to));
    }

    private void awaitUpstream(int requests) {
        await().atMost(Duration.ofSeconds(5)).until(() -> server.received.size() == requests);
    }

    @Test
    void cancelBeforeTheBodyIsReadCancelsTheBodyAndCountsClientGoneOnce() {
        TestPublisher<DataBuffer> body = TestPublisher.create();
        HeldRequest held = held(body);

        StepVerifier.create(held)
                .then(body::assertWasSubscribed)
                .thenCancel()
                .verify(Duration.ofSeconds(5));

        body.assertCancelled();
        assertThat(pool.clientGone()).isEqualTo(1);
        assertThat(pool.inflight()).isZero();
        assertThat(Scannable.from(held).scan(Scannable.Attr.CANCELLED)).isTrue();
    }

    @Test
    void cancelDuringTheBodyReadSendsNothingUpstreamAndCountsClientGoneOnce() throws Exception {
        TestPublisher<DataBuffer> body = TestPublisher.create();
        HeldRequest held = held(body);

        StepVerifier.create(held)
                .then(() -> body.next(buffer(BODY, 0, 10)))
                .then(() -> assertThat(Scannable.from(held).scanOrDefault(Scannable.Attr.PARENT, null)).isNotNull())
                .thenCancel()
                .verify(Duration.ofSeconds(5));

        body.assertCancelled();
        held.cancel(); // a second cancel changes nothing
        assertThat(pool.clientGone()).isEqualTo(1);
        // a request sent now is the first the stand-in sees: nothing of the cancelled one went upstream
        StepVerifier.create(held(Flux.just(buffer(BODY, 0, BODY.length))))
                .then(() -> awaitUpstream(1))
                .thenCancel()
                .verify(Duration.ofSeconds(5));
        assertThat(server.received).hasSize(1);
    }

    @Test
    void anAnswerThatArrivesBeforeDemandWaitsForIt() {
        HeldRequest held = held(Flux.just(buffer(BODY, 0, BODY.length)));

        StepVerifier.create(held, 0)
                .then(() -> awaitUpstream(1))
                .then(() -> server.answer(server.received.peek(), 200, "<body xmlns='http://jabber.org/protocol/httpbind'/>"))
                .then(() -> await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() == 0))
                .expectNoEvent(Duration.ofMillis(100))
                .thenRequest(1)
                .assertNext(response -> assertThat(response.statusCode().value()).isEqualTo(200))
                .expectComplete()
                .verify(Duration.ofSeconds(5));

        assertThat(Scannable.from(held).scan(Scannable.Attr.TERMINATED)).isTrue();
        assertThat(pool.clientGone()).isZero();
    }

    @Test
    void anErrorOrAnAnswerAfterCancelIsDroppedThroughOperators() {
        HeldRequest held = held(Flux.just(buffer(BODY, 0, BODY.length)));

        StepVerifier.create(held)
                .then(() -> awaitUpstream(1))
                .thenCancel()
                .verify(Duration.ofSeconds(5));
        await().atMost(Duration.ofSeconds(5)).until(() -> server.cancels.size() == 1);
        assertThat(pool.clientGone()).isEqualTo(1);

        // what a link delivers when its answer raced the cancel
        UpstreamTimeoutException late = new UpstreamTimeoutException("late");
        held.onFailure(late);
        assertThat(droppedErrors).hasSize(1);
        assertThat(droppedErrors.peek()).isInstanceOf(EdgeAnswerException.class);
        held.onResponse(new io.megaphone.link.Frame.Response(1, 200, "text/xml; charset=utf-8", new byte[0]));
        assertThat(droppedValues).hasSize(1).first().isInstanceOf(BoshAnswer.class);
    }

    @Test
    void aBodySignalAfterTheBodyIsInIsDroppedThroughOperators() {
        TestPublisher<DataBuffer> body = TestPublisher.create();
        HeldRequest held = held(body);
        AtomicReference<Throwable> error = new AtomicReference<>(new IllegalStateException("body error"));

        StepVerifier.create(held)
                .then(() -> body.next(buffer(BODY, 0, BODY.length)).complete())
                .then(() -> awaitUpstream(1))
                .then(() -> held.onError(error.get()))
                .then(() -> held.onNext(buffer(BODY, 0, 4)))
                .thenCancel()
                .verify(Duration.ofSeconds(5));

        assertThat(droppedErrors).containsExactly(error.get());
        assertThat(droppedValues).hasSize(1);
    }

    @Test
    void aSecondSubscriberIsRefusedEvenWhenBothRace() throws Exception {
        HeldRequest first = held(Flux.never());
        StepVerifier.create(first).expectSubscription().thenCancel().verify(Duration.ofSeconds(5));
        StepVerifier.create(first).expectErrorMatches(e -> e instanceof IllegalStateException
                && e.getMessage().contains("only one subscriber")).verify(Duration.ofSeconds(5));

        // Two threads subscribe to the same requests in the same order: exactly one wins each.
        int count = 5_000;
        HeldRequest[] requests = new HeldRequest[count];
        for (int i = 0; i < count; i++) {
            requests[i] = held(Flux.never());
        }
        AtomicIntegerArray subscribed = new AtomicIntegerArray(count);
        AtomicIntegerArray refused = new AtomicIntegerArray(count);
        AtomicInteger arrivals = new AtomicInteger();
        Runnable subscribeAll = () -> {
            for (int i = 0; i < count; i++) {
                arrivals.incrementAndGet();
                while (arrivals.get() < 2 * (i + 1)) {
                    Thread.onSpinWait(); // both threads start each subscribe together
                }
                requests[i].subscribe(counting(subscribed, refused, i));
            }
        };
        Thread other = new Thread(subscribeAll);
        other.start();
        subscribeAll.run();
        other.join();
        for (int i = 0; i < count; i++) {
            assertThat(subscribed.get(i)).as("subscribers of request %d", i).isEqualTo(1);
            assertThat(refused.get(i)).as("refusals of request %d", i).isEqualTo(1);
            requests[i].cancel();
        }
    }

    private static BaseSubscriber<ServerResponse> counting(AtomicIntegerArray subscribed, AtomicIntegerArray refused,
            int index) {
        return new BaseSubscriber<>() {
            @Override
            protected void hookOnSubscribe(org.reactivestreams.Subscription subscription) {
                if (subscription instanceof HeldRequest) {
                    subscribed.incrementAndGet(index);
                }
            }

            @Override
            protected void hookOnError(Throwable throwable) {
                refused.incrementAndGet(index);
            }
        };
    }

    @Test
    void theSubscribersContextIsVisibleInsideTheBodyRead() {
        AtomicReference<Object> seen = new AtomicReference<>();
        HeldRequest held = held(Flux.deferContextual(context -> {
            seen.set(context.getOrDefault("trace", "none"));
            return Flux.just(buffer(BODY, 0, BODY.length));
        }));
        AtomicReference<CoreSubscriber<?>> actual = new AtomicReference<>();

        StepVerifier.create(held, StepVerifierOptions.create().withInitialContext(Context.of("trace", "t-42")))
                .then(() -> actual.set(Scannable.from(held).scan(Scannable.Attr.ACTUAL) instanceof CoreSubscriber<?> s
                        ? s : null))
                .then(() -> awaitUpstream(1))
                .thenCancel()
                .verify(Duration.ofSeconds(5));

        assertThat(seen.get()).isEqualTo("t-42");
        assertThat(held.currentContext().getOrDefault("trace", "none")).isEqualTo("t-42");
        assertThat(actual.get()).isNotNull();
        assertThat(Scannable.from(held).isScanAvailable()).isTrue();
        assertThat(Scannable.from(held).stepName()).isEqualTo("megaphone.heldRequest");
    }
}
