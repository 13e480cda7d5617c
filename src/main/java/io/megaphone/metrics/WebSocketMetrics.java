// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntSupplier;

/**
 * The WebSocket edge's meters ({@code megaphone.edge.websocket.*}), registered once: the open-streams gauge, opens by
 * result, closes by reason (both from closed sets), credit stalls by direction, and bytes both ways.
 */
public final class WebSocketMetrics {

    /** Handshake results, the {@code result} tag values. */
    public static final String[] RESULTS = {"opened", "bad_origin", "bad_subprotocol", "draining", "unavailable",
            "session_rate", "session_rate_per_client", "stream_limit"};
    /** Close reasons, the {@code reason} tag values. */
    public static final String[] REASONS = {"client", "server", "link_lost", "drain", "too_big", "binary", "error",
            "ping_timeout"};

    private final Map<String, Counter> opens = new ConcurrentHashMap<>();
    private final Map<String, Counter> closes = new ConcurrentHashMap<>();
    private final Counter upstreamStalls;
    private final Counter downstreamStalls;
    private final Counter received;
    private final Counter sent;

    public WebSocketMetrics(MeterRegistry registry, IntSupplier openStreams) {
        for (String result : RESULTS) {
            opens.put(result, Counter.builder(MegaphoneMeters.EDGE_WS_OPENS.meterName())
                    .description(MegaphoneMeters.EDGE_WS_OPENS.description()).tag("result", result).register(registry));
        }
        for (String reason : REASONS) {
            closes.put(reason, Counter.builder(MegaphoneMeters.EDGE_WS_CLOSES.meterName())
                    .description(MegaphoneMeters.EDGE_WS_CLOSES.description()).tag("reason", reason)
                    .register(registry));
        }
        upstreamStalls = stalls(registry, "upstream");
        downstreamStalls = stalls(registry, "downstream");
        received = bytes(registry, MegaphoneMeters.EDGE_WS_RECEIVED_BYTES);
        sent = bytes(registry, MegaphoneMeters.EDGE_WS_SENT_BYTES);
        // Micrometer holds a gauge's object weakly, and nothing else holds this supplier (a method reference made
        // for the call): without a strong reference the gauge reads NaN after the first GC.
        Gauge.builder(MegaphoneMeters.EDGE_WS_OPEN.meterName(), openStreams, s -> s.getAsInt())
                .strongReference(true)
                .description(MegaphoneMeters.EDGE_WS_OPEN.description())
                .baseUnit(MegaphoneMeters.EDGE_WS_OPEN.baseUnit()).register(registry);
    }

    private static Counter stalls(MeterRegistry registry, String direction) {
        return Counter.builder(MegaphoneMeters.EDGE_WS_CREDIT_STALLS.meterName())
                .description(MegaphoneMeters.EDGE_WS_CREDIT_STALLS.description()).tag("direction", direction)
                .register(registry);
    }

    private static Counter bytes(MeterRegistry registry, MegaphoneMeters meter) {
        return Counter.builder(meter.meterName()).description(meter.description()).baseUnit(meter.baseUnit())
                .register(registry);
    }

    /** Counts a handshake with one of {@link #RESULTS}. */
    public void opened(String result) {
        counter(opens, result).increment();
    }

    /** Counts a closed stream with one of {@link #REASONS}. */
    public void closed(String reason) {
        counter(closes, reason).increment();
    }

    private static Counter counter(Map<String, Counter> counters, String tag) {
        Counter counter = counters.get(tag);
        if (counter == null) {
            throw new IllegalArgumentException("tag: " + tag + " (expected: one of " + counters.keySet() + ")");
        }
        return counter;
    }

    /** A client's message waited for ejabberd's credit. */
    public void upstreamStall() {
        upstreamStalls.increment();
    }

    /** A message of ejabberd waited for its client to take it. */
    public void downstreamStall() {
        downstreamStalls.increment();
    }

    public void received(int bytes) {
        received.increment(bytes);
    }

    public void sent(int bytes) {
        sent.increment(bytes);
    }
}
