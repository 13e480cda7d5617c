package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.Frame;
import io.megaphone.link.LinkPool;
import io.megaphone.link.RequestEnvelope;
import io.megaphone.link.UpstreamTimeoutException;
import io.megaphone.link.UpstreamUnavailableException;
import io.netty.handler.codec.http.HttpHeaderNames;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;

/**
 * One BOSH POST, start to end: read the body (bounded), check its start tag, forward it over a link, and relay
 * ejabberd's answer. The returned Mono is the held request: it lives until ejabberd answers, the upstream timeout
 * fires, or the client goes away (then Reactor Netty cancels it and CANCEL goes upstream).
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

    BoshHandler(LinkPool pool, MegaphoneProperties.Edge edge) {
        this.pool = pool;
        this.maxBodyBytes = edge.maxBodyBytes();
        this.answers = new BoshAnswers(edge.retryAfterSeconds());
        this.cors = new CorsPolicy(edge.cors());
        this.clientAddresses = new ClientAddressResolver(edge.trustedProxies());
    }

    Mono<Void> post(HttpServerRequest request, HttpServerResponse response) {
        cors.apply(request, response);
        long declared = request.requestHeaders().getInt(HttpHeaderNames.CONTENT_LENGTH, 0);
        if (declared > maxBodyBytes) {
            return answers.tooLarge(response);
        }
        InetSocketAddress client = clientAddresses.resolve(request.remoteAddress(), request.requestHeaders());
        return request.receive()
                .collect(() -> new BodyCollector(maxBodyBytes, (int) declared), BodyCollector::append)
                .flatMap(collector -> {
                    byte[] body = collector.toArray();
                    BodyStartTag tag = BodyStartTag.parse(body);
                    return pool.forward(RequestEnvelope.of(tag.rid(), tag.sid(), client.getAddress(),
                            client.getPort(), body));
                })
                .flatMap(upstream -> relay(response, upstream))
                .onErrorResume(error -> fail(response, error));
    }

    private Mono<Void> relay(HttpServerResponse response, Frame.Response upstream) {
        String contentType = upstream.contentType().isEmpty() ? BoshAnswers.XML : upstream.contentType();
        return BoshAnswers.send(response, upstream.status(), contentType, upstream.body());
    }

    private Mono<Void> fail(HttpServerResponse response, Throwable error) {
        if (error instanceof BadRequestException) {
            log.debug("bad request: {}", error.getMessage());
            return answers.badRequest(response);
        }
        if (error instanceof BodyTooLargeException) {
            return answers.tooLarge(response);
        }
        if (error instanceof UpstreamUnavailableException) {
            return answers.unavailable(response, "ejabberd cannot be reached");
        }
        if (error instanceof UpstreamTimeoutException) {
            return answers.upstreamTimeout(response);
        }
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
