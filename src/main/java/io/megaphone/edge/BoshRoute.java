package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import io.megaphone.metrics.EdgeMetrics;
import io.micrometer.core.instrument.MeterRegistry;
import org.springframework.scheduling.annotation.Scheduled;
import org.springframework.boot.reactor.netty.NettyRouteProvider;
import org.springframework.stereotype.Component;
import reactor.netty.http.server.HttpServerRoutes;

/**
 * Mounts the BOSH paths as bare Reactor Netty routes in front of WebFlux. The hot path stays out of WebFlux on
 * purpose: a held request costs about 4.6 KB of heap here against about 15 KB through an annotated controller
 * (docs/benchmarks.md). Everything else (Actuator) stays Spring.
 */
@Component
final class BoshRoute implements NettyRouteProvider {

    private final MegaphoneProperties.Edge edge;
    private final BoshHandler handler;

    BoshRoute(MegaphoneProperties properties, LinkPool pool, MeterRegistry registry) {
        this.edge = properties.edge();
        this.handler = new BoshHandler(pool, edge, new EdgeMetrics(registry));
    }

    BoshHandler handler() {
        return handler;
    }

    /** Forgets idle per-client session buckets, so their map stays small. */
    @Scheduled(fixedDelay = 10_000)
    void forgetIdleClients() {
        handler.admission().forgetIdleClients();
    }

    @Override
    public HttpServerRoutes apply(HttpServerRoutes routes) {
        for (String path : edge.paths()) {
            routes = routes.post(path, handler::post)
                    .options(path, handler::preflight)
                    .get(path, handler::describe)
                    .route(request -> path.equals(stripQuery(request.uri())), handler::methodNotAllowed);
        }
        // Anything else on the BOSH port gets a short plain 404, never WebFlux's HTML error page. WebFlux keeps the
        // demo page (static resources under /demo/) and Actuator, for setups that run management on this port.
        return routes.route(request -> {
            String path = stripQuery(request.uri());
            return !path.startsWith("/actuator") && !path.startsWith("/demo/");
        }, handler::notFound);
    }

    private static String stripQuery(String uri) {
        int query = uri.indexOf('?');
        return query < 0 ? uri : uri.substring(0, query);
    }
}
