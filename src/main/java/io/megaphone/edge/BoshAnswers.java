// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Every answer the edge gives itself. Each is complete and small, with an exact Content-Length and a standard
 * reason phrase: a BOSH {@code terminate} body for a BOSH client's mistake, plain text for a retryable upstream
 * problem, and never an HTML page or a stack trace.
 */
final class BoshAnswers {

    static final String XML = "text/xml; charset=utf-8";
    static final String TEXT = "text/plain; charset=utf-8";
    static final String DESCRIPTION = "This is a BOSH (XEP-0124/XEP-0206) endpoint of Megaphone."
            + " POST a <body/> in the http://jabber.org/protocol/httpbind namespace here.\n";

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

    /** ejabberd's answer as the client gets it; an error ejabberd sent with no body gets a BOSH one. */
    static BoshAnswer relay(int status, String contentType, byte[] body, boolean close) {
        if (body.length == 0 && status >= 400) {
            return new BoshAnswer(status, XML, terminate(conditionFor(status)), 0, close);
        }
        return new BoshAnswer(status, contentType.isEmpty() ? XML : contentType, body, 0, close);
    }

    static BoshAnswer badRequest() {
        return new BoshAnswer(400, XML, terminate("bad-request"), 0, false);
    }

    /** A body type that cannot be XML in UTF-8 (JSON, form data, another charset). */
    static BoshAnswer unsupportedMediaType() {
        return new BoshAnswer(415, XML, terminate("bad-request"), 0, false);
    }

    /** Over the body limit: the rest of the body is not read, so the connection closes after the answer. */
    static BoshAnswer tooLarge() {
        return new BoshAnswer(413, XML, terminate("policy-violation"), 0, true);
    }

    /**
     * ejabberd's answer does not fit the link (over {@code max_frame}): the session cannot go on, since ejabberd
     * answers a re-sent rid from its buffer with the same bytes. A terminate (HTTP 200, as XEP-0124 sends terminal
     * conditions) tells the client at once to log in again, instead of re-sending until its retries run out; the
     * child says why.
     */
    static BoshAnswer answerTooLarge() {
        return new BoshAnswer(200, XML, ANSWER_TOO_LARGE, 0, false);
    }

    private static final byte[] ANSWER_TOO_LARGE = ("<body type='terminate' condition='undefined-condition'"
            + " xmlns='http://jabber.org/protocol/httpbind'><answer-too-large xmlns='urn:megaphone:link'/></body>")
            .getBytes(StandardCharsets.UTF_8);

    /** A retryable 503: clients (Strophe.js) re-send the same rid after it, losing nothing. */
    BoshAnswer unavailable(String why) {
        return new BoshAnswer(503, TEXT, (why + "; retry\n").getBytes(StandardCharsets.UTF_8), retryAfter(), false);
    }

    /** ejabberd did not answer in time: a retryable 504, never a fabricated empty body. */
    BoshAnswer upstreamTimeout() {
        return new BoshAnswer(504, TEXT, "ejabberd did not answer in time; retry\n".getBytes(StandardCharsets.UTF_8),
                retryAfter(), false);
    }

    /** Base plus up to as much again at random, so clients refused together do not come back together. */
    private int retryAfter() {
        return retryAfterSeconds + ThreadLocalRandom.current().nextInt(retryAfterSeconds + 1);
    }
}
