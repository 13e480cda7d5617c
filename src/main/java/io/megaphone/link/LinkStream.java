// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.net.InetSocketAddress;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.reactivestreams.Subscription;
import reactor.core.publisher.BaseSubscriber;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.core.publisher.Sinks;
import reactor.util.concurrent.Queues;

/**
 * One WebSocket stream on a version-2 link (docs/protocol.md, version 2): opened by {@link LinkPool#openStream},
 * it carries text messages both ways with per-stream credit and ends once, with a WebSocket close code. It stays
 * on its link: a link that closes ends it with 1012.
 *
 * <ul>
 *   <li>{@link #send}: the client's messages go out as DATA only while the server's credit covers them; the
 *       source is asked for one message at a time, so a client that sends faster than ejabberd takes is held back
 *       by its own socket;</li>
 *   <li>{@link #inbound}: the server's DATA; the credit of each message goes back (WINDOW) once the subscriber
 *       has taken it;</li>
 *   <li>{@link #ended}: how it ended (either side's STREAM_CLOSE, the link lost, a credit overrun).</li>
 * </ul>
 * Each message that waits for credit is a stall ({@link #onStalls}): upstream, a client's message the server's
 * credit does not cover yet; downstream, a DATA the subscriber has not taken when it arrives.
 * All state but the taken-bytes counter is confined to the link's event loop.
 */
public final class LinkStream {

    /** How a stream ended: a WebSocket close code ({@link Frame.StreamClose} constants) and a reason. */
    public record End(int code, String reason) {
    }

    private static final int INBOUND_LINK = 8;

    private final LinkMultiplexer link;
    private final InetSocketAddress client;
    /** The credit granted to the server in STREAM_OPEN. */
    private final long window;
    /**
     * Event loop; null once it has fired: a completed sink still references its subscriber, and through it the
     * whole operator chain of the HTTP exchange that asked for the stream, which would then live as long as the
     * WebSocket does.
     */
    private MonoSink<LinkStream> opening;
    /**
     * Unbounded (the credit bounds it), in links of {@link #INBOUND_LINK} messages: the default link holds 256 and
     * costs about 1 KB per open stream while it sits idle (docs/benchmarks.md, "ECM heap per idle WebSocket").
     */
    private final Sinks.Many<byte[]> inbound =
            Sinks.many().unicast().onBackpressureBuffer(Queues.<byte[]>unbounded(INBOUND_LINK).get());
    private final Sinks.One<End> end = Sinks.one();
    /** Bytes the subscriber took whose credit has not gone back yet (any thread). */
    private final AtomicLong taken = new AtomicLong();
    /** DATA emitted to the subscriber and not taken yet (any thread). */
    private final AtomicInteger untaken = new AtomicInteger();
    private volatile Runnable upstreamStall = () -> { };
    private volatile Runnable downstreamStall = () -> { };

    // ---- event loop ----
    int id;
    private boolean opened;
    private boolean over;
    /** DATA bytes the server may still send; more is a credit overrun. */
    private long receiveCredit;
    /** DATA bytes this side may still send. */
    private long sendCredit;
    private long maxMessage = Long.MAX_VALUE;
    private Outbound outbound;

    LinkStream(LinkMultiplexer link, InetSocketAddress client, long window, MonoSink<LinkStream> opening) {
        this.link = link;
        this.client = client;
        this.window = window;
        this.receiveCredit = window;
        this.opening = opening;
    }

    LinkMultiplexer link() {
        return link;
    }

    InetSocketAddress client() {
        return client;
    }

    long window() {
        return window;
    }

    /** The server's first credit (STREAM_OPENED): the largest message this side can ever send on the stream. */
    public long initialSendWindow() {
        return maxMessage;
    }

    /** The DATA of the server: one WebSocket text message each, UTF-8. Subscribe once. */
    public Flux<byte[]> inbound() {
        return inbound.asFlux().doOnNext(payload -> {
            untaken.decrementAndGet();
            taken(payload.length);
        });
    }

    /**
     * From now on runs {@code upstream} for each message that waits for the server's credit and {@code downstream}
     * for each DATA that waits for the subscriber of {@link #inbound}, on the link's event loop.
     */
    public void onStalls(Runnable upstream, Runnable downstream) {
        this.upstreamStall = Objects.requireNonNull(upstream, "upstream");
        this.downstreamStall = Objects.requireNonNull(downstream, "downstream");
    }

    /** Completes once, when the stream has ended, with how. */
    public Mono<End> ended() {
        return end.asMono();
    }

    /**
     * Sends each message of {@code messages} as one DATA, in order, never beyond the server's credit. The returned
     * Mono completes when {@code messages} completes (errors when it errors), or when the stream ends: then no more
     * messages are asked for, but the source is not cancelled (a WebSocket's receive, cancelled, would close its
     * connection at once, before the close code the stream ended with could be sent).
     */
    public Mono<Void> send(Flux<byte[]> messages) {
        return Mono.create(sink -> messages.subscribe(new Outbound(sink)));
    }

    /** Ends the stream from this side (STREAM_CLOSE with this code); nothing when it has ended already. */
    public void close(int code, String reason) {
        link.execute(() -> link.closeStream(this, code, reason));
    }

    // ---- event loop, from the multiplexer ----

    boolean over() {
        return over;
    }

    void opened(long credit) {
        if (opened || over) {
            return;
        }
        opened = true;
        sendCredit = credit;
        maxMessage = credit;
        MonoSink<LinkStream> sink = opening;
        opening = null;
        sink.success(this);
        pump();
    }

    /** A DATA of the server; false when it overran its credit (the multiplexer then ends the stream, 1008). */
    boolean data(byte[] payload) {
        if (payload.length > receiveCredit) {
            return false;
        }
        receiveCredit -= payload.length;
        untaken.incrementAndGet();
        inbound.tryEmitNext(payload);
        if (untaken.get() > 0 && !over) { // not taken during the emission: no demand, it waits in the sink
            downstreamStall.run();
        }
        return true;
    }

    void window(long credit) {
        sendCredit += credit;
        pump();
    }

    /** The stream is over, for the reason given; everything waiting on it hears so. */
    void ended(End how) {
        if (over) {
            return;
        }
        over = true;
        if (!opened) {
            MonoSink<LinkStream> sink = opening;
            opening = null;
            sink.error(new UpstreamUnavailableException("stream refused: " + how.code() + " " + how.reason()));
        }
        inbound.tryEmitComplete();
        end.tryEmitValue(how);
        if (outbound != null) {
            outbound.cancelled();
        }
    }

    /** Writes what waits, while the credit and the link allow it. */
    void pump() {
        if (outbound != null && opened && !over) {
            outbound.pump();
        }
    }

    private void taken(int bytes) {
        if (taken.getAndAdd(bytes) == 0) {
            link.execute(this::returnCredit); // one hand-over for what is taken until it runs
        }
    }

    private void returnCredit() {
        long credit = taken.getAndSet(0);
        if (credit > 0 && !over) {
            receiveCredit += credit;
            link.sendStreamFrame(new Frame.Window(id, credit));
        }
    }

    /** Asks the client's messages one at a time, and writes each when the credit covers it. */
    private final class Outbound extends BaseSubscriber<byte[]> {
        private final MonoSink<Void> done;
        /** Event loop: the message waiting for credit, and whether one was asked for. */
        private byte[] waiting;
        private boolean asked;
        private boolean completed;
        /** The waiting message was counted as a stall. */
        private boolean stalled;

        Outbound(MonoSink<Void> done) {
            this.done = done;
            done.onCancel(this);
        }

        @Override
        protected void hookOnSubscribe(Subscription subscription) {
            link.execute(() -> {
                if (over) {
                    cancelled();
                    return;
                }
                outbound = this;
                pump();
            });
        }

        @Override
        protected void hookOnNext(byte[] message) {
            link.execute(() -> {
                asked = false;
                waiting = message;
                pump();
            });
        }

        void pump() {
            if (waiting != null && waiting.length > sendCredit && !stalled) {
                stalled = true;
                upstreamStall.run();
            }
            if (waiting != null && waiting.length <= sendCredit && link.writable()) {
                sendCredit -= waiting.length;
                link.sendStreamFrame(new Frame.Data(id, waiting));
                waiting = null;
                stalled = false;
                if (completed) {
                    done.success();
                    return;
                }
            }
            if (waiting == null && !asked && !over) {
                asked = true;
                request(1);
            }
        }

        void cancelled() {
            waiting = null;
            done.success();
        }

        @Override
        protected void hookOnComplete() {
            link.execute(() -> {
                completed = true;
                if (waiting == null) {
                    done.success();
                }
            });
        }

        @Override
        protected void hookOnError(Throwable error) {
            done.error(error);
        }
    }
}
