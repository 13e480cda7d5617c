// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.lang.ref.WeakReference;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntSupplier;
import org.junit.jupiter.api.Test;

class WebSocketMetricsTest {

    @Test
    void theOpenStreamsGaugeStillReadsTheSupplierAfterTheCallerDroppedItAndAGcRan() throws InterruptedException {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        AtomicInteger open = new AtomicInteger(3);
        IntSupplier supplier = open::get;
        WeakReference<IntSupplier> watched = new WeakReference<>(supplier);
        new WebSocketMetrics(registry, supplier);
        supplier = null;
        // The supplier must stay reachable through the gauge: a GC that could collect it must not.
        for (int i = 0; i < 20 && watched.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertThat(watched.get()).as("the gauge holds its supplier").isNotNull();
        open.set(5);
        assertThat(registry.get(MegaphoneMeters.EDGE_WS_OPEN.meterName()).gauge().value()).isEqualTo(5.0);
    }
}
