package io.megaphone.edge;

import io.netty.buffer.Unpooled;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Every answer the edge writes. Each is complete and small, with an exact Content-Length and a standard reason
 * phrase: a BOSH {@code terminate} body for a BOSH client's mistake, plain text for a retryable upstream problem,
 * and never an HTML page or a stack trace.
 */
final class BoshAnswers {

    static final String XML = "text/xml; charset=utf-8";
    static final String TEXT = "text/plain; charset=utf-8";
    static final byte[] DESCRIPTION = ("This is a BOSH (XEP-0124/XEP-0206) endpoint of Megaphone."
            + " POST a <body/> in the http://jabber.org/protocol/httpbind namespace here.\n")
            .getBytes(StandardCharsets.UTF_8);

    private final int retryAfterSeconds;

    BoshAnswers(int retryAfterSeconds) {
        this.retryAfterSeconds = retryAfterSeconds;
    }

    static byte[] terminate(String condition) {
        return ("<body type='terminate' condition='" + condition
                + "' xmlns='http://jabber.org/protocol/httpbind'/>").getBytes(StandardCharsets.UTF_8);
    }

    /** The XEP-0124 terminate condition that matches an HTTP error status of ejabberd's. */
    static String conditionFor(int status) {
        return switch (status) {
            case 400 -> "bad-request";
            case 403 -> "policy-violation";
            case 404 -> "item-not-found";
            default -> "undefined-condition";
        };
    }

    static FullHttpResponse answer(int status, String contentType, byte[] body) {
        FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                HttpResponseStatus.valueOf(status), Unpooled.wrappedBuffer(body));
        response.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType)
                .set(HttpHeaderNames.CONTENT_LENGTH, body.length)
                .set(HttpHeaderNames.CACHE_CONTROL, "no-store");
        return response;
    }

    static FullHttpResponse text(int status, String text) {
        return answer(status, TEXT, text.getBytes(StandardCharsets.UTF_8));
    }

    static FullHttpResponse badRequest() {
        return answer(400, XML, terminate("bad-request"));
    }

    /** A body type that cannot be XML in UTF-8 (JSON, form data, another charset). */
    static FullHttpResponse unsupportedMediaType() {
        return answer(415, XML, terminate("bad-request"));
    }

    static FullHttpResponse tooLarge() {
        return answer(413, XML, terminate("policy-violation"));
    }

    /** A retryable 503: clients (Strophe.js) re-send the same rid after it, losing nothing. */
    FullHttpResponse unavailable(String why) {
        FullHttpResponse response = text(503, why + "; retry\n");
        response.headers().set(HttpHeaderNames.RETRY_AFTER, retryAfter());
        return response;
    }

    /** ejabberd did not answer in time: a retryable 504, never a fabricated empty body. */
    FullHttpResponse upstreamTimeout() {
        FullHttpResponse response = text(504, "ejabberd did not answer in time; retry\n");
        response.headers().set(HttpHeaderNames.RETRY_AFTER, retryAfter());
        return response;
    }

    /** Base plus up to as much again at random, so clients refused together do not come back together. */
    private int retryAfter() {
        return retryAfterSeconds + ThreadLocalRandom.current().nextInt(retryAfterSeconds + 1);
    }
}
