// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatus;
import org.springframework.web.server.ResponseStatusException;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.boot.webflux.error.ErrorWebExceptionHandler;
import reactor.core.publisher.Mono;
import reactor.netty.channel.AbortedException;

/**
 * WebFlux's exception handling for the BOSH port, in place of Boot's error handler (which renders HTML for browsers;
 * as an {@link ErrorWebExceptionHandler} bean this one replaces it, and its place in every request's chain):
 * every failure becomes a short, well-formed answer. What the edge answers itself ({@link EdgeAnswerException}) is
 * written as it is; WebFlux's own statuses (404 for an unknown path, 405 for a method, 415, 400) become plain text
 * with their standard reason; anything else is logged (rate-limited) and answered 500 in plain text, never with a
 * stack trace. A failure after the answer started can only close the connection, which the server does.
 */
final class EdgeExceptionHandler implements ErrorWebExceptionHandler {

    private static final Logger log = LoggerFactory.getLogger(EdgeExceptionHandler.class);
    private static final long LOG_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final AtomicLong lastLogged = new AtomicLong(System.nanoTime() - LOG_INTERVAL_NANOS);

    @Override
    public Mono<Void> handle(ServerWebExchange exchange, Throwable error) {
        if (exchange.getResponse().isCommitted() || error instanceof AbortedException) {
            return Mono.error(error); // nothing can be answered; WebFlux logs a gone client at debug level
        }
        BoshAnswer answer = answerFor(error);
        if (error instanceof ResponseStatusException status) {
            exchange.getResponse().getHeaders().putAll(status.getHeaders()); // Allow on a 405
        }
        return answer.write(exchange.getResponse());
    }

    private BoshAnswer answerFor(Throwable error) {
        if (error instanceof EdgeAnswerException edge) {
            return edge.answer();
        }
        if (error instanceof ResponseStatusException status) {
            int code = status.getStatusCode().value();
            HttpStatus known = HttpStatus.resolve(code);
            String reason = known == null ? "error" : known.getReasonPhrase().toLowerCase(java.util.Locale.ROOT);
            String allow = status.getHeaders().getFirst(HttpHeaders.ALLOW);
            return BoshAnswer.text(code, reason + (allow == null ? "" : " (allowed: " + allow + ")") + "\n");
        }
        long now = System.nanoTime();
        long last = lastLogged.get();
        if (now - last >= LOG_INTERVAL_NANOS && lastLogged.compareAndSet(last, now)) {
            log.warn("BOSH request failed (logged at most once a second): {}", error.toString(), error);
        }
        return BoshAnswer.text(500, "internal error\n");
    }
}
