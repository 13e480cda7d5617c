package io.megaphone.metrics;

import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkStats;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.MeterBinder;
import org.springframework.stereotype.Component;

/**
 * Watches the link pool: per-link state, requests in flight, heartbeat round trip, connects and frames, and the
 * pool-wide held requests and re-sends. The {@code link} tag is {@code host:port#index} of a configured link, so
 * its values are bounded by the configuration.
 */
@Component
class LinkMetricsBinder implements MeterBinder {

    private final LinkPool pool;

    LinkMetricsBinder(LinkPool pool) {
        this.pool = pool;
    }

    @Override
    public void bindTo(MeterRegistry registry) {
        Gauge.builder(MegaphoneMeters.EDGE_HELD.meterName(), pool, LinkPool::inflight)
                .description(MegaphoneMeters.EDGE_HELD.description()).baseUnit(MegaphoneMeters.EDGE_HELD.baseUnit())
                .register(registry);
        FunctionCounter.builder(MegaphoneMeters.LINK_RESENDS.meterName(), pool, LinkPool::resends)
                .description(MegaphoneMeters.LINK_RESENDS.description()).register(registry);
        FunctionCounter.builder(MegaphoneMeters.EDGE_REQUESTS.meterName(), pool, LinkPool::clientGone)
                .description(MegaphoneMeters.EDGE_REQUESTS.description())
                .baseUnit(MegaphoneMeters.EDGE_REQUESTS.baseUnit())
                .tag("outcome", Outcome.CLIENT_GONE.tag()).register(registry);
        for (int i = 0; i < pool.linkCount(); i++) {
            int index = i;
            String link = pool.linkName(i);
            Gauge.builder(MegaphoneMeters.LINK_UP.meterName(), pool, p -> p.linkUp(index) ? 1 : 0)
                    .description(MegaphoneMeters.LINK_UP.description()).tag("link", link).register(registry);
            Gauge.builder(MegaphoneMeters.LINK_INFLIGHT.meterName(), pool, p -> p.linkInflight(index))
                    .description(MegaphoneMeters.LINK_INFLIGHT.description()).tag("link", link).register(registry);
            Gauge.builder(MegaphoneMeters.LINK_RTT.meterName(), pool, p -> p.linkRttSeconds(index))
                    .description(MegaphoneMeters.LINK_RTT.description()).baseUnit("seconds").tag("link", link)
                    .register(registry);
            LinkStats stats = pool.linkStats(i);
            FunctionCounter.builder(MegaphoneMeters.LINK_CONNECTS.meterName(), stats, LinkStats::connects)
                    .description(MegaphoneMeters.LINK_CONNECTS.description()).tag("link", link).register(registry);
            for (int type = 0; type < LinkStats.TYPES.length; type++) {
                int t = type;
                FunctionCounter.builder(MegaphoneMeters.LINK_FRAMES.meterName(), stats, s -> s.sent(t))
                        .description(MegaphoneMeters.LINK_FRAMES.description())
                        .tags("link", link, "direction", "out", "type", LinkStats.TYPES[type]).register(registry);
                FunctionCounter.builder(MegaphoneMeters.LINK_FRAMES.meterName(), stats, s -> s.received(t))
                        .description(MegaphoneMeters.LINK_FRAMES.description())
                        .tags("link", link, "direction", "in", "type", LinkStats.TYPES[type]).register(registry);
            }
        }
    }
}
