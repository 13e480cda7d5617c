// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;

/**
 * The edge's meters, registered once so the hot path only increments: one counter and one timer per
 * {@link Outcome}, byte counters, terminate conditions from a closed set.
 */
public final class EdgeMetrics {

    /** XEP-0124 / XEP-0206 terminate conditions; anything else is counted as "other". */
    static final Set<String> CONDITIONS = Set.of("bad-request", "host-gone", "host-unknown", "improper-addressing",
            "internal-server-error", "item-not-found", "other-request", "policy-violation",
            "remote-connection-failed", "remote-stream-error", "see-other-uri", "system-shutdown",
            "undefined-condition", "none");

    private static final Duration[] LONG_POLL_BUCKETS = {
        Duration.ofMillis(1), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(50),
        Duration.ofMillis(100), Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofSeconds(5),
        Duration.ofSeconds(10), Duration.ofSeconds(30), Duration.ofSeconds(60), Duration.ofSeconds(120),
        Duration.ofSeconds(300)};

    private final Map<Outcome, Counter> requests = new EnumMap<>(Outcome.class);
    private final Map<Outcome, Timer> durations = new EnumMap<>(Outcome.class);
    private final Map<String, Counter> terminates = new HashMap<>();
    private final Counter received;
    private final Counter sent;
    private final Counter sessionCreations;
    private final MeterRegistry registry;
    private final LongAdder connectionsOpened = new LongAdder();
    private final LongAdder connectionsClosed = new LongAdder();

    public EdgeMetrics(MeterRegistry registry) {
        this.registry = registry;
        for (Outcome outcome : Outcome.values()) {
            if (outcome == Outcome.CLIENT_GONE) {
                continue; // counted where it happens, in the link pool (LinkMetricsBinder)
            }
            requests.put(outcome, Counter.builder(MegaphoneMeters.EDGE_REQUESTS.meterName())
                    .description(MegaphoneMeters.EDGE_REQUESTS.description())
                    .baseUnit(MegaphoneMeters.EDGE_REQUESTS.baseUnit())
                    .tag("outcome", outcome.tag()).register(registry));
            durations.put(outcome, Timer.builder(MegaphoneMeters.EDGE_REQUEST_DURATION.meterName())
                    .description(MegaphoneMeters.EDGE_REQUEST_DURATION.description())
                    .serviceLevelObjectives(LONG_POLL_BUCKETS)
                    .tag("outcome", outcome.tag()).register(registry));
        }
        for (String condition : CONDITIONS) {
            terminates.put(condition, terminateCounter(condition));
        }
        terminates.put("other", terminateCounter("other"));
        received = bytes(MegaphoneMeters.EDGE_RECEIVED_BYTES);
        sent = bytes(MegaphoneMeters.EDGE_SENT_BYTES);
        sessionCreations = Counter.builder(MegaphoneMeters.EDGE_SESSION_CREATIONS.meterName())
                .description(MegaphoneMeters.EDGE_SESSION_CREATIONS.description()).register(registry);
        FunctionCounter.builder(MegaphoneMeters.EDGE_CONNECTIONS_OPENED.meterName(), connectionsOpened,
                        LongAdder::sum).description(MegaphoneMeters.EDGE_CONNECTIONS_OPENED.description())
                .baseUnit(MegaphoneMeters.EDGE_CONNECTIONS_OPENED.baseUnit()).register(registry);
        FunctionCounter.builder(MegaphoneMeters.EDGE_CONNECTIONS_CLOSED.meterName(), connectionsClosed,
                        LongAdder::sum).description(MegaphoneMeters.EDGE_CONNECTIONS_CLOSED.description())
                .baseUnit(MegaphoneMeters.EDGE_CONNECTIONS_CLOSED.baseUnit()).register(registry);
        Gauge.builder(MegaphoneMeters.EDGE_CONNECTIONS_ACTIVE.meterName(), this, EdgeMetrics::activeConnections)
                .description(MegaphoneMeters.EDGE_CONNECTIONS_ACTIVE.description())
                .baseUnit(MegaphoneMeters.EDGE_CONNECTIONS_ACTIVE.baseUnit()).register(registry);
    }

    /** A client connection was accepted. */
    public void connectionOpened() {
        connectionsOpened.increment();
    }

    /** A client connection closed. */
    public void connectionClosed() {
        connectionsClosed.increment();
    }

    double activeConnections() {
        return Math.max(0, connectionsOpened.sum() - connectionsClosed.sum());
    }

    private Counter terminateCounter(String condition) {
        return Counter.builder(MegaphoneMeters.BOSH_TERMINATES.meterName())
                .description(MegaphoneMeters.BOSH_TERMINATES.description())
                .tag("condition", condition).register(registry);
    }

    private Counter bytes(MegaphoneMeters meter) {
        return Counter.builder(meter.meterName()).description(meter.description()).baseUnit(meter.baseUnit())
                .register(registry);
    }

    /** Counts a finished request and its duration since {@code startNanos}. */
    public void finished(Outcome outcome, long startNanos) {
        requests.get(outcome).increment();
        durations.get(outcome).record(System.nanoTime() - startNanos, TimeUnit.NANOSECONDS);
    }

    public void received(int bytes) {
        received.increment(bytes);
    }

    public void sent(int bytes) {
        sent.increment(bytes);
    }

    public void sessionCreation() {
        sessionCreations.increment();
    }

    /** Counts a terminate answer; {@code condition} may be null (a terminate without one). */
    public void terminate(String condition) {
        String key = condition == null ? "none" : condition;
        terminates.getOrDefault(key, terminates.get("other")).increment();
    }

    /** A counter of terminates sent to ejabberd for sessions the edge ended, tag {@code result}. */
    public Counter sessionEnd(String result) {
        return Counter.builder(MegaphoneMeters.EDGE_SESSION_ENDS.meterName())
                .description(MegaphoneMeters.EDGE_SESSION_ENDS.description())
                .baseUnit(MegaphoneMeters.EDGE_SESSION_ENDS.baseUnit())
                .tag("result", result).register(registry);
    }

    /** A rejection counter for admission control, tag {@code reason}. */
    public Counter rejection(String reason) {
        return Counter.builder(MegaphoneMeters.ADMISSION_REJECTED.meterName())
                .description(MegaphoneMeters.ADMISSION_REJECTED.description())
                .tag("reason", reason).register(registry);
    }
}
