package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.netty.handler.codec.http.HttpHeaderNames;
import java.util.List;
import java.util.Set;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;

/**
 * CORS for browser BOSH clients on other origins. With credentials allowed, the answer names the request's exact
 * origin (browsers refuse {@code *} with credentials); startup refuses {@code *} with credentials.
 */
final class CorsPolicy {

    private final boolean anyOrigin;
    private final Set<String> origins;
    private final boolean credentials;
    private final String maxAgeSeconds;

    CorsPolicy(MegaphoneProperties.Cors cors) {
        List<String> allowed = cors.allowedOrigins();
        this.anyOrigin = allowed.contains("*");
        this.origins = Set.copyOf(allowed);
        this.credentials = cors.allowCredentials();
        this.maxAgeSeconds = Long.toString(cors.maxAge().toSeconds());
        if (anyOrigin && credentials) {
            throw new IllegalStateException("megaphone.edge.cors.allowed-origins: * with allow-credentials: true"
                    + " (expected: the exact origins, browsers refuse * with credentials)");
        }
    }

    /** Adds the CORS headers an answer to this request needs; none when it has no allowed Origin. */
    void apply(HttpServerRequest request, HttpServerResponse response) {
        String origin = request.requestHeaders().get(HttpHeaderNames.ORIGIN);
        if (origin == null) {
            return;
        }
        if (credentials || !anyOrigin) {
            if (!origins.contains(origin)) {
                return;
            }
            response.header(HttpHeaderNames.ACCESS_CONTROL_ALLOW_ORIGIN, origin).header(HttpHeaderNames.VARY, "Origin");
            if (credentials) {
                response.header(HttpHeaderNames.ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
            }
        } else {
            response.header(HttpHeaderNames.ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        }
    }

    /** The preflight's extra headers. */
    void applyPreflight(HttpServerRequest request, HttpServerResponse response) {
        apply(request, response);
        response.header(HttpHeaderNames.ACCESS_CONTROL_ALLOW_METHODS, "POST, GET, OPTIONS")
                .header(HttpHeaderNames.ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type")
                .header(HttpHeaderNames.ACCESS_CONTROL_MAX_AGE, maxAgeSeconds);
    }
}
