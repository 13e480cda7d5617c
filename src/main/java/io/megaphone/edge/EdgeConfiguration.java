package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import io.megaphone.metrics.EdgeMetrics;
import io.micrometer.core.instrument.MeterRegistry;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;
import org.springframework.scheduling.annotation.Scheduled;

/** Wires the BOSH edge: its shared state and the Netty server that serves it on {@code server.port}. */
@Configuration(proxyBeanMethods = false)
class EdgeConfiguration {

    @Bean
    BoshEdge boshEdge(MegaphoneProperties properties, LinkPool pool, MeterRegistry registry) {
        return new BoshEdge(properties.edge(), pool, new EdgeMetrics(registry));
    }

    @Bean
    BoshServerFactory boshServerFactory(BoshEdge edge, MegaphoneProperties properties, Environment environment) {
        String management = environment.getProperty("management.server.port");
        String server = environment.getProperty("server.port", "8080");
        if (management == null || management.isBlank() || management.equals(server) && !"0".equals(server)) {
            throw new IllegalStateException("management.server.port: " + management + " (expected: a port other"
                    + " than server.port " + server + "; the BOSH port serves only BOSH, Actuator needs its own)");
        }
        int threads = properties.edge().ioThreads();
        return new BoshServerFactory(edge, threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
    }

    @Bean
    IdleClientSweeper idleClientSweeper(BoshEdge edge) {
        return new IdleClientSweeper(edge);
    }

    /** Forgets idle per-client session buckets every 10 s, so their map stays small. */
    static final class IdleClientSweeper {
        private final BoshEdge edge;

        IdleClientSweeper(BoshEdge edge) {
            this.edge = edge;
        }

        @Scheduled(fixedDelay = 10_000)
        void sweep() {
            edge.admission.forgetIdleClients();
        }
    }
}
