// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.web.cors.CorsConfiguration;
import org.springframework.web.cors.reactive.CorsConfigurationSource;
import org.springframework.web.cors.reactive.CorsUtils;
import org.springframework.web.reactive.function.server.HandlerFunction;
import org.springframework.web.reactive.function.server.ServerRequest;
import org.springframework.web.reactive.function.server.ServerResponse;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

/**
 * CORS of the BOSH routes, applied by WebFlux's handler mapping to handler functions that are a
 * {@link CorsConfigurationSource} (no {@code WebFilter}, so no operator is added to the exchange): a preflight is
 * answered by the mapping, a CORS request from an origin not allowed gets 403 and is not handled (nothing is
 * forwarded), an allowed one gets its CORS headers before its handler runs. A request without {@code Origin} gets no
 * configuration, so nothing is added to its answer (answers are {@code no-store}: no {@code Vary} needed).
 */
final class BoshCors {

    private final CorsConfigurationSource source;

    BoshCors(CorsConfigurationSource source) {
        this.source = source;
    }

    HandlerFunction<ServerResponse> around(HandlerFunction<ServerResponse> handler) {
        return new CorsHandler(handler, source);
    }

    /** The method a route should match: for a preflight, the one it asks for (as Spring's method predicates do). */
    static HttpMethod method(ServerRequest request) {
        ServerHttpRequest http = request.exchange().getRequest();
        if (CorsUtils.isPreFlightRequest(http)) {
            String asked = http.getHeaders().getFirst(HttpHeaders.ACCESS_CONTROL_REQUEST_METHOD);
            return asked == null ? request.method() : HttpMethod.valueOf(asked);
        }
        return request.method();
    }

    private record CorsHandler(HandlerFunction<ServerResponse> handler, CorsConfigurationSource source)
            implements HandlerFunction<ServerResponse>, CorsConfigurationSource {

        @Override
        public Mono<ServerResponse> handle(ServerRequest request) {
            return handler.handle(request);
        }

        @Override
        public CorsConfiguration getCorsConfiguration(ServerWebExchange exchange) {
            return CorsUtils.isCorsRequest(exchange.getRequest()) ? source.getCorsConfiguration(exchange) : null;
        }
    }
}
