package io.megaphone.link;

import reactor.core.publisher.MonoSink;

/**
 * One held request on its way through a link: what a re-send needs (the envelope), where the answer goes
 * (the sink) and where it is now (link and id). One of these lives per held request, so it has few fields.
 *
 * <p>Threading: {@link #link} and {@link #id} are written on the event loop of the link that carries it;
 * {@link #cancelled} is written by the HTTP side when the client goes away.
 */
final class PendingRequest {

    final RequestEnvelope envelope;
    final long deadlineNanos;
    private final MonoSink<Frame.Response> sink;
    volatile LinkConnection link;
    volatile int id;
    volatile boolean cancelled;
    int attempts;
    long parkedSinceNanos;

    PendingRequest(RequestEnvelope envelope, MonoSink<Frame.Response> sink, long deadlineNanos) {
        this.envelope = envelope;
        this.sink = sink;
        this.deadlineNanos = deadlineNanos;
    }

    void complete(Frame.Response response) {
        sink.success(response);
    }

    void fail(Throwable error) {
        sink.error(error);
    }

    /** The HTTP client went away: stop the work upstream if it is there. */
    void cancel() {
        cancelled = true;
        LinkConnection current = link;
        if (current != null) {
            current.cancel(this);
        }
    }
}
