package io.megaphone.edge;

import io.megaphone.link.Exchange;
import io.megaphone.link.Frame;
import io.megaphone.link.PendingRequest;
import io.megaphone.link.RequestEnvelope;
import io.megaphone.link.UpstreamTimeoutException;
import io.megaphone.link.UpstreamUnavailableException;
import io.megaphone.metrics.Outcome;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.haproxy.HAProxyMessage;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.InetSocketAddress;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client TCP connection of the BOSH port, after Netty's HTTP codec: reads a request (bounded), checks it,
 * forwards a BOSH POST over a link and writes ejabberd's answer back. While a request is held this object, the
 * channel and a {@link PendingRequest} are all that stay in memory: the decoded HTTP request is dropped as soon as
 * its few needed values are read. That is what keeps a held request within the memory budget (docs/benchmarks.md).
 *
 * <p>All state is confined to the channel's event loop; link callbacks hop onto it.
 */
final class BoshConnection extends ChannelInboundHandlerAdapter implements Exchange {

    private static final Logger log = LoggerFactory.getLogger(BoshConnection.class);
    private static final int MAX_BACKLOG = 32;

    private enum State { IDLE, READING, HELD, DISCARDING, CLOSED }

    private final BoshEdge edge;
    private ChannelHandlerContext ctx;
    private State state = State.IDLE;
    private BodyCollector body;
    private boolean keepAlive;
    private String origin;
    private InetSocketAddress client;
    private InetSocketAddress proxiedSource;
    private long startNanos;
    private PendingRequest pending;
    private ScheduledFuture<?> timer;
    /** Body bytes of a refused request still to skip before closing; past it the connection closes at once. */
    private long discardBudget;
    /** The answer said Connection: close; close once the client has finished sending the refused body. */
    private boolean closeAfterDiscard;
    /** Messages of a pipelined next request that came while one was in progress (rare). */
    private ArrayDeque<Object> backlog;

    BoshConnection(BoshEdge edge) {
        this.edge = edge;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        arm(edge.idleTimeoutNanos);
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof HAProxyMessage proxy) {
            if (proxy.sourceAddress() != null) {
                proxiedSource = new InetSocketAddress(proxy.sourceAddress(), proxy.sourcePort());
            }
            proxy.release();
            return;
        }
        if (state == State.HELD || (backlog != null && !backlog.isEmpty())) {
            queue(msg); // a pipelined next request: it waits for the current answer
            return;
        }
        handle(msg);
    }

    private void handle(Object msg) {
        try {
            if (msg instanceof HttpRequest request) {
                onRequest(request);
            }
            if (msg instanceof HttpContent content) {
                onContent(content);
            }
        } finally {
            ReferenceCountUtil.release(msg);
        }
    }

    private void queue(Object msg) {
        if (backlog == null) {
            backlog = new ArrayDeque<>(4);
        }
        if (backlog.size() >= MAX_BACKLOG) {
            ReferenceCountUtil.release(msg);
            close();
            return;
        }
        backlog.add(msg);
    }

    private void onRequest(HttpRequest request) {
        if (state != State.IDLE) {
            return; // a request line inside a body being read: the codec reports it as a failure below anyway
        }
        disarm();
        startNanos = System.nanoTime();
        keepAlive = HttpUtil.isKeepAlive(request);
        if (request.decoderResult().isFailure()) {
            keepAlive = false; // the codec cannot find the next request: answer and close
            write(BoshAnswers.text(400, "malformed HTTP request\n"));
            return;
        }
        arm(edge.requestReadTimeoutNanos);
        origin = request.headers().get(HttpHeaderNames.ORIGIN);
        String path = path(request.uri());
        HttpMethod method = request.method();
        if (edge.isBoshPath(path)) {
            if (method.equals(HttpMethod.POST)) {
                startPost(request);
                return;
            }
            state = State.DISCARDING;
            discardBudget = discardLimit();
            if (method.equals(HttpMethod.OPTIONS)) {
                FullHttpResponse preflight = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                        HttpResponseStatus.NO_CONTENT);
                preflight.headers().set(HttpHeaderNames.CONTENT_LENGTH, 0);
                edge.cors.applyPreflight(origin, preflight.headers());
                write(preflight);
            } else if (method.equals(HttpMethod.GET)) {
                write(withCors(BoshAnswers.answer(200, BoshAnswers.TEXT, BoshAnswers.DESCRIPTION)));
            } else {
                FullHttpResponse notAllowed = BoshAnswers.text(405, "method not allowed: use POST\n");
                notAllowed.headers().set(HttpHeaderNames.ALLOW, "POST, GET, OPTIONS");
                write(notAllowed);
            }
            return;
        }
        state = State.DISCARDING;
        discardBudget = discardLimit();
        DemoFiles.File file = method.equals(HttpMethod.GET) && (path.equals("/demo") || path.startsWith("/demo/"))
                ? edge.demo.get(path) : null;
        write(file != null ? BoshAnswers.answer(200, file.contentType(), file.bytes()) : BoshAnswers.text(404,
                "not found\n"));
    }

    private void startPost(HttpRequest request) {
        if (!BoshContentType.accepts(request.headers().get(HttpHeaderNames.CONTENT_TYPE))) {
            finish(Outcome.BAD_REQUEST, BoshAnswers.unsupportedMediaType(), false);
            return;
        }
        long declared = HttpUtil.getContentLength(request, -1L);
        if (declared > edge.maxBodyBytes) {
            // The body is not forwarded and the connection is not reused. A client that is still sending must
            // read the 413 before the connection closes (a close while it sends can reset it first), so a
            // moderately oversized body is skipped; a huge one closes the connection at once.
            keepAlive = false;
            finish(Outcome.TOO_LARGE, BoshAnswers.tooLarge(), declared > discardLimit());
            return;
        }
        if (HttpUtil.is100ContinueExpected(request)) {
            ctx.writeAndFlush(new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.CONTINUE));
        }
        InetSocketAddress peer = proxiedSource != null ? proxiedSource : (InetSocketAddress) ctx.channel().remoteAddress();
        client = edge.clientAddresses.resolve(peer, request.headers());
        body = new BodyCollector(edge.maxBodyBytes, (int) Math.max(0, declared));
        state = State.READING;
    }

    private void onContent(HttpContent content) {
        if (content.decoderResult().isFailure() && state != State.CLOSED) {
            keepAlive = false;
            if (state == State.READING) {
                finish(Outcome.BAD_REQUEST, BoshAnswers.badRequest(), true); // the codec cannot go on: close
            } else {
                close();
            }
            return;
        }
        boolean last = content instanceof LastHttpContent;
        if (state == State.DISCARDING) {
            discardBudget -= content.content().readableBytes();
            if (last && closeAfterDiscard || discardBudget < 0) {
                close();
            } else if (last) {
                state = State.IDLE;
                afterResponse();
            }
            return;
        }
        if (state != State.READING) {
            return;
        }
        try {
            body.append(content.content());
        } catch (BodyTooLargeException e) {
            keepAlive = false;
            finish(Outcome.TOO_LARGE, BoshAnswers.tooLarge(), false); // skip the rest (bounded), then close
            return;
        }
        if (last) {
            forward();
        }
    }

    /** The whole body is in: check its start tag, admit it, and hand it to a link. */
    private void forward() {
        disarm();
        byte[] bytes = body.toArray();
        body = null;
        edge.metrics.received(bytes.length);
        BodyStartTag tag;
        try {
            tag = BodyStartTag.parse(bytes);
        } catch (BadRequestException e) {
            log.debug("bad request from {}: {}", client, e.getMessage());
            finish(Outcome.BAD_REQUEST, BoshAnswers.badRequest(), true);
            return;
        }
        boolean createsSession = tag.sid().isEmpty();
        if (createsSession && edge.draining()) {
            edge.refused(null);
            finish(Outcome.REJECTED, edge.answers.unavailable("draining"), true);
            return;
        }
        AdmissionControl.Refusal refusal = edge.admission.check(createsSession, client.getAddress());
        if (refusal != null) {
            edge.refused(refusal);
            finish(Outcome.REJECTED, edge.answers.unavailable("busy"), true);
            return;
        }
        if (createsSession) {
            edge.metrics.sessionCreation();
        }
        state = State.HELD;
        pending = edge.pool.submit(RequestEnvelope.of(tag.rid(), tag.sid(), client.getAddress(), client.getPort(),
                bytes), this);
    }

    // ---- Exchange: called on a link event loop ----

    @Override
    public void onResponse(Frame.Response response) {
        if (!ctx.executor().inEventLoop()) {
            ctx.executor().execute(() -> onResponse(response));
            return;
        }
        if (state != State.HELD) {
            return;
        }
        pending = null;
        byte[] answer = response.body();
        String contentType = response.contentType().isEmpty() ? BoshAnswers.XML : response.contentType();
        if (answer.length == 0 && response.status() >= 400) {
            // ejabberd answers some errors (e.g. a body it cannot parse) with no body: give the client a BOSH one.
            answer = BoshAnswers.terminate(BoshAnswers.conditionFor(response.status()));
            contentType = BoshAnswers.XML;
        }
        String terminate = TerminateCondition.of(answer);
        if (terminate != null) {
            edge.metrics.terminate(terminate);
        }
        edge.metrics.sent(answer.length);
        finish(Outcome.ANSWERED, BoshAnswers.answer(response.status(), contentType, answer), true);
    }

    @Override
    public void onFailure(Throwable error) {
        if (!ctx.executor().inEventLoop()) {
            ctx.executor().execute(() -> onFailure(error));
            return;
        }
        if (state != State.HELD) {
            return;
        }
        pending = null;
        if (error instanceof UpstreamTimeoutException) {
            finish(Outcome.UPSTREAM_TIMEOUT, edge.answers.upstreamTimeout(), true);
        } else if (error instanceof UpstreamUnavailableException) {
            finish(Outcome.UPSTREAM_UNAVAILABLE, edge.answers.unavailable("ejabberd cannot be reached"), true);
        } else {
            log.warn("BOSH request failed: {}", error.toString());
            finish(Outcome.ERROR, BoshAnswers.text(500, "internal error\n"), true);
        }
    }

    // ---- answers ----

    /**
     * Writes the answer to the current POST and counts its outcome. {@code bodyDone}: the request's body has been
     * read whole; if not, the rest of it is skipped (or the connection closed) before the next request.
     */
    private void finish(Outcome outcome, FullHttpResponse response, boolean bodyDone) {
        edge.metrics.finished(outcome, startNanos);
        body = null;
        state = bodyDone ? State.IDLE : State.DISCARDING;
        discardBudget = discardLimit();
        write(withCors(response));
        afterResponse();
    }

    private FullHttpResponse withCors(FullHttpResponse response) {
        edge.cors.apply(origin, response.headers());
        return response;
    }

    private void write(FullHttpResponse response) {
        boolean close = !keepAlive || edge.draining();
        if (close && state == State.DISCARDING) {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            ctx.writeAndFlush(response, ctx.voidPromise());
            closeAfterDiscard = true;
        } else if (close) {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
            state = State.CLOSED;
        } else {
            ctx.writeAndFlush(response, ctx.voidPromise());
        }
    }

    /** Ready for the next request on this connection: replay a pipelined one, or wait idle. */
    private void afterResponse() {
        if (state != State.IDLE) {
            return;
        }
        origin = null;
        client = null;
        arm(edge.idleTimeoutNanos);
        while (backlog != null && !backlog.isEmpty() && state != State.HELD && state != State.CLOSED) {
            handle(backlog.poll());
        }
    }

    // ---- timers: armed only while idle or reading, never while a request is held ----

    private void arm(long nanos) {
        disarm();
        timer = ctx.executor().schedule(this::timedOut, nanos, TimeUnit.NANOSECONDS);
    }

    private void disarm() {
        if (timer != null) {
            timer.cancel(false);
            timer = null;
        }
    }

    private void timedOut() {
        timer = null;
        if (state == State.READING) {
            keepAlive = false;
            finish(Outcome.BAD_REQUEST, BoshAnswers.text(408, "request not received in time\n"), true);
        } else if (state == State.IDLE || state == State.DISCARDING) {
            close();
        }
    }

    /** How much of a refused request's body is skipped at most before the connection is just closed. */
    private long discardLimit() {
        return 4L * edge.maxBodyBytes;
    }

    private void close() {
        state = State.CLOSED;
        ctx.close();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        disarm();
        if (state == State.HELD && pending != null) {
            pending.cancel(); // the client went away: CANCEL upstream
            pending = null;
        }
        state = State.CLOSED;
        body = null;
        if (backlog != null) {
            backlog.forEach(ReferenceCountUtil::release);
            backlog = null;
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("BOSH connection {} failed: {}", ctx.channel().remoteAddress(), cause.toString());
        ctx.close();
    }

    private static String path(String uri) {
        int query = uri.indexOf('?');
        String path = query < 0 ? uri : uri.substring(0, query);
        int fragment = path.indexOf('#');
        return fragment < 0 ? path : path.substring(0, fragment);
    }
}
