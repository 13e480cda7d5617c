// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.Frame;
import io.megaphone.link.FrameTooLargeException;
import io.megaphone.link.LinkPool;
import io.megaphone.link.RequestEnvelope;
import io.megaphone.link.UpstreamTimeoutException;
import io.megaphone.link.UpstreamUnavailableException;
import io.megaphone.metrics.EdgeMetrics;
import io.megaphone.metrics.Outcome;
import io.micrometer.core.instrument.Counter;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DataBufferLimitException;
import org.springframework.core.io.buffer.DataBufferUtils;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.web.reactive.function.server.ServerRequest;
import org.springframework.web.reactive.function.server.ServerResponse;
import org.springframework.web.server.MethodNotAllowedException;
import reactor.core.publisher.Mono;

/**
 * The BOSH endpoint's handler functions. {@link #post} turns one POST into one Mono, a {@link HeldRequest}: it reads
 * the body (bounded), has it checked and admitted here ({@link #forward}), sends it upstream and completes with
 * ejabberd's answer. What the edge answers itself travels as an {@link EdgeAnswerException} to
 * {@link EdgeExceptionHandler}.
 */
final class BoshHandler {

    private static final Logger log = LoggerFactory.getLogger(BoshHandler.class);
    private static final Set<HttpMethod> ALLOWED = Set.of(HttpMethod.POST, HttpMethod.GET, HttpMethod.HEAD,
            HttpMethod.OPTIONS);

    final LinkPool pool;
    final EdgeMetrics metrics;
    final BoshAnswers answers;
    private final ClientAddressResolver clientAddresses;
    private final AdmissionControl admission;
    private final boolean perClientKnown;
    private final boolean perClientAlways;
    private final int maxBodyBytes;
    private final Map<AdmissionControl.Refusal, Counter> refusals = new EnumMap<>(AdmissionControl.Refusal.class);
    private final Counter drainingRefusals;
    private final SessionEnder sessionEnder;
    /** How long a refused body's first bytes (the session it names) are waited for before the refusal goes out. */
    static final Duration PREFIX_WAIT = Duration.ofMillis(500);
    private volatile boolean draining;

    BoshHandler(MegaphoneProperties.Edge edge, LinkPool pool, EdgeMetrics metrics) {
        this.pool = pool;
        this.metrics = metrics;
        this.maxBodyBytes = edge.maxBodyBytes();
        this.answers = new BoshAnswers(edge.retryAfterSeconds());
        this.clientAddresses = new ClientAddressResolver(edge.trustedProxies(), edge.forwardedHeader());
        this.admission = new AdmissionControl(edge.admission(), pool::inflight, pool::capacity, System::nanoTime);
        MegaphoneProperties.PerClient perClient = edge.admission().perClient();
        this.perClientAlways = perClient == MegaphoneProperties.PerClient.ON;
        this.perClientKnown = perClient == MegaphoneProperties.PerClient.AUTO
                && (clientAddresses.hasTrustedProxies() || edge.proxyProtocol());
        if (perClient == MegaphoneProperties.PerClient.AUTO && !perClientKnown) {
            log.warn("megaphone.edge.admission.per-client: auto, with no megaphone.edge.trusted-proxies and no PROXY"
                    + " protocol: the per-client session rate is off, because behind a load balancer every client"
                    + " would have its address. Set trusted-proxies to the balancers' addresses (the rate then applies"
                    + " to the clients they report), or per-client: on if clients connect directly.");
        }
        for (AdmissionControl.Refusal refusal : AdmissionControl.Refusal.values()) {
            refusals.put(refusal, metrics.rejection(refusal.name().toLowerCase(Locale.ROOT)));
        }
        this.drainingRefusals = metrics.rejection("draining");
        this.sessionEnder = new SessionEnder(pool, metrics.sessionEnd("sent"), metrics.sessionEnd("answered"),
                metrics.sessionEnd("failed"));
    }

    /**
     * The session-creation rates for a new XMPP-over-WebSocket stream, shared with BOSH's creations (the same
     * buckets, the same per-client rule): null when it may open, else why not (counted as a rejection).
     */
    AdmissionControl.Refusal admitNewStream(ClientAddressResolver.ClientAddress client) {
        boolean perClient = perClientAlways || perClientKnown && client.known();
        AdmissionControl.Refusal refusal = admission.checkNewSession(client.address().getAddress(), perClient);
        if (refusal != null) {
            refusals.get(refusal).increment();
        }
        return refusal;
    }

    /** A BOSH POST: the Mono completes with ejabberd's answer, or fails with what the edge answers itself. */
    Mono<ServerResponse> post(ServerRequest request) {
        long start = System.nanoTime();
        ServerHttpRequest http = request.exchange().getRequest();
        HttpHeaders headers = http.getHeaders();
        if (!BoshContentType.accepts(headers.getFirst(HttpHeaders.CONTENT_TYPE))) {
            return refuseEndingSession(http, Outcome.BAD_REQUEST, BoshAnswers.unsupportedMediaType(), start);
        }
        if (headers.getContentLength() > maxBodyBytes) {
            return refuseEndingSession(http, Outcome.TOO_LARGE, BoshAnswers.tooLarge(), start);
        }
        return new HeldRequest(this, http, start);
    }

    /**
     * A terminate for a body that is not read whole: its first {@link SessionEnder#PREFIX_BYTES} are read to find
     * the session it names, which is ended in ejabberd too. A client that waits for 100 Continue sends no body, so it
     * is answered at once, and one whose first bytes do not come within {@link #PREFIX_WAIT} gets its answer then.
     */
    private Mono<ServerResponse> refuseEndingSession(ServerHttpRequest http, Outcome outcome, BoshAnswer answer,
            long start) {
        if (http.getHeaders().containsHeader(HttpHeaders.EXPECT)) {
            return refuse(outcome, answer, start);
        }
        int limit = SessionEnder.PREFIX_BYTES;
        return DataBufferUtils.join(DataBufferUtils.takeUntilByteCount(http.getBody(), limit), limit)
                .timeout(PREFIX_WAIT, Mono.empty()) // a client that sends no body still gets its answer soon
                .doOnNext(prefix -> endSessionNamedIn(prefix, http))
                .doOnError(error -> clientGone(http)) // the client went away, or the 408 counted it
                .then(Mono.defer(() -> refuse(outcome, answer, start)));
    }

    private void endSessionNamedIn(DataBuffer prefix, ServerHttpRequest http) {
        byte[] bytes = new byte[prefix.readableByteCount()];
        prefix.read(bytes);
        DataBufferUtils.release(prefix);
        endSessionNamedIn(bytes, http);
    }

    private void endSessionNamedIn(byte[] prefix, ServerHttpRequest http) {
        InetSocketAddress client = clientAddresses.resolve(http.getRemoteAddress(), http.getHeaders()).address();
        sessionEnder.endNamedIn(prefix, client.getAddress(), client.getPort());
    }

    int maxBodyBytes() {
        return maxBodyBytes;
    }

    /**
     * The body as {@link HeldRequest} reads it: joined, up to the limit. Without a Content-Length (a chunked body)
     * its first bytes are kept as it is read, so that a body over the limit still names the session to end.
     */
    Mono<DataBuffer> readBody(ServerHttpRequest http) {
        if (http.getHeaders().getContentLength() >= 0) {
            return DataBufferUtils.join(http.getBody(), maxBodyBytes);
        }
        SessionEnder.Prefix prefix = new SessionEnder.Prefix();
        return DataBufferUtils.join(http.getBody().doOnNext(prefix), maxBodyBytes)
                .onErrorMap(DataBufferLimitException.class,
                        e -> new SessionEnder.BodyOverLimitException(e, prefix.bytes(), http));
    }

    /**
     * The body could not be read whole: over the limit, 413, and the session it names is ended in ejabberd too.
     * Anything else (the client went away, or {@link RequestDeadline} answered 408 and closed the connection) stays
     * as it is, counted as client_gone unless the 408 counted it.
     */
    Throwable bodyFailed(Throwable error, ServerHttpRequest http, long start) {
        if (error instanceof SessionEnder.BodyOverLimitException overLimit) {
            endSessionNamedIn(overLimit.prefix, overLimit.request);
        }
        if (error instanceof DataBufferLimitException) {
            metrics.finished(Outcome.TOO_LARGE, start);
            return new EdgeAnswerException(BoshAnswers.tooLarge());
        }
        clientGone(http);
        return error;
    }

    /**
     * Counts a request whose client went away before it was sent upstream (after that the link pool counts it),
     * unless {@link RequestDeadline} timed its body out and counted it; {@code http} is null once the body is in.
     */
    void clientGone(ServerHttpRequest http) {
        if (http == null || !RequestDeadline.timedOut(http)) {
            pool.countClientGone();
        }
    }

    /**
     * The whole body is in: check its start tag, admit it, and hand it to a link through {@code held}. Returns
     * null when it went upstream, else what the client gets instead (already counted).
     */
    Throwable forward(ServerHttpRequest http, byte[] body, HeldRequest held) {
        long start = held.startNanos();
        metrics.received(body.length);
        ClientAddressResolver.ClientAddress client = clientAddresses.resolve(http.getRemoteAddress(),
                http.getHeaders());
        BodyStartTag tag;
        try {
            tag = BodyStartTag.parse(body);
        } catch (BadRequestException e) {
            log.debug("bad request from {}: {}", client.address(), e.getMessage());
            return refusal(Outcome.BAD_REQUEST, BoshAnswers.badRequest(), start);
        }
        boolean createsSession = tag.sid().isEmpty();
        if (createsSession && draining) {
            drainingRefusals.increment();
            return refusal(Outcome.REJECTED, answers.unavailable("draining"), start);
        }
        boolean perClient = perClientAlways || perClientKnown && client.known();
        AdmissionControl.Refusal refusal = admission.check(createsSession, client.address().getAddress(), perClient);
        if (refusal != null) {
            refusals.get(refusal).increment();
            return refusal(Outcome.REJECTED, answers.unavailable("busy"), start);
        }
        if (createsSession) {
            metrics.sessionCreation();
        }
        held.send(RequestEnvelope.of(tag.rid(), tag.sid(), client.address().getAddress(), client.address().getPort(),
                body));
        return null;
    }

    private Mono<ServerResponse> refuse(Outcome outcome, BoshAnswer answer, long start) {
        return Mono.error(refusal(outcome, answer, start));
    }

    private EdgeAnswerException refusal(Outcome outcome, BoshAnswer answer, long start) {
        metrics.finished(outcome, start);
        return new EdgeAnswerException(draining ? answer.closing() : answer);
    }

    /** ejabberd's answer to a held request, counted; called by {@link HeldRequest} on a link event loop. */
    BoshAnswer answered(Frame.Response response, long start) {
        BoshAnswer answer = BoshAnswers.relay(response.status(), response.contentType(), response.body(), draining);
        String terminate = TerminateCondition.of(answer.body());
        if (terminate != null) {
            metrics.terminate(terminate);
        }
        metrics.sent(answer.body().length);
        metrics.finished(Outcome.ANSWERED, start);
        return answer;
    }

    /** A held request that got no answer from ejabberd, counted, as what the client gets instead. */
    Throwable failed(Throwable error, long start) {
        BoshAnswer answer;
        if (error instanceof UpstreamTimeoutException) {
            metrics.finished(Outcome.UPSTREAM_TIMEOUT, start);
            answer = answers.upstreamTimeout();
        } else if (error instanceof FrameTooLargeException tooLarge && tooLarge.answer()) {
            metrics.finished(Outcome.ANSWER_TOO_LARGE, start);
            metrics.terminate("undefined-condition");
            // ejabberd took rid R (mod_megaphone ends the session when it cannot frame the answer; when the ECM's
            // own limit is the smaller one, R + 1 asks ejabberd to)
            endSession(tooLarge.request(), 1);
            return new EdgeAnswerException(BoshAnswers.answerTooLarge());
        } else if (error instanceof FrameTooLargeException tooLarge) {
            metrics.finished(Outcome.TOO_LARGE, start);
            endSession(tooLarge.request(), 0); // never sent: ejabberd did not see rid R
            return new EdgeAnswerException(BoshAnswers.tooLarge());
        } else if (error instanceof UpstreamUnavailableException) {
            metrics.finished(Outcome.UPSTREAM_UNAVAILABLE, start);
            answer = answers.unavailable("ejabberd cannot be reached");
        } else {
            metrics.finished(Outcome.ERROR, start);
            return error; // EdgeExceptionHandler logs it and answers 500
        }
        return new EdgeAnswerException(draining ? answer.closing() : answer);
    }

    private void endSession(RequestEnvelope request, long ridStep) {
        if (request != null) {
            sessionEnder.end(request.rid() + ridStep, request.sid(), request.address(), request.port());
        }
    }

    /** OPTIONS that is not a CORS preflight ({@link BoshCors} answers those): what the path allows. */
    Mono<ServerResponse> options(ServerRequest request) {
        return ServerResponse.noContent().header(HttpHeaders.ALLOW, "POST, GET, HEAD, OPTIONS").build();
    }

    /** GET (and HEAD) on a BOSH path: a short plain description, for people who open the URL in a browser. */
    Mono<ServerResponse> describe(ServerRequest request) {
        return Mono.just(BoshAnswer.text(200, BoshAnswers.DESCRIPTION));
    }

    /** Any other method on a BOSH path. */
    Mono<ServerResponse> methodNotAllowed(ServerRequest request) {
        return Mono.error(new MethodNotAllowedException(request.method(), ALLOWED));
    }

    /** From now on session creations get 503 (so a load balancer moves them elsewhere); others go on. */
    void startDraining() {
        draining = true;
    }

    void stopDraining() {
        draining = false;
    }

    boolean draining() {
        return draining;
    }
}
