// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.lang.ref.WeakReference;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class WebSocketMetricsTest {

    @Test
    void theOpenStreamsGaugeStillReadsItsSupplierAfterAGarbageCollection() {
        // The supplier is a fresh lambda that nothing else holds (as XmppWebSocketService's open::size): a gauge that
        // held it weakly, Micrometer's default, read NaN after the first full GC (seen in the container test's scrape).
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        AtomicInteger open = new AtomicInteger(3);
        new WebSocketMetrics(registry, () -> open.get());
        WeakReference<Object> canary = new WeakReference<>(new Object());
        for (int i = 0; i < 50 && canary.get() != null; i++) {
            System.gc();
        }
        assertThat(canary.get()).as("a full GC ran").isNull();

        assertThat(registry.get(MegaphoneMeters.EDGE_WS_OPEN.meterName()).gauge().value()).isEqualTo(3.0);
    }
}
