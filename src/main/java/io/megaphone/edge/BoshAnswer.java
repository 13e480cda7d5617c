// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import java.nio.charset.StandardCharsets;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.ResponseCookie;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.util.LinkedMultiValueMap;
import org.springframework.util.MultiValueMap;
import org.springframework.web.reactive.function.server.ServerResponse;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

/**
 * One complete, small answer of the BOSH port, as a {@link ServerResponse}: ejabberd's answer relayed, or one the
 * edge gives itself (a BOSH {@code terminate} body, or plain text with a standard reason phrase, never HTML).
 * It carries only what it writes (status, type, bytes, Retry-After, close), so a relayed answer costs one object
 * and no header table until it is written.
 *
 * @param status the HTTP status
 * @param contentType the Content-Type header value
 * @param body the exact body (Content-Length is its length)
 * @param retryAfterSeconds the Retry-After value, or 0 for none
 * @param close whether the connection closes after this answer (draining, or a refused body left unread)
 */
record BoshAnswer(int status, String contentType, byte[] body, int retryAfterSeconds, boolean close)
        implements ServerResponse {

    static BoshAnswer text(int status, String text) {
        return new BoshAnswer(status, BoshAnswers.TEXT, text.getBytes(StandardCharsets.UTF_8), 0, false);
    }

    BoshAnswer closing() {
        return close ? this : new BoshAnswer(status, contentType, body, retryAfterSeconds, true);
    }

    @Override
    public HttpStatusCode statusCode() {
        return HttpStatusCode.valueOf(status);
    }

    @Override
    public HttpHeaders headers() {
        HttpHeaders headers = new HttpHeaders();
        addHeaders(headers);
        return HttpHeaders.readOnlyHttpHeaders(headers);
    }

    @Override
    public MultiValueMap<String, ResponseCookie> cookies() {
        return new LinkedMultiValueMap<>(0);
    }

    @Override
    public Mono<Void> writeTo(ServerWebExchange exchange, Context context) {
        return write(exchange.getResponse());
    }

    /** Writes this answer as the whole response; headers set earlier (CORS) stay. */
    Mono<Void> write(ServerHttpResponse response) {
        response.setStatusCode(statusCode());
        addHeaders(response.getHeaders());
        DataBuffer buffer = response.bufferFactory().wrap(body);
        return response.writeWith(Mono.just(buffer));
    }

    private void addHeaders(HttpHeaders headers) {
        headers.set(HttpHeaders.CONTENT_TYPE, contentType);
        headers.setContentLength(body.length);
        headers.set(HttpHeaders.CACHE_CONTROL, "no-store");
        if (retryAfterSeconds > 0) {
            headers.set(HttpHeaders.RETRY_AFTER, Integer.toString(retryAfterSeconds));
        }
        if (close) {
            headers.set(HttpHeaders.CONNECTION, "close");
        }
    }
}
