// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.link.Exchange;
import io.megaphone.link.Frame;
import io.megaphone.link.PendingRequest;
import io.megaphone.link.RequestEnvelope;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import org.reactivestreams.Subscription;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DataBufferUtils;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.web.reactive.function.server.ServerResponse;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Operators;

/**
 * One BOSH POST as the Mono its handler function returns: subscribing reads the body (a bounded
 * {@link DataBufferUtils#join}), which {@link BoshHandler#forward} checks, admits and sends upstream; the Mono then
 * emits ejabberd's answer as a {@link ServerResponse}, or fails with what the edge answers itself (400, 413, 503,
 * and the 504 of the link pool's one shared upstream timer, not a timeout operator per request). Cancelling it
 * (WebFlux does when the client goes away) sends CANCEL upstream.
 *
 * <p>It is this object that stays in memory while ejabberd holds the request, so it is the Mono, its
 * {@link Subscription}, the subscriber of the body and the link's callback ({@link Exchange}) at once, with a few
 * fields, rather than a chain of {@code flatMap}, {@code switchIfEmpty} and {@code onErrorMap} operators, a
 * {@code Mono.create} sink and their lambdas; and it lets go of the body's operators once the body is in
 * (docs/benchmarks.md has the bytes).
 *
 * <p>Threading: the body signals and {@link #subscribe} run on the client's event loop; {@link #onResponse} and
 * {@link #onFailure} on a link event loop; {@link #request} and {@link #cancel} on either. The state word makes
 * delivery happen exactly once, and a value only after demand (Reactive Streams §1.1).
 */
final class HeldRequest extends Mono<ServerResponse> implements CoreSubscriber<DataBuffer>, Subscription, Exchange {

    private static final int REQUESTED = 1;
    private static final int HAS_OUTCOME = 2;
    private static final int DONE = 4;
    private static final AtomicIntegerFieldUpdater<HeldRequest> STATE =
            AtomicIntegerFieldUpdater.newUpdater(HeldRequest.class, "state");

    private final BoshHandler handler;
    private final long startNanos;
    /** Until the body is in: the request, for its body and client address. */
    private ServerHttpRequest request;
    /** The body's subscription while it is being read. */
    private volatile Subscription body;
    private boolean bodyReceived;
    private CoreSubscriber<? super ServerResponse> actual;
    private volatile PendingRequest pending;
    /** A {@link ServerResponse} or a Throwable, written before HAS_OUTCOME is set. */
    private Object outcome;
    private volatile int state;

    HeldRequest(BoshHandler handler, ServerHttpRequest request, long startNanos) {
        this.handler = handler;
        this.request = request;
        this.startNanos = startNanos;
    }

    long startNanos() {
        return startNanos;
    }

    // ---- the Mono ----

    @Override
    public void subscribe(CoreSubscriber<? super ServerResponse> subscriber) {
        ServerHttpRequest http = request;
        if (http == null || actual != null) {
            Operators.error(subscriber, new IllegalStateException("HeldRequest allows only one subscriber"));
            return;
        }
        actual = subscriber;
        subscriber.onSubscribe(this);
        if ((state & DONE) == 0) {
            handler.readBody(http).subscribe(this);
        }
    }

    @Override
    public void request(long n) {
        if (Operators.validate(n)) {
            int previous = STATE.getAndUpdate(this, s -> s | REQUESTED);
            if ((previous & HAS_OUTCOME) != 0 && (previous & REQUESTED) == 0) {
                deliver();
            }
        }
    }

    @Override
    public void cancel() {
        int previous = STATE.getAndUpdate(this, s -> s | DONE);
        if ((previous & DONE) != 0) {
            return;
        }
        Subscription reading = body;
        if (reading != null) {
            reading.cancel();
        }
        PendingRequest sent = pending;
        if (sent != null) {
            sent.cancel(); // the client went away: CANCEL upstream
        }
    }

    // ---- the body (client event loop) ----

    @Override
    public void onSubscribe(Subscription subscription) {
        if (Operators.validate(body, subscription)) {
            body = subscription;
            subscription.request(Long.MAX_VALUE);
        }
    }

    @Override
    public void onNext(DataBuffer buffer) {
        bodyReceived = true;
        byte[] bytes = new byte[buffer.readableByteCount()];
        buffer.read(bytes);
        DataBufferUtils.release(buffer);
        bodyIn(bytes);
    }

    @Override
    public void onError(Throwable error) {
        body = null;
        request = null;
        arrived(handler.bodyFailed(error, startNanos));
    }

    @Override
    public void onComplete() {
        if (!bodyReceived) {
            bodyIn(new byte[0]); // an empty body: the start-tag check answers it
        }
    }

    private void bodyIn(byte[] bytes) {
        ServerHttpRequest http = request;
        body = null; // the body's operators can go now
        request = null;
        if (http == null) {
            return;
        }
        Throwable refused;
        try {
            refused = handler.forward(http, bytes, this);
        } catch (RuntimeException e) { // a bug: the client still gets an answer (500), the connection stays
            refused = handler.failed(e, startNanos);
        }
        if (refused != null) {
            arrived(refused);
        }
    }

    /** Called by {@link BoshHandler#forward} once the request is admitted: it goes upstream. */
    void send(RequestEnvelope envelope) {
        if ((state & DONE) != 0) {
            return; // the client went away while the body was read
        }
        PendingRequest sent = handler.pool.submit(envelope, this);
        pending = sent;
        if ((state & DONE) != 0) {
            sent.cancel(); // cancelled while it was being submitted (a no-op if it was answered meanwhile)
        }
    }

    // ---- the link (link event loop) ----

    @Override
    public void onResponse(Frame.Response response) {
        arrived(handler.answered(response, startNanos));
    }

    @Override
    public void onFailure(Throwable error) {
        arrived(handler.failed(error, startNanos));
    }

    private void arrived(Object value) {
        outcome = value;
        int previous = STATE.getAndUpdate(this, s -> s | HAS_OUTCOME);
        // An error needs no demand; a value waits for it.
        if ((previous & REQUESTED) != 0 || value instanceof Throwable) {
            deliver();
        }
    }

    private void deliver() {
        int previous = STATE.getAndUpdate(this, s -> s | DONE);
        if ((previous & DONE) != 0) {
            return;
        }
        Object value = outcome;
        CoreSubscriber<? super ServerResponse> subscriber = actual;
        if (value instanceof Throwable error) {
            subscriber.onError(error);
        } else {
            subscriber.onNext((ServerResponse) value);
            subscriber.onComplete();
        }
    }
}
