// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The open-streams gauge reads its supplier after garbage collections (Micrometer holds gauge objects weakly). */
class WebSocketMetricsGaugeTest {

    @Test
    void theOpenStreamsGaugeStillReadsTheStreamsAfterGarbageCollections() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        List<Object> open = new ArrayList<>(List.of("a", "b", "c"));
        new WebSocketMetrics(registry, open::size); // as XmppWebSocketService passes it: a method reference

        for (int i = 0; i < 5; i++) {
            System.gc();
        }
        open.add("d");

        assertThat(registry.get(MegaphoneMeters.EDGE_WS_OPEN.meterName()).gauge().value()).isEqualTo(4.0);
    }
}
