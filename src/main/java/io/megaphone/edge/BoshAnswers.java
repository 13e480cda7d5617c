package io.megaphone.edge;

import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ThreadLocalRandom;
import reactor.core.publisher.Mono;
import reactor.netty.http.server.HttpServerResponse;

/**
 * Every answer the edge writes itself. Each is well-formed and small: a BOSH {@code terminate} body for a BOSH
 * client's mistake, plain text for a retryable upstream problem, and never an HTML page or a stack trace.
 */
final class BoshAnswers {

    static final String XML = "text/xml; charset=utf-8";
    static final String TEXT = "text/plain; charset=utf-8";

    private final int retryAfterSeconds;

    BoshAnswers(int retryAfterSeconds) {
        this.retryAfterSeconds = retryAfterSeconds;
    }

    static byte[] terminate(String condition) {
        return ("<body type='terminate' condition='" + condition
                + "' xmlns='http://jabber.org/protocol/httpbind'/>").getBytes(StandardCharsets.UTF_8);
    }

    /** Sends a complete answer with an exact Content-Length (never chunked: some BOSH clients dislike it). */
    static Mono<Void> send(HttpServerResponse response, int status, String contentType, byte[] body) {
        return response.status(HttpResponseStatus.valueOf(status))
                .header(HttpHeaderNames.CONTENT_TYPE, contentType)
                .header(HttpHeaderNames.CONTENT_LENGTH, Integer.toString(body.length))
                .header(HttpHeaderNames.CACHE_CONTROL, "no-store")
                .sendByteArray(Mono.just(body)).then();
    }

    Mono<Void> badRequest(HttpServerResponse response) {
        return send(response, 400, XML, terminate("bad-request"));
    }

    /** A body type that cannot be XML in UTF-8 (JSON, form data, another charset). */
    Mono<Void> unsupportedMediaType(HttpServerResponse response) {
        return send(response, 415, XML, terminate("bad-request"));
    }

    Mono<Void> tooLarge(HttpServerResponse response) {
        response.keepAlive(false);
        return send(response, 413, XML, terminate("policy-violation"));
    }

    /** A retryable 503: clients (Strophe.js) re-send the same rid after it, losing nothing. */
    Mono<Void> unavailable(HttpServerResponse response, String why) {
        response.header(HttpHeaderNames.RETRY_AFTER, Integer.toString(retryAfter()));
        return send(response, 503, TEXT, (why + "; retry\n").getBytes(StandardCharsets.UTF_8));
    }

    /** ejabberd did not answer in time: a retryable 504, never a fabricated empty body. */
    Mono<Void> upstreamTimeout(HttpServerResponse response) {
        response.header(HttpHeaderNames.RETRY_AFTER, Integer.toString(retryAfter()));
        return send(response, 504, TEXT, "ejabberd did not answer in time; retry\n".getBytes(StandardCharsets.UTF_8));
    }

    Mono<Void> internalError(HttpServerResponse response) {
        return send(response, 500, TEXT, "internal error\n".getBytes(StandardCharsets.UTF_8));
    }

    /** Base plus up to as much again at random, so clients refused together do not come back together. */
    private int retryAfter() {
        return retryAfterSeconds + ThreadLocalRandom.current().nextInt(retryAfterSeconds + 1);
    }
}
