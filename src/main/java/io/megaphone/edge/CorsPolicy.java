package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaders;
import java.util.List;
import java.util.Set;

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

    /** Adds the CORS headers an answer needs for a request from {@code origin} (none when it is not allowed). */
    void apply(String origin, HttpHeaders answer) {
        if (origin == null) {
            return;
        }
        if (credentials || !anyOrigin) {
            if (!origins.contains(origin)) {
                return;
            }
            answer.set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_ORIGIN, origin).set(HttpHeaderNames.VARY, "Origin");
            if (credentials) {
                answer.set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
            }
        } else {
            answer.set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_ORIGIN, "*");
        }
    }

    /** The preflight's headers. */
    void applyPreflight(String origin, HttpHeaders answer) {
        apply(origin, answer);
        answer.set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_METHODS, "POST, GET, OPTIONS")
                .set(HttpHeaderNames.ACCESS_CONTROL_ALLOW_HEADERS, "Content-Type")
                .set(HttpHeaderNames.ACCESS_CONTROL_MAX_AGE, maxAgeSeconds);
    }
}
