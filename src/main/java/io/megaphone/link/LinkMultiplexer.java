// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.collection.IntObjectHashMap;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The requests in flight on one link, keyed by request id: REQUEST out, RESPONSE back to its request, CANCEL, and
 * the upstream timeout (a {@link DeadlineWheel}); GOAWAY drains it. On a version-2 link, beside them, the
 * {@link LinkStream}s keyed by stream id (a separate id space): STREAM_OPEN out, STREAM_OPENED, DATA, WINDOW and
 * STREAM_CLOSE both ways; the link closing ends each with 1012. Last in the link's pipeline:
 *
 * <pre>
 *   [SslHandler] FlushConsolidationHandler LinkFrameDecoder LinkHandshakeHandler            LinkMultiplexer
 *   after WELCOME:                                          IdleStateHandler LinkHeartbeatHandler
 * </pre>
 *
 * It is what the pool holds of a link. All state is confined to the channel's event loop; other threads hand work
 * over with {@code eventLoop().execute}.
 */
final class LinkMultiplexer extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(LinkMultiplexer.class);
    private static final long TICK_NANOS = DeadlineWheel.TICK_NANOS;
    private static final Frame CANCEL_FRAME = new Frame.Cancel(0);

    /** What the pool learns from a link. */
    interface Listener {
        void onReady(LinkMultiplexer link);

        /** The link failed before it was ready. */
        void onHandshakeFailed(LinkMultiplexer link, Throwable cause);

        /** The link closed; {@code orphans} were in flight on it and got no answer. */
        void onClosed(LinkMultiplexer link, List<PendingRequest> orphans);

        /** A request reached a link that can no longer take it (closing, draining): send it elsewhere. */
        void redispatch(PendingRequest request, LinkMultiplexer from);

        /** mod_megaphone refused a request it did not process (503: over max_inflight, draining): elsewhere too. */
        void refused(PendingRequest request, LinkMultiplexer from);

        /**
         * The server sent GOAWAY: the link takes nothing new, and closes once its requests and streams have ended
         * (a WebSocket stream may last hours). Its slot may connect a replacement meanwhile.
         */
        default void onDrainingByServer(LinkMultiplexer link) {
        }

        /**
         * Whether a ready link other than {@code self} has read something within half the stall timeout (or waits
         * for nothing): only then is a silent {@code self} stalled rather than its node slow.
         */
        default boolean anotherLinkAnswers(LinkMultiplexer self) {
            return true;
        }
    }

    enum State { HANDSHAKE, READY, DRAINING, CLOSED }

    private final Listener listener;
    private final String target;
    private final LinkStats stats;
    private final IntObjectHashMap<PendingRequest> inflight = new IntObjectHashMap<>();
    private final IntObjectHashMap<LinkStream> streams = new IntObjectHashMap<>();
    private volatile int streamCount;
    private int streamCounter;
    /** The version chosen in the handshake (2: streams), 0 before it. */
    private volatile int version;
    /** WELCOME's max_streams (0: no limit) and stream_window. */
    private volatile long maxStreams;
    private final DeadlineWheel deadlines = new DeadlineWheel(System.nanoTime());
    private final Consumer<PendingRequest> expireOne = this::expireOne;
    private volatile State state = State.HANDSHAKE;
    private volatile boolean drainedByServer;
    private volatile int inflightCount;
    private volatile LinkHeartbeatHandler heartbeat;
    private Channel channel;
    private int idCounter;
    private volatile long maxInflight = Long.MAX_VALUE;
    /** The server's max_frame from WELCOME: no frame over it is sent. */
    private long serverMaxFrame = Long.MAX_VALUE;
    private String serverNode = "?";
    private ScheduledFuture<?> expiry;

    LinkMultiplexer(Listener listener, String target, LinkStats stats) {
        this.stats = stats;
        this.listener = listener;
        this.target = target;
    }

    // ---- read by the pool from any thread ----

    /** Authenticated and below the server's max_inflight: the link counts as up (health, metrics). */
    boolean ready() {
        return state == State.READY && inflightCount < maxInflight;
    }

    /**
     * {@link #ready()} and writable: its outbound buffer is below the high water mark ({@link LinkPool#WATER_MARK}),
     * so a server that reads slowly gets no more requests on this link until it catches up.
     */
    boolean canTake() {
        return ready() && channel.isWritable();
    }

    /** The link's channel, null before it is active (tests read its outbound buffer on its event loop). */
    Channel channel() {
        return channel;
    }

    /** Whether the server sent GOAWAY (its node is draining), as opposed to a drain of the ECM's own. */
    boolean drainedByServer() {
        return drainedByServer;
    }

    int inflightCount() {
        return inflightCount;
    }

    /** The server's max_inflight for this link (WELCOME), Long.MAX_VALUE when it set none or before WELCOME. */
    long maxInflight() {
        return maxInflight;
    }

    String target() {
        return target;
    }

    /** WebSocket streams open (or opening) on the link. */
    int streamCount() {
        return streamCount;
    }

    /** Ready, version 2, under the server's max_streams, and writable: a new stream may open here. */
    boolean takesStreams() {
        return state == State.READY && version >= 2 && (maxStreams == 0 || streamCount < maxStreams)
                && channel.isWritable();
    }

    /** Whether the link read something within the last {@code nanos}, or waits for nothing (any thread). */
    boolean answeredWithin(long nowNanos, long nanos) {
        LinkHeartbeatHandler current = heartbeat;
        return current != null && current.answeredWithin(nowNanos, nanos);
    }

    /** Round-trip time of the last heartbeat, or -1 before the first. */
    long rttNanos() {
        LinkHeartbeatHandler current = heartbeat;
        return current == null ? -1 : current.rttNanos();
    }

    State state() {
        return state;
    }

    // ---- called from any thread ----

    void submit(PendingRequest request) {
        if (channel.eventLoop().inEventLoop()) {
            register(request); // the caller is on this link's loop: no hand-over
        } else {
            channel.eventLoop().execute(() -> register(request));
        }
    }

    /** Whether the calling thread is this link's event loop. */
    boolean inEventLoop() {
        Channel ch = channel;
        return ch != null && ch.eventLoop().inEventLoop();
    }

    void execute(Runnable task) {
        channel.eventLoop().execute(task);
    }

    /** Opens {@code stream} here: STREAM_OPEN, or its end with 1013 when the link no longer takes streams. */
    void openStream(LinkStream stream) {
        execute(() -> {
            if (stream.over()) {
                return; // given up before it got here
            }
            if (!takesStreams()) {
                stream.ended(new LinkStream.End(Frame.StreamClose.TRY_AGAIN_LATER, "link " + target
                        + " takes no new stream (closing, draining, full or version 1)"));
                return;
            }
            int id;
            do {
                id = requestId(++streamCounter);
            } while (id == 0 || streams.containsKey(id));
            stream.id = id;
            streams.put(id, stream);
            streamCount = streams.size();
            send(new Frame.StreamOpen(id, stream.client(), stream.window()));
        });
    }

    /** Event loop: ends {@code stream} from the ECM's side, telling the server, unless it has ended already. */
    void closeStream(LinkStream stream, int code, String reason) {
        if (stream.over()) {
            return;
        }
        if (stream.id != 0 && streams.get(stream.id) == stream) {
            removeStream(stream.id);
            send(new Frame.StreamClose(stream.id, code, reason));
        }
        stream.ended(new LinkStream.End(code, reason));
        closeIfDrained();
    }

    /** Event loop: DATA or WINDOW of a live stream. */
    void sendStreamFrame(Frame frame) {
        send(frame);
    }

    /** Event loop: whether the outbound buffer is below the high water mark. */
    boolean writable() {
        return channel.isWritable();
    }

    private LinkStream removeStream(int id) {
        LinkStream stream = streams.remove(id);
        streamCount = streams.size();
        return stream;
    }

    void cancel(PendingRequest request) {
        Channel ch = channel;
        ch.eventLoop().execute(() -> {
            if (request.link == this && inflight.get(request.id) == request) {
                remove(request.id);
                send(new Frame.Cancel(request.id));
            }
        });
    }

    /** Sends GOAWAY: no new requests from now on; the link closes once its requests are answered. */
    void drain(String reason) {
        Channel ch = channel;
        ch.eventLoop().execute(() -> {
            if (state == State.READY) {
                state = State.DRAINING;
                send(new Frame.GoAway(0, reason));
                closeIfDrained();
            }
        });
    }

    void close() {
        Channel ch = channel;
        if (ch != null) {
            ch.close();
        }
    }

    // ---- event loop ----

    /** The handshake is done: the server's terms, and the heartbeat now in the pipeline. */
    void ready(Frame.Welcome welcome, LinkHeartbeatHandler heartbeat, int version) {
        this.version = version;
        this.maxStreams = Math.max(0, welcome.maxStreams());
        maxInflight = welcome.maxInflight() == 0 ? Long.MAX_VALUE : welcome.maxInflight();
        serverMaxFrame = welcome.maxFrame() == 0 ? Long.MAX_VALUE : welcome.maxFrame();
        serverNode = welcome.node();
        this.heartbeat = heartbeat;
        expiry = channel.eventLoop().scheduleAtFixedRate(this::expire, TICK_NANOS, TICK_NANOS, TimeUnit.NANOSECONDS);
        state = State.READY;
        stats.connected();
        listener.onReady(this);
    }

    private void register(PendingRequest request) {
        if (request.cancelled) {
            return;
        }
        if (state != State.READY || !channel.isActive()) {
            // Closed since the pick, before channelInactive (which re-sends what the link holds) ran: another link.
            listener.redispatch(request, this);
            return;
        }
        if (!channel.isWritable()) {
            // Picked while it was writable, full since: the outbound bytes stay bounded by the high water mark.
            request.fail(new UpstreamUnavailableException("link " + target + ": ejabberd reads too slowly"
                    + " (outbound buffer over " + LinkPool.WATER_MARK.high() + " bytes)"));
            return;
        }
        int length = request.envelope.bytes().length + 1 + 4; // type, id, envelope
        if (length > serverMaxFrame) {
            request.fail(new FrameTooLargeException(false, request.envelope, "request frame of " + length
                    + " bytes is over the max_frame of " + serverMaxFrame + " that " + target + " accepts"));
            return;
        }
        if (System.nanoTime() - request.deadlineNanos >= 0) {
            request.fail(timeout()); // re-sent too late: no time left for ejabberd to answer
            return;
        }
        int id = allocateId();
        inflight.put(id, request);
        deadlines.add(request);
        inflightCount = inflight.size();
        request.id = id;
        request.link = this;
        // PendingRequest.cancel() writes cancelled, then reads link; this wrote link, now reads cancelled (both
        // volatile): at least one of the two sees the other. A cancel that read link before it was set is seen here.
        if (request.cancelled) {
            remove(id);
            return;
        }
        send(new Frame.Request(id, request.envelope));
        heartbeat.requestSent();
    }

    private void send(Frame frame) {
        LinkFrames.send(channel, stats, frame);
    }

    private int allocateId() {
        int id;
        do {
            id = requestId(++idCounter);
        } while (id == 0 || inflight.containsKey(id));
        return id;
    }

    /**
     * The id of the n-th request of a link: a wrapping counter (an id is not reused soon, docs/protocol.md) times an
     * odd constant, a bijection that spreads consecutive ids over the in-flight map. {@link IntObjectHashMap} hashes
     * an int to itself and probes linearly, so consecutive ids would fill one run of slots, and each remove walks to
     * the end of the run: at 1M in flight, a millisecond per answer.
     */
    static int requestId(int counter) {
        return counter * 0x9E3779B9;
    }

    private PendingRequest remove(int id) {
        PendingRequest request = inflight.remove(id);
        inflightCount = inflight.size();
        if (request != null) {
            deadlines.remove(request);
        }
        return request;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        channel = ctx.channel();
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (state == State.READY || state == State.DRAINING) {
            onFrame((Frame) msg);
        }
    }

    private void onFrame(Frame frame) {
        if (frame instanceof Frame.Response response) {
            PendingRequest request = remove(response.id());
            if (request != null && isServerRefusal(response)) {
                listener.refused(request, this); // another link (or, past the re-send limit, a 503 at the edge)
            } else if (request != null && LinkFrameDecoder.isTooLargeAnswer(response)) {
                // A re-send would get the same answer from ejabberd's buffer: fail this request only.
                request.fail(new FrameTooLargeException(true, request.envelope, "ejabberd's answer is too large for " + target));
            } else if (request != null) {
                request.complete(response);
            }
            closeIfDrained();
        } else if (version >= 2 && isStreamFrame(frame)) {
            onStreamFrame(frame);
        } else if (frame instanceof Frame.GoAway goAway) {
            log.info("link {} (node {}) draining on GOAWAY from the server: {}", target, serverNode, goAway.reason());
            drainedByServer = true;
            if (state == State.READY) {
                state = State.DRAINING;
                listener.onDrainingByServer(this);
            }
            closeIfDrained();
        } else if (frame instanceof Frame.Error error) {
            log.warn("link {} (node {}) closed by the server: {} (code {})", target, serverNode, error.reason(),
                    error.code());
            channel.close();
        } else {
            fail(Frame.Error.PROTOCOL_ERROR, "unexpected " + frame.getClass().getSimpleName());
        }
    }

    private static boolean isStreamFrame(Frame frame) {
        return frame instanceof Frame.StreamOpened || frame instanceof Frame.Data || frame instanceof Frame.Window
                || frame instanceof Frame.StreamClose;
    }

    /** A frame of a stream that has ended here may still come (a close crossing it): it is dropped. */
    private void onStreamFrame(Frame frame) {
        if (frame instanceof Frame.Data data) {
            LinkStream stream = streams.get(data.stream());
            if (stream != null && !stream.data(data.payload())) {
                closeStream(stream, Frame.StreamClose.POLICY, "DATA over the stream's credit");
            }
        } else if (frame instanceof Frame.Window window) {
            LinkStream stream = streams.get(window.stream());
            if (stream != null) {
                stream.window(window.credit());
            }
        } else if (frame instanceof Frame.StreamOpened opened) {
            LinkStream stream = streams.get(opened.stream());
            if (stream != null) {
                stream.opened(opened.window());
            }
        } else if (frame instanceof Frame.StreamClose close) {
            LinkStream stream = removeStream(close.stream());
            if (stream != null) {
                stream.ended(new LinkStream.End(close.code(), close.reason()));
                closeIfDrained();
            }
        }
    }

    /** The link can write again: streams waiting for it send what waits. */
    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        if (ctx.channel().isWritable() && !streams.isEmpty()) {
            for (LinkStream stream : new ArrayList<>(streams.values())) {
                stream.pump();
            }
        }
        ctx.fireChannelWritabilityChanged();
    }

    /**
     * mod_megaphone's own 503 (over {@code max_inflight}, or draining): an empty body and no Content-Type, which
     * ejabberd's BOSH handler never answers. ejabberd did not see the request, so it may go elsewhere.
     */
    static boolean isServerRefusal(Frame.Response response) {
        return response.status() == 503 && response.body().length == 0 && response.contentType().isEmpty();
    }

    private void closeIfDrained() {
        if (state == State.DRAINING && inflight.isEmpty() && streams.isEmpty()) {
            channel.close();
        }
    }

    /** Requests older than the upstream timeout: ejabberd is broken for them. Tell it, and answer 5xx. */
    private void expire() {
        if (deadlines.expire(System.nanoTime(), expireOne) > 0) {
            channel.flush();
            closeIfDrained();
        }
    }

    private void expireOne(PendingRequest request) {
        inflight.remove(request.id);
        inflightCount = inflight.size();
        stats.sent(CANCEL_FRAME);
        channel.write(FrameCodec.encode(new Frame.Cancel(request.id), channel.alloc()), channel.voidPromise());
        request.fail(timeout());
    }

    private UpstreamTimeoutException timeout() {
        return new UpstreamTimeoutException("no answer from " + target + " within the upstream timeout");
    }

    private void fail(int code, String reason) {
        log.warn("link {} (node {}): {}; closing it", target, serverNode, reason);
        LinkFrames.sendErrorAndClose(channel, stats, code, reason);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        int code = LinkFrames.errorCode(cause);
        if (code != 0) {
            fail(code, LinkFrames.describe(cause));
        } else {
            log.warn("link {} (node {}) failed: {}", target, serverNode, LinkFrames.describe(cause));
            ctx.close();
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        State previous = state;
        state = State.CLOSED;
        if (expiry != null) {
            expiry.cancel(false);
        }
        if (previous == State.HANDSHAKE || previous == State.CLOSED) {
            return; // the handshake handler reported it
        }
        if (!streams.isEmpty()) {
            List<LinkStream> lost = new ArrayList<>(streams.values());
            streams.clear();
            streamCount = 0;
            LinkStream.End end = new LinkStream.End(Frame.StreamClose.SERVICE_RESTART, "link lost");
            lost.forEach(stream -> stream.ended(end));
            log.info("link {} (node {}) closed with {} streams open; they end with 1012", target, serverNode,
                    lost.size());
        }
        List<PendingRequest> orphans = new ArrayList<>(inflight.values());
        deadlines.clear(orphans);
        inflight.clear();
        inflightCount = 0;
        log.info("link {} (node {}) closed with {} requests in flight", target, serverNode, orphans.size());
        listener.onClosed(this, orphans);
    }

    @Override
    public String toString() {
        return "link " + target + " (node " + serverNode + ", " + state + ", " + inflightCount + " in flight, "
                + streamCount + " streams)";
    }
}
