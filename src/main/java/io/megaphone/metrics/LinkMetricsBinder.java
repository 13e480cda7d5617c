// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkStats;
import io.megaphone.link.LinkView;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.springframework.stereotype.Component;

/**
 * Watches the link pool: per-link state, requests in flight, heartbeat round trip, connects, stalls and frames, and the
 * pool-wide held requests and re-sends. The {@code link} tag is {@code host:port#index} of a link, so its values
 * are bounded by the configured or discovered nodes; a link's meters go when its node goes.
 */
@Component
class LinkMetricsBinder implements MeterBinder {

    /** Loopback to cross-region: 100 µs to 1 s. */
    private static final Duration[] RTT_BUCKETS = {
        Duration.ofNanos(100_000), Duration.ofNanos(250_000), Duration.ofNanos(500_000), Duration.ofMillis(1),
        Duration.ofMillis(2), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(25),
        Duration.ofMillis(50), Duration.ofMillis(100), Duration.ofMillis(250), Duration.ofMillis(1000)};

    private final LinkPool pool;
    private final Map<LinkView, List<Meter>> perLink = new ConcurrentHashMap<>();

    LinkMetricsBinder(LinkPool pool) {
        this.pool = pool;
    }

    @Override
    public void bindTo(MeterRegistry registry) {
        Gauge.builder(MegaphoneMeters.EDGE_HELD.meterName(), pool, LinkPool::inflight)
                .description(MegaphoneMeters.EDGE_HELD.description()).baseUnit(MegaphoneMeters.EDGE_HELD.baseUnit())
                .register(registry);
        Gauge.builder(MegaphoneMeters.LINK_CAPACITY.meterName(), pool, LinkPool::capacity)
                .description(MegaphoneMeters.LINK_CAPACITY.description())
                .baseUnit(MegaphoneMeters.LINK_CAPACITY.baseUnit()).register(registry);
        FunctionCounter.builder(MegaphoneMeters.LINK_RESENDS.meterName(), pool, LinkPool::resendsLinkClosed)
                .description(MegaphoneMeters.LINK_RESENDS.description()).tag("reason", "link_closed")
                .register(registry);
        FunctionCounter.builder(MegaphoneMeters.LINK_RESENDS.meterName(), pool, LinkPool::resendsRefused)
                .description(MegaphoneMeters.LINK_RESENDS.description()).tag("reason", "refused")
                .register(registry);
        FunctionCounter.builder(MegaphoneMeters.EDGE_REQUESTS.meterName(), pool, LinkPool::clientGone)
                .description(MegaphoneMeters.EDGE_REQUESTS.description())
                .baseUnit(MegaphoneMeters.EDGE_REQUESTS.baseUnit())
                .tag("outcome", Outcome.CLIENT_GONE.tag()).register(registry);
        pool.addMembershipListener(new LinkPool.MembershipListener() {
            @Override
            public void added(LinkView link) {
                perLink.put(link, bindLink(registry, link));
            }

            @Override
            public void removed(LinkView link) {
                List<Meter> meters = perLink.remove(link);
                if (meters != null) {
                    meters.forEach(registry::remove);
                }
            }
        });
    }

    private static List<Meter> bindLink(MeterRegistry registry, LinkView link) {
        String name = link.name();
        List<Meter> meters = new ArrayList<>();
        meters.add(Gauge.builder(MegaphoneMeters.LINK_UP.meterName(), link, l -> l.up() ? 1 : 0)
                .description(MegaphoneMeters.LINK_UP.description()).tag("link", name).register(registry));
        meters.add(Gauge.builder(MegaphoneMeters.LINK_INFLIGHT.meterName(), link, LinkView::inflight)
                .description(MegaphoneMeters.LINK_INFLIGHT.description()).tag("link", name).register(registry));
        Timer rtt = Timer.builder(MegaphoneMeters.LINK_RTT.meterName())
                .description(MegaphoneMeters.LINK_RTT.description()).serviceLevelObjectives(RTT_BUCKETS)
                .tag("link", name).register(registry);
        meters.add(rtt);
        LinkStats stats = link.stats();
        stats.recordRtt(nanos -> rtt.record(nanos, TimeUnit.NANOSECONDS));
        meters.add(FunctionCounter.builder(MegaphoneMeters.LINK_CONNECTS.meterName(), stats, LinkStats::connects)
                .description(MegaphoneMeters.LINK_CONNECTS.description()).tag("link", name).register(registry));
        meters.add(FunctionCounter.builder(MegaphoneMeters.LINK_STALLS.meterName(), stats, LinkStats::stalls)
                .description(MegaphoneMeters.LINK_STALLS.description()).tag("link", name).register(registry));
        for (int type = 0; type < LinkStats.TYPES.length; type++) {
            int t = type;
            meters.add(FunctionCounter.builder(MegaphoneMeters.LINK_FRAMES.meterName(), stats, s -> s.sent(t))
                    .description(MegaphoneMeters.LINK_FRAMES.description())
                    .tags("link", name, "direction", "out", "type", LinkStats.TYPES[type]).register(registry));
            meters.add(FunctionCounter.builder(MegaphoneMeters.LINK_FRAMES.meterName(), stats, s -> s.received(t))
                    .description(MegaphoneMeters.LINK_FRAMES.description())
                    .tags("link", name, "direction", "in", "type", LinkStats.TYPES[type]).register(registry));
        }
        return meters;
    }
}
