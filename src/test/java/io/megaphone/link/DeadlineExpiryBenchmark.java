// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.util.collection.IntObjectHashMap;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH: one expiry tick of a link holding {@code held} requests, the scan that {@code LinkConnection.expire} did
 * until issue 14 ({@link #scan}: every request in flight, every 250 ms) against the {@link DeadlineWheel}
 * ({@link #wheel}). Deadlines are spread evenly over the 310 s upstream timeout, so each tick about
 * {@code held / 1240} requests expire (806 at 1M): a worst case for the wheel, as real BOSH requests are answered
 * within {@code wait} (60 s) and hardly any expire. Both sides remove what expires from the id map and add as many
 * new requests (due one timeout later), so the held count stays constant; neither writes CANCEL frames. The clock
 * is virtual: each call is the next tick. Run with bench/jmh.sh.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
public class DeadlineExpiryBenchmark {

    private static final long TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(310);

    @Param("1000000")
    int held;

    /**
     * {@code spread}: ids as links allocate them ({@link LinkMultiplexer#requestId}); {@code sequential}: as they did
     * until issue 14, which makes every remove from the id map walk a run of up to all the ids in flight.
     */
    @Param({"spread", "sequential"})
    String ids;

    private IntObjectHashMap<PendingRequest> inflight;
    private DeadlineWheel wheel;
    private long now;
    private int nextId;
    private int expired;
    private final Consumer<PendingRequest> expireOne = this::expireOne;

    @Setup(Level.Trial)
    public void hold() {
        inflight = new IntObjectHashMap<>();
        wheel = new DeadlineWheel(0);
        for (int i = 0; i < held; i++) {
            wheel.add(add(1 + TIMEOUT_NANOS * i / held));
        }
    }

    private PendingRequest add(long deadlineNanos) {
        PendingRequest request = new PendingRequest(null, null, deadlineNanos, null);
        request.id = ids.equals("spread") ? LinkMultiplexer.requestId(++nextId) : ++nextId;
        inflight.put(request.id, request);
        return request;
    }

    /** What LinkConnection.expire did before the wheel. */
    @Benchmark
    public int scan() {
        now += DeadlineWheel.TICK_NANOS;
        List<PendingRequest> due = null;
        for (PendingRequest request : inflight.values()) {
            if (now - request.deadlineNanos > 0) {
                if (due == null) {
                    due = new ArrayList<>();
                }
                due.add(request);
            }
        }
        if (due == null) {
            return 0;
        }
        for (PendingRequest request : due) {
            inflight.remove(request.id);
            add(now + TIMEOUT_NANOS);
        }
        return due.size();
    }

    @Benchmark
    public int wheel() {
        now += DeadlineWheel.TICK_NANOS;
        expired = 0;
        wheel.expire(now, expireOne);
        for (int i = 0; i < expired; i++) {
            wheel.add(add(now + TIMEOUT_NANOS));
        }
        return expired;
    }

    private void expireOne(PendingRequest request) {
        inflight.remove(request.id);
        expired++;
    }
}
