// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.HandshakeProof;
import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkSettings;
import io.megaphone.metrics.EdgeMetrics;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.springframework.boot.availability.AvailabilityChangeEvent;
import org.springframework.boot.availability.ReadinessState;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** A drain is final: started again after a stop, the ECM stays draining and never reports itself ready. */
class EdgeDrainTest {

    @Test
    void startedAgainAfterADrainTheEcmStaysDrainingAndNotReady() {
        MegaphoneProperties properties = new Binder(new MapConfigurationPropertySource(Map.of(
                "megaphone.edge.drain-delay", "0s", "megaphone.edge.drain-timeout", "1s")))
                .bindOrCreate("megaphone", MegaphoneProperties.class);
        LinkSettings settings = new LinkSettings(new HandshakeProof(
                "drain-secret-drain-secret-drain-secret".getBytes(StandardCharsets.UTF_8)), "drain-ecm",
                Duration.ofSeconds(15), Duration.ofSeconds(2), 1 << 20);
        try (LinkPool pool = new LinkPool(List.of(), 1, settings, Duration.ofSeconds(30), Duration.ofMillis(20),
                Duration.ofMillis(200), 1)) {
            pool.start();
            BoshHandler edge = new BoshHandler(properties.edge(), pool, new EdgeMetrics(new SimpleMeterRegistry()));
            List<Object> readiness = new CopyOnWriteArrayList<>();
            EdgeDrain drain = new EdgeDrain(event -> {
                if (event instanceof AvailabilityChangeEvent<?> change) {
                    readiness.add(change.getState());
                }
            }, edge, pool, properties, new org.springframework.beans.factory.support.StaticListableBeanFactory()
                    .getBeanProvider(XmppWebSocketService.class));
            drain.start();

            drain.stop();
            drain.start();

            assertThat(readiness).containsExactly(ReadinessState.REFUSING_TRAFFIC);
            assertThat(edge.draining()).isTrue();
            assertThat(drain.isRunning()).isTrue();
        }
    }
}
