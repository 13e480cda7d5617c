package io.megaphone.edge;

import io.megaphone.link.Exchange;
import io.megaphone.link.Frame;
import io.megaphone.link.PendingRequest;
import io.megaphone.link.RequestEnvelope;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;
import org.reactivestreams.Subscription;
import org.springframework.web.reactive.function.server.ServerResponse;
import reactor.core.CoreSubscriber;
import reactor.core.publisher.Mono;
import reactor.core.publisher.Operators;

/**
 * One BOSH POST on its way through a link, as a Mono: subscribing sends it upstream, and it emits ejabberd's
 * answer as a {@link ServerResponse}, or fails with the 503/504 the edge answers itself when no link could carry it
 * or ejabberd did not answer within the upstream timeout (the link pool's one shared timer, not a timeout operator
 * per request). Cancelling it (WebFlux does when the client goes away) sends CANCEL upstream.
 *
 * <p>It is this Mono that stays in memory while ejabberd holds the request, so the Mono, its {@link Subscription}
 * and the link's callback ({@link Exchange}) are one object with a few fields, rather than {@code Mono.create}'s
 * sink, its cancel hook and a timeout operator (docs/benchmarks.md has the bytes).
 *
 * <p>Threading: {@link #subscribe} runs on the client's event loop; {@link #onResponse}/{@link #onFailure} on a link
 * event loop; {@link #request}/{@link #cancel} on either. The state word makes delivery happen exactly once, and
 * only after demand (Reactive Streams §1.1).
 */
final class HeldRequest extends Mono<ServerResponse> implements Subscription, Exchange {

    private static final int REQUESTED = 1;
    private static final int HAS_OUTCOME = 2;
    private static final int DONE = 4;
    private static final AtomicIntegerFieldUpdater<HeldRequest> STATE =
            AtomicIntegerFieldUpdater.newUpdater(HeldRequest.class, "state");

    private final BoshHandler handler;
    private final long startNanos;
    private RequestEnvelope envelope;
    private CoreSubscriber<? super ServerResponse> actual;
    private volatile PendingRequest pending;
    /** A {@link ServerResponse} or a Throwable, written before HAS_OUTCOME is set. */
    private Object outcome;
    private volatile int state;

    HeldRequest(BoshHandler handler, RequestEnvelope envelope, long startNanos) {
        this.handler = handler;
        this.envelope = envelope;
        this.startNanos = startNanos;
    }

    @Override
    public void subscribe(CoreSubscriber<? super ServerResponse> subscriber) {
        if (envelope == null) {
            Operators.error(subscriber, new IllegalStateException("HeldRequest allows only one subscriber"));
            return;
        }
        RequestEnvelope toSend = envelope;
        envelope = null;
        actual = subscriber;
        subscriber.onSubscribe(this);
        if ((state & DONE) != 0) {
            return; // cancelled in onSubscribe
        }
        PendingRequest sent = handler.pool.submit(toSend, this);
        pending = sent;
        if ((state & DONE) != 0) {
            sent.cancel(); // cancelled while it was being submitted (a no-op if it was answered meanwhile)
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
        if ((previous & DONE) == 0) {
            PendingRequest sent = pending;
            if (sent != null) {
                sent.cancel(); // the client went away: CANCEL upstream
            }
        }
    }

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
