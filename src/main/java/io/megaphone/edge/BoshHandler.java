package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.Frame;
import io.megaphone.link.LinkPool;
import io.megaphone.link.RequestEnvelope;
import io.megaphone.link.UpstreamTimeoutException;
import io.megaphone.link.UpstreamUnavailableException;
import io.megaphone.metrics.EdgeMetrics;
import io.megaphone.metrics.Outcome;
import io.micrometer.core.instrument.Counter;
import io.netty.handler.codec.http.HttpHeaderNames;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;

/**
 * One BOSH POST, start to end: read the body (bounded), check its start tag, admit it, forward it over a link, and
 * relay ejabberd's answer. The returned Mono is the held request: it lives until ejabberd answers, the upstream
 * timeout fires, or the client goes away (then Reactor Netty cancels it and CANCEL goes upstream).
 */
final class BoshHandler {

    private static final Logger log = LoggerFactory.getLogger(BoshHandler.class);
    private static final byte[] DESCRIPTION = ("This is a BOSH (XEP-0124/XEP-0206) endpoint of Megaphone."
            + " POST a <body/> in the http://jabber.org/protocol/httpbind namespace here.\n")
            .getBytes(StandardCharsets.UTF_8);

    private final LinkPool pool;
    private final int maxBodyBytes;
    private final BoshAnswers answers;
    private final CorsPolicy cors;
    private final ClientAddressResolver clientAddresses;
    private final AdmissionControl admission;
    private final EdgeMetrics metrics;
    private final Map<AdmissionControl.Refusal, Counter> refusals = new EnumMap<>(AdmissionControl.Refusal.class);
    private final Counter drainingRefusals;
    private volatile boolean draining;

    BoshHandler(LinkPool pool, MegaphoneProperties.Edge edge, EdgeMetrics metrics) {
        this.pool = pool;
        this.maxBodyBytes = edge.maxBodyBytes();
        this.answers = new BoshAnswers(edge.retryAfterSeconds());
        this.cors = new CorsPolicy(edge.cors());
        this.clientAddresses = new ClientAddressResolver(edge.trustedProxies());
        this.admission = new AdmissionControl(edge.admission(), pool::inflight);
        this.metrics = metrics;
        for (AdmissionControl.Refusal refusal : AdmissionControl.Refusal.values()) {
            refusals.put(refusal, metrics.rejection(refusal.name().toLowerCase(Locale.ROOT)));
        }
        this.drainingRefusals = metrics.rejection("draining");
    }

    AdmissionControl admission() {
        return admission;
    }

    /** From now on session creations get 503 (so a load balancer moves them elsewhere); others go on. */
    void startDraining() {
        draining = true;
    }

    Mono<Void> post(HttpServerRequest request, HttpServerResponse response) {
        long start = System.nanoTime();
        cors.apply(request, response);
        if (!BoshContentType.accepts(request.requestHeaders().get(HttpHeaderNames.CONTENT_TYPE))) {
            metrics.finished(Outcome.BAD_REQUEST, start);
            return answers.unsupportedMediaType(response);
        }
        long declared = request.requestHeaders().getInt(HttpHeaderNames.CONTENT_LENGTH, 0);
        if (declared > maxBodyBytes) {
            metrics.finished(Outcome.TOO_LARGE, start);
            return answers.tooLarge(response);
        }
        InetSocketAddress client = clientAddresses.resolve(request.remoteAddress(), request.requestHeaders());
        return request.receive()
                .collect(() -> new BodyCollector(maxBodyBytes, (int) declared), BodyCollector::append)
                .flatMap(collector -> forward(collector.toArray(), client))
                .flatMap(upstream -> relay(response, upstream, start))
                .onErrorResume(error -> fail(response, error, start));
    }

    private Mono<Frame.Response> forward(byte[] body, InetSocketAddress client) {
        metrics.received(body.length);
        BodyStartTag tag = BodyStartTag.parse(body);
        boolean createsSession = tag.sid().isEmpty();
        if (createsSession && draining) {
            drainingRefusals.increment();
            return Mono.error(new AdmissionRefusedException("draining"));
        }
        AdmissionControl.Refusal refusal = admission.check(createsSession, client.getAddress());
        if (refusal != null) {
            refusals.get(refusal).increment();
            return Mono.error(new AdmissionRefusedException(refusal.name()));
        }
        if (createsSession) {
            metrics.sessionCreation();
        }
        return pool.forward(RequestEnvelope.of(tag.rid(), tag.sid(), client.getAddress(), client.getPort(), body));
    }

    private Mono<Void> relay(HttpServerResponse response, Frame.Response upstream, long start) {
        String contentType = upstream.contentType().isEmpty() ? BoshAnswers.XML : upstream.contentType();
        String terminate = TerminateCondition.of(upstream.body());
        if (terminate != null) {
            metrics.terminate(terminate);
        }
        metrics.sent(upstream.body().length);
        metrics.finished(Outcome.ANSWERED, start);
        if (draining) {
            response.keepAlive(false); // the client's next request opens a connection the load balancer routes elsewhere
        }
        return BoshAnswers.send(response, upstream.status(), contentType, upstream.body());
    }

    private Mono<Void> fail(HttpServerResponse response, Throwable error, long start) {
        if (error instanceof BadRequestException) {
            log.debug("bad request: {}", error.getMessage());
            metrics.finished(Outcome.BAD_REQUEST, start);
            return answers.badRequest(response);
        }
        if (error instanceof BodyTooLargeException) {
            metrics.finished(Outcome.TOO_LARGE, start);
            return answers.tooLarge(response);
        }
        if (error instanceof AdmissionRefusedException) {
            metrics.finished(Outcome.REJECTED, start);
            return answers.unavailable(response, "busy");
        }
        if (error instanceof UpstreamUnavailableException) {
            metrics.finished(Outcome.UPSTREAM_UNAVAILABLE, start);
            return answers.unavailable(response, "ejabberd cannot be reached");
        }
        if (error instanceof UpstreamTimeoutException) {
            metrics.finished(Outcome.UPSTREAM_TIMEOUT, start);
            return answers.upstreamTimeout(response);
        }
        metrics.finished(Outcome.ERROR, start);
        if (response.hasSentHeaders()) {
            return Mono.empty();
        }
        log.warn("BOSH request failed: {}", error.toString());
        return answers.internalError(response);
    }

    Mono<Void> preflight(HttpServerRequest request, HttpServerResponse response) {
        cors.applyPreflight(request, response);
        return response.status(204).header(HttpHeaderNames.CONTENT_LENGTH, "0").send();
    }

    Mono<Void> describe(HttpServerRequest request, HttpServerResponse response) {
        cors.apply(request, response);
        return BoshAnswers.send(response, 200, BoshAnswers.TEXT, DESCRIPTION);
    }

    Mono<Void> notFound(HttpServerRequest request, HttpServerResponse response) {
        return BoshAnswers.send(response, 404, BoshAnswers.TEXT, "not found\n".getBytes(StandardCharsets.UTF_8));
    }

    Mono<Void> methodNotAllowed(HttpServerRequest request, HttpServerResponse response) {
        response.header(HttpHeaderNames.ALLOW, "POST, GET, OPTIONS");
        return BoshAnswers.send(response, 405, BoshAnswers.TEXT,
                "method not allowed: use POST\n".getBytes(StandardCharsets.UTF_8));
    }
}
