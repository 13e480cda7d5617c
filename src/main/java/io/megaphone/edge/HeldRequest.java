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
import reactor.core.Scannable;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Operators;
import reactor.util.context.Context;

/**
 * One BOSH POST as the Mono its handler function returns: subscribing reads the body (a bounded
 * {@link DataBufferUtils#join}), which {@link BoshHandler#forward} checks, admits and sends upstream; the Mono then
 * emits ejabberd's answer as a {@link ServerResponse}, or fails with what the edge answers itself (400, 413, 503,
 * and the 504 of the link pool's one shared upstream timer). Cancelling it (WebFlux does when the client goes away)
 * sends CANCEL upstream. Every request's outcome is counted exactly once: here until it is sent upstream, by the
 * link pool after.
 *
 * <p>It keeps Reactor's operator contract: one subscriber (a second one gets an {@link IllegalStateException},
 * decided atomically), the subscriber's {@link Context} is the body read's, it is {@link Scannable}, a value waits
 * for demand (Reactive Streams §1.1), and signals that come after it terminated or was cancelled go to
 * {@link Operators#onNextDropped} / {@link Operators#onErrorDropped}. It is the Mono, its {@link Subscription}, the
 * body's subscriber and the link's {@link Exchange} at once, so a held request is one object here.
 *
 * <p>Threading: the body signals and {@link #subscribe} run on the client's event loop; {@link #onResponse} and
 * {@link #onFailure} on a link event loop; {@link #request} and {@link #cancel} on either. The state word orders them.
 */
final class HeldRequest extends Mono<ServerResponse>
        implements CoreSubscriber<DataBuffer>, Subscription, Exchange, Scannable {

    private static final int SUBSCRIBED = 1;
    private static final int REQUESTED = 2;
    /** {@link #outcome} is written. */
    private static final int HAS_OUTCOME = 4;
    /** Delivered or cancelled: nothing more goes to the subscriber. */
    private static final int DONE = 8;
    private static final int CANCELLED = 16;
    /** The body path decided the outcome (counted a refusal, or handed the request to a link, which counts it). */
    private static final int OWNED = 32;
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
        if ((STATE.getAndUpdate(this, s -> s | SUBSCRIBED) & SUBSCRIBED) != 0) {
            Operators.error(subscriber, new IllegalStateException("HeldRequest allows only one subscriber"));
            return;
        }
        actual = subscriber;
        subscriber.onSubscribe(this);
        ServerHttpRequest http = request;
        if ((state & DONE) == 0 && http != null) {
            handler.readBody(http).subscribe(this);
        }
    }

    @Override
    public void request(long n) {
        if (Operators.validate(n)) {
            int previous = STATE.getAndUpdate(this, s -> s | REQUESTED);
            if ((previous & (HAS_OUTCOME | REQUESTED | DONE)) == HAS_OUTCOME) {
                deliver();
            }
        }
    }

    @Override
    public void cancel() {
        int previous = STATE.getAndUpdate(this, s -> (s & DONE) != 0 ? s : s | DONE | CANCELLED);
        if ((previous & DONE) != 0) {
            return;
        }
        Subscription reading = body;
        if (reading != null) {
            reading.cancel();
        }
        if ((previous & HAS_OUTCOME) != 0 && !(outcome instanceof Throwable)) {
            Operators.onDiscard(outcome, currentContext()); // an answer that waited for demand
        }
        if ((previous & OWNED) == 0) {
            handler.clientGone(request); // left before the body was in: nobody else counts it
            return;
        }
        PendingRequest sent = pending;
        if (sent != null) {
            sent.cancel(); // the client went away: CANCEL upstream (the pool counts client_gone)
        }
    }

    // ---- the body (client event loop) ----

    @Override
    public Context currentContext() {
        CoreSubscriber<? super ServerResponse> subscriber = actual;
        return subscriber == null ? Context.empty() : subscriber.currentContext();
    }

    @Override
    public void onSubscribe(Subscription subscription) {
        if (Operators.validate(body, subscription)) {
            body = subscription;
            if ((state & DONE) != 0) {
                subscription.cancel(); // cancelled while the body was being subscribed
            } else {
                subscription.request(Long.MAX_VALUE);
            }
        }
    }

    @Override
    public void onNext(DataBuffer buffer) {
        if (request == null || (state & DONE) != 0) {
            Operators.onNextDropped(buffer, currentContext());
            DataBufferUtils.release(buffer); // a no-op if the hook released it
            return;
        }
        bodyReceived = true;
        byte[] bytes = new byte[buffer.readableByteCount()];
        buffer.read(bytes);
        DataBufferUtils.release(buffer);
        bodyIn(bytes);
    }

    @Override
    public void onError(Throwable error) {
        ServerHttpRequest http = request;
        if (http == null || !own()) {
            Operators.onErrorDropped(error, currentContext());
            return;
        }
        body = null;
        request = null;
        arrived(handler.bodyFailed(error, http, startNanos));
    }

    @Override
    public void onComplete() {
        if (!bodyReceived) {
            bodyIn(new byte[0]); // an empty body: the start-tag check answers it
        }
    }

    /** Claims the outcome for the body path; false when the client went away first (cancel counted it). */
    private boolean own() {
        int previous = STATE.getAndUpdate(this, s -> (s & DONE) != 0 ? s : s | OWNED);
        return (previous & (DONE | OWNED)) == 0;
    }

    private void bodyIn(byte[] bytes) {
        ServerHttpRequest http = request;
        if (http == null || !own()) {
            return;
        }
        body = null; // the body's operators can go now
        request = null;
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
            handler.clientGone(null); // the client went away while the body was checked
            return;
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
        if ((state & (HAS_OUTCOME | DONE)) != 0) {
            dropped(value); // cancelled, or a second outcome (a bug upstream)
            return;
        }
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
            dropped(outcome);
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

    private void dropped(Object value) {
        if (value instanceof Throwable error) {
            Operators.onErrorDropped(error, currentContext());
        } else {
            Operators.onNextDropped(value, currentContext());
        }
    }

    // ---- Scannable ----

    @Override
    public Object scanUnsafe(Attr key) {
        int s = state;
        if (key == Attr.PARENT) {
            return body;
        }
        if (key == Attr.ACTUAL) {
            return actual;
        }
        if (key == Attr.CANCELLED) {
            return (s & CANCELLED) != 0;
        }
        if (key == Attr.TERMINATED) {
            return (s & (DONE | CANCELLED)) == DONE;
        }
        if (key == Attr.ERROR) {
            return (s & HAS_OUTCOME) != 0 && outcome instanceof Throwable error ? error : null;
        }
        if (key == Attr.REQUESTED_FROM_DOWNSTREAM) {
            return (s & REQUESTED) != 0 ? Long.MAX_VALUE : 0L;
        }
        if (key == Attr.PREFETCH) {
            return Integer.MAX_VALUE;
        }
        if (key == Attr.RUN_STYLE) {
            return Attr.RunStyle.ASYNC;
        }
        return null;
    }

    @Override
    public String stepName() {
        return "megaphone.heldRequest";
    }
}
