// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import io.megaphone.metrics.EdgeMetrics;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.observation.ObservationPredicate;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import org.springframework.boot.webflux.autoconfigure.WebHttpHandlerBuilderCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.annotation.Order;
import org.springframework.core.env.Environment;
import org.springframework.http.server.PathContainer;
import org.springframework.http.server.reactive.observation.ServerRequestObservationContext;
import org.springframework.web.cors.CorsConfiguration;
import org.springframework.web.cors.reactive.UrlBasedCorsConfigurationSource;
import org.springframework.http.HttpMethod;
import org.springframework.web.reactive.function.server.RequestPredicate;
import org.springframework.web.reactive.function.server.RequestPredicates;
import org.springframework.web.reactive.function.server.RouterFunction;
import org.springframework.web.reactive.function.server.RouterFunctions;
import org.springframework.web.reactive.function.server.ServerResponse;
import org.springframework.web.reactive.handler.WebFluxResponseStatusExceptionHandler;

/**
 * Wires the BOSH edge into the WebFlux application Spring Boot runs on {@code server.port}: the routes (a
 * functional endpoint per BOSH path, and the demo page; Boot's own static resource mapping is off), CORS, the exception handler that keeps every answer
 * well-formed, the server options of Boot's Reactor Netty server, and the observation filter that leaves the BOSH
 * route to the project's own meters.
 */
@Configuration(proxyBeanMethods = false)
class EdgeConfiguration {

    EdgeConfiguration(Environment environment) {
        String management = environment.getProperty("management.server.port");
        String server = environment.getProperty("server.port", "8080");
        if (management == null || management.isBlank() || management.equals(server) && !"0".equals(server)) {
            throw new IllegalStateException("management.server.port: " + management + " (expected: a port other"
                    + " than server.port " + server + "; the BOSH port serves only BOSH, Actuator needs its own)");
        }
        String forwarded = environment.getProperty("server.forward-headers-strategy", "none");
        if (!"none".equalsIgnoreCase(forwarded.trim())) {
            throw new IllegalStateException("server.forward-headers-strategy: " + forwarded + " (expected: none;"
                    + " it would take X-Forwarded-For and Forwarded from any client. Set"
                    + " megaphone.edge.trusted-proxies and megaphone.edge.forwarded-header instead)");
        }
        if (environment.getProperty("server.http2.enabled", Boolean.class, false)) {
            throw new IllegalStateException("server.http2.enabled: true (expected: false; the BOSH port's idle and"
                    + " slowloris protection, RequestDeadline, works on HTTP/1.1 connections only)");
        }
    }

    @Bean
    BoshHandler boshHandler(MegaphoneProperties properties, LinkPool pool, MeterRegistry registry) {
        return new BoshHandler(properties.edge(), pool, new EdgeMetrics(registry));
    }

    /**
     * POST on each BOSH path is the BOSH endpoint; OPTIONS, GET and HEAD get short answers, other methods 405; CORS
     * around each ({@link BoshCors}). The POST route matches the path as {@link #isBoshPath} does, exactly as a path
     * pattern would, but stores no pattern or URI variables in the exchange's attributes for the whole time the
     * request is held.
     */
    @Bean
    RouterFunction<ServerResponse> boshRoutes(BoshHandler handler, MegaphoneProperties properties) {
        BoshCors cors = boshCors(properties);
        Set<String> bosh = Set.copyOf(properties.edge().paths());
        RequestPredicate boshPost = request -> HttpMethod.POST.equals(BoshCors.method(request))
                && isBoshPath(request.requestPath().pathWithinApplication(), bosh);
        RouterFunctions.Builder routes = RouterFunctions.route().route(boshPost, cors.around(handler::post));
        for (String path : properties.edge().paths()) {
            routes.OPTIONS(path, cors.around(handler::options))
                    .GET(path, cors.around(handler::describe))
                    .HEAD(path, cors.around(handler::describe))
                    .route(RequestPredicates.path(path), cors.around(handler::methodNotAllowed));
        }
        return routes.build();
    }

    /** The demo page ({@code classpath:/static/demo/}), on the BOSH port so it shares the endpoint's origin. */
    @Bean
    RouterFunction<ServerResponse> demoPageRoutes() {
        return new DemoPage().routes();
    }

    /** CORS on the BOSH paths, from {@code megaphone.edge.cors}. */
    static BoshCors boshCors(MegaphoneProperties properties) {
        MegaphoneProperties.Cors cors = properties.edge().cors();
        List<String> origins = cors.allowedOrigins();
        if (origins.contains("*") && cors.allowCredentials()) {
            throw new IllegalStateException("megaphone.edge.cors.allowed-origins: * with allow-credentials: true"
                    + " (expected: the exact origins, browsers refuse * with credentials)");
        }
        CorsConfiguration configuration = new CorsConfiguration();
        configuration.setAllowedOrigins(origins);
        configuration.setAllowCredentials(cors.allowCredentials());
        configuration.setAllowedMethods(List.of("POST", "GET", "OPTIONS"));
        configuration.setAllowedHeaders(List.of("Content-Type"));
        configuration.setMaxAge(cors.maxAge());
        UrlBasedCorsConfigurationSource source = new UrlBasedCorsConfigurationSource();
        properties.edge().paths().forEach(path -> source.registerCorsConfiguration(path, configuration));
        return new BoshCors(source);
    }

    /** Replaces Boot's error handler (which renders HTML error pages for browsers), at its order. */
    @Bean
    @Order(-1)
    EdgeExceptionHandler edgeExceptionHandler() {
        return new EdgeExceptionHandler();
    }

    /**
     * {@link EdgeExceptionHandler} answers every error of the BOSH port, WebFlux's own status errors included, so
     * WebFlux's {@code WebFluxResponseStatusExceptionHandler} behind it never acts, and is removed (each exception
     * handler adds operators to every held request: docs/architecture.md).
     */
    @Bean
    WebHttpHandlerBuilderCustomizer onlyTheEdgeHandlesErrors() {
        return builder -> builder.exceptionHandlers(
                handlers -> handlers.removeIf(handler -> handler instanceof WebFluxResponseStatusExceptionHandler));
    }

    @Bean
    NettyServerCustomizer edgeServerCustomizer(MegaphoneProperties properties, BoshHandler handler) {
        return new EdgeServerCustomizer(properties.edge(), handler.metrics);
    }

    /**
     * Keeps Spring's generic {@code http.server.requests} observation off the BOSH and WebSocket paths only: the
     * edge's own meters ({@code megaphone.edge.*}) cover them, and the observation would add to every held request
     * and open WebSocket (docs/architecture.md).
     */
    @Bean
    ObservationPredicate boshRequestsNotObserved(MegaphoneProperties properties) {
        List<String> paths = new java.util.ArrayList<>(properties.edge().paths());
        paths.add(properties.edge().websocket().path()); // an upgraded exchange lasts as long as its WebSocket
        return boshRequestsNotObserved(paths);
    }

    static ObservationPredicate boshRequestsNotObserved(Collection<String> paths) {
        Set<String> bosh = Set.copyOf(paths);
        return (name, context) -> !(context instanceof ServerRequestObservationContext server
                && server.getCarrier() != null
                && isBoshPath(server.getCarrier().getPath().pathWithinApplication(), bosh));
    }

    /**
     * Whether routing takes this path to a BOSH route: it matches path segments percent-decoded and without
     * matrix parameters ({@code /http-bind;x=1}, {@code /http%2Dbind}), so those are decoded here too, only when
     * the raw path has any.
     */
    static boolean isBoshPath(PathContainer path, Set<String> bosh) {
        String raw = path.value();
        if (bosh.contains(raw)) {
            return true;
        }
        if (raw.indexOf(';') < 0 && raw.indexOf('%') < 0) {
            return false;
        }
        StringBuilder decoded = new StringBuilder(raw.length());
        for (PathContainer.Element element : path.elements()) {
            decoded.append(element instanceof PathContainer.PathSegment segment
                    ? segment.valueToMatch() : element.value());
        }
        return bosh.contains(decoded.toString());
    }
}
