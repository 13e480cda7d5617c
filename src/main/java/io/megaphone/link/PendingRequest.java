// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;

/**
 * One held request on its way through a link: what a re-send needs (the envelope), where the answer goes (the
 * exchange) and where it is now (link, id, and its place in the link's deadline wheel). One of these lives per
 * held request, so it has few fields and no helper objects (docs/architecture.md).
 *
 * <p>Threading: {@link #link} and {@link #id} are written on the event loop of the link that carries it;
 * {@link #cancelled} is written by the HTTP side when the client goes away.
 */
public final class PendingRequest {

    private static final AtomicIntegerFieldUpdater<PendingRequest> DONE =
            AtomicIntegerFieldUpdater.newUpdater(PendingRequest.class, "done");

    final RequestEnvelope envelope;
    final long deadlineNanos;
    private final Exchange exchange;
    private final Runnable onCancel;
    volatile LinkMultiplexer link;
    volatile int id;
    volatile boolean cancelled;
    private volatile int done;
    /** Re-sends so far; a byte to keep the object small. */
    byte attempts;
    long parkedSinceNanos;
    /** Neighbours in the link's {@link DeadlineWheel} bucket; event loop of {@link #link} only. */
    PendingRequest prevInBucket;
    PendingRequest nextInBucket;

    PendingRequest(RequestEnvelope envelope, Exchange exchange, long deadlineNanos, Runnable onCancel) {
        this.envelope = envelope;
        this.exchange = exchange;
        this.deadlineNanos = deadlineNanos;
        this.onCancel = onCancel;
    }

    void complete(Frame.Response response) {
        if (DONE.compareAndSet(this, 0, 1)) {
            exchange.onResponse(response);
        }
    }

    void fail(Throwable error) {
        if (DONE.compareAndSet(this, 0, 1)) {
            exchange.onFailure(error);
        }
    }

    /** The HTTP client went away: stop the work upstream (CANCEL) if it is there; no outcome is delivered. */
    public void cancel() {
        if (!DONE.compareAndSet(this, 0, 1)) {
            return;
        }
        cancelled = true;
        onCancel.run();
        LinkMultiplexer current = link;
        if (current != null) {
            current.cancel(this);
        }
    }
}
