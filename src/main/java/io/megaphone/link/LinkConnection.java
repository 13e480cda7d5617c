package io.megaphone.link;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.util.collection.IntObjectHashMap;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One megaphone link: the client side of the handshake, then the requests in flight on it, keyed by request
 * id. All state is confined to the channel's event loop; other threads hand work over with
 * {@code eventLoop().execute}.
 */
final class LinkConnection extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(LinkConnection.class);
    static final int PROTOCOL_VERSION = 1;
    private static final long TICK_MILLIS = 250;
    private static final Frame CANCEL_FRAME = new Frame.Cancel(0);

    /** What the pool learns from a link. */
    interface Listener {
        void onReady(LinkConnection link);

        /** The link failed before it was ready. */
        void onHandshakeFailed(LinkConnection link, Throwable cause);

        /** The link closed; {@code orphans} were in flight on it and got no answer. */
        void onClosed(LinkConnection link, List<PendingRequest> orphans);

        /** A request reached a link that can no longer take it: send it elsewhere. */
        void redispatch(PendingRequest request, LinkConnection from);
    }

    enum State { AWAIT_HELLO, AWAIT_WELCOME, READY, DRAINING, CLOSED }

    private final LinkSettings settings;
    private final Listener listener;
    private final String target;
    private final LinkStats stats;
    private final IntObjectHashMap<PendingRequest> inflight = new IntObjectHashMap<>();
    private final DeadlineWheel deadlines = new DeadlineWheel(System.nanoTime());
    private final Consumer<PendingRequest> expireOne = this::expireOne;
    private volatile State state = State.AWAIT_HELLO;
    private volatile int inflightCount;
    private volatile long rttNanos = -1;
    private Channel channel;
    private int nextId;
    private byte[] clientNonce;
    private byte[] serverNonce;
    private volatile long maxInflight = Long.MAX_VALUE;
    /** The server's max_frame from WELCOME: no frame over it is sent. */
    private long serverMaxFrame = Long.MAX_VALUE;
    private long heartbeatNanos;
    private long lastReadNanos;
    private long lastPingNanos;
    private String serverNode = "?";
    private ScheduledFuture<?> ticker;

    LinkConnection(LinkSettings settings, Listener listener, String target, LinkStats stats) {
        this.settings = settings;
        this.stats = stats;
        this.listener = listener;
        this.target = target;
        this.heartbeatNanos = settings.heartbeat().toNanos();
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

    /** Bytes written to this link and not yet taken by the kernel. */
    long pendingOutboundBytes() {
        Channel ch = channel;
        return ch == null || ch.unsafe().outboundBuffer() == null ? 0 : ch.unsafe().outboundBuffer().totalPendingWriteBytes();
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

    /** Round-trip time of the last heartbeat, or -1 before the first. */
    long rttNanos() {
        return rttNanos;
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

    private void register(PendingRequest request) {
        if (request.cancelled) {
            return;
        }
        if (state != State.READY) {
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
            request.fail(new FrameTooLargeException(false, "request frame of " + length
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
    }

    /** Writes and flushes one frame, counting it. Event loop only. */
    private void send(Frame frame) {
        stats.sent(frame);
        channel.writeAndFlush(FrameCodec.encode(frame, channel.alloc()), channel.voidPromise());
    }

    private int allocateId() {
        do {
            nextId++;
        } while (nextId == 0 || inflight.containsKey(nextId));
        return nextId;
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
        lastReadNanos = System.nanoTime();
        ticker = ctx.executor().scheduleAtFixedRate(this::tick, TICK_MILLIS, TICK_MILLIS, TimeUnit.MILLISECONDS);
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        lastReadNanos = System.nanoTime();
        Frame frame = (Frame) msg;
        stats.received(frame);
        switch (state) {
            case AWAIT_HELLO -> onHello(frame);
            case AWAIT_WELCOME -> onWelcome(frame);
            case READY, DRAINING -> onFrame(frame);
            case CLOSED -> { }
        }
    }

    private void onHello(Frame frame) {
        if (!(frame instanceof Frame.Hello hello)) {
            fail(Frame.Error.PROTOCOL_ERROR, "expected HELLO, got " + frame.getClass().getSimpleName());
            return;
        }
        if (hello.minVersion() > PROTOCOL_VERSION || hello.maxVersion() < PROTOCOL_VERSION) {
            fail(Frame.Error.UNSUPPORTED_VERSION, "server speaks versions " + hello.minVersion() + "-"
                    + hello.maxVersion() + " (expected: a range with " + PROTOCOL_VERSION + ")");
            return;
        }
        serverNonce = hello.serverNonce();
        clientNonce = HandshakeProof.newNonce();
        byte[] mac = settings.proof().authMac(PROTOCOL_VERSION, serverNonce, clientNonce, settings.ecmName());
        state = State.AWAIT_WELCOME;
        send(new Frame.Auth(PROTOCOL_VERSION, clientNonce, mac, settings.ecmName()));
    }

    private void onWelcome(Frame frame) {
        if (frame instanceof Frame.Error error) {
            handshakeFailed("server refused the handshake: " + error.reason() + " (code " + error.code()
                    + "; check that megaphone.link.secret matches mod_megaphone's secret)");
            return;
        }
        if (!(frame instanceof Frame.Welcome welcome)) {
            fail(Frame.Error.PROTOCOL_ERROR, "expected WELCOME, got " + frame.getClass().getSimpleName());
            return;
        }
        if (!settings.proof().welcomeMatches(PROTOCOL_VERSION, clientNonce, serverNonce, welcome.mac())) {
            fail(Frame.Error.AUTH_FAILED, "server's WELCOME proof is wrong (the two sides' secrets differ)");
            return;
        }
        maxInflight = welcome.maxInflight() == 0 ? Long.MAX_VALUE : welcome.maxInflight();
        serverMaxFrame = welcome.maxFrame() == 0 ? Long.MAX_VALUE : welcome.maxFrame();
        if (welcome.heartbeatMillis() > 0) {
            heartbeatNanos = Math.min(heartbeatNanos, TimeUnit.MILLISECONDS.toNanos(welcome.heartbeatMillis()));
        }
        serverNode = welcome.node();
        state = State.READY;
        stats.connected();
        log.info("link {} up: node {}, max_inflight {}, max_frame {}", target, serverNode, welcome.maxInflight(),
                welcome.maxFrame());
        listener.onReady(this);
    }

    private void onFrame(Frame frame) {
        if (frame instanceof Frame.Response response) {
            PendingRequest request = remove(response.id());
            if (request != null && isServerRefusal(response)) {
                listener.redispatch(request, this); // another link (or, past the re-send limit, a 503 at the edge)
            } else if (request != null && LinkFrameDecoder.isTooLargeAnswer(response)) {
                // A re-send would get the same answer from ejabberd's buffer: fail this request only.
                request.fail(new FrameTooLargeException(true, "ejabberd's answer is too large for " + target));
            } else if (request != null) {
                request.complete(response);
            }
            closeIfDrained();
        } else if (frame instanceof Frame.Ping ping) {
            send(new Frame.Pong(ping.opaque()));
        } else if (frame instanceof Frame.Pong pong) {
            rttNanos = System.nanoTime() - pong.opaque();
            stats.rtt(rttNanos);
        } else if (frame instanceof Frame.GoAway goAway) {
            log.info("link {} (node {}) draining on GOAWAY from the server: {}", target, serverNode, goAway.reason());
            state = State.DRAINING;
            closeIfDrained();
        } else if (frame instanceof Frame.Error error) {
            log.warn("link {} (node {}) closed by the server: {} (code {})", target, serverNode, error.reason(),
                    error.code());
            channel.close();
        } else {
            fail(Frame.Error.PROTOCOL_ERROR, "unexpected " + frame.getClass().getSimpleName());
        }
    }

    /**
     * mod_megaphone's own 503 (over {@code max_inflight}, or draining): an empty body and no Content-Type, which
     * ejabberd's BOSH handler never answers. ejabberd did not see the request, so it may go elsewhere.
     */
    static boolean isServerRefusal(Frame.Response response) {
        return response.status() == 503 && response.body().length == 0 && response.contentType().isEmpty();
    }

    private void closeIfDrained() {
        if (state == State.DRAINING && inflight.isEmpty()) {
            channel.close();
        }
    }

    private void tick() {
        long now = System.nanoTime();
        if (state == State.AWAIT_HELLO || state == State.AWAIT_WELCOME) {
            if (now - lastReadNanos > settings.handshakeTimeout().toNanos()) {
                handshakeFailed("handshake timed out after " + settings.handshakeTimeout());
            }
            return;
        }
        if (now - lastReadNanos > 3 * heartbeatNanos) {
            log.warn("link {} (node {}) silent for {} ms: closing it", target, serverNode,
                    TimeUnit.NANOSECONDS.toMillis(now - lastReadNanos));
            channel.close();
            return;
        }
        if (now - lastPingNanos >= heartbeatNanos) {
            lastPingNanos = now;
            send(new Frame.Ping(now));
        }
        expire(now);
    }

    /** Requests older than the upstream timeout: ejabberd is broken for them. Tell it, and answer 5xx. */
    private void expire(long now) {
        if (deadlines.expire(now, expireOne) > 0) {
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
        Frame.Error error = new Frame.Error(code, reason);
        stats.sent(error);
        channel.writeAndFlush(FrameCodec.encode(error, channel.alloc())).addListener(ChannelFutureListener.CLOSE);
        if (state != State.READY && state != State.DRAINING) {
            // The slot logs the first failure of a series (with this reason), not every retry.
            log.debug("link {}: {}; closing it", target, reason);
            handshakeFailed(reason);
        } else {
            log.warn("link {}: {}; closing it", target, reason);
        }
    }

    private void handshakeFailed(String reason) {
        State previous = state;
        state = State.CLOSED;
        channel.close();
        if (previous == State.AWAIT_HELLO || previous == State.AWAIT_WELCOME) {
            listener.onHandshakeFailed(this, new LinkHandshakeException(target + ": " + reason));
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (cause instanceof MalformedFrameException || cause.getCause() instanceof MalformedFrameException) {
            fail(Frame.Error.PROTOCOL_ERROR, "malformed frame: " + rootMessage(cause));
        } else if (cause instanceof TooLongFrameException) {
            fail(Frame.Error.FRAME_TOO_LARGE, rootMessage(cause));
        } else {
            log.warn("link {} (node {}) failed: {}", target, serverNode, rootMessage(cause));
            ctx.close();
        }
    }

    private static String rootMessage(Throwable cause) {
        Throwable root = cause;
        while (root.getCause() != null) {
            root = root.getCause();
        }
        return root.getMessage() == null ? root.getClass().getSimpleName() : root.getMessage();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        State previous = state;
        state = State.CLOSED;
        if (ticker != null) {
            ticker.cancel(false);
        }
        if (previous == State.AWAIT_HELLO || previous == State.AWAIT_WELCOME) {
            listener.onHandshakeFailed(this, new LinkHandshakeException(target + ": closed during the handshake"));
            return;
        }
        if (previous == State.CLOSED) {
            return;
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
        return "link " + target + " (node " + serverNode + ", " + state + ", " + inflightCount + " in flight)";
    }
}
