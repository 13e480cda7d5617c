// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The requests in flight on one link by deadline, so that expiring them costs what expires, not what is held: a
 * timing wheel of {@value #BUCKETS} buckets of {@link #TICK_NANOS}, each request in the bucket of its deadline.
 * A bucket is a doubly linked list through the requests themselves ({@link PendingRequest#prevInBucket},
 * {@link PendingRequest#nextInBucket}): no node object per request, and a request answered early leaves its bucket
 * in O(1), so the wheel keeps nothing alive.
 *
 * <p>Not a FIFO: a request re-sent after its link died keeps its first deadline, earlier than those of the
 * requests already on its new link.
 *
 * <p>Event loop of the link only.
 */
final class DeadlineWheel {

    static final long TICK_NANOS = TimeUnit.MILLISECONDS.toNanos(250);
    /**
     * 2048 ticks (512 s) cover the upstream timeout (310 s by default) in one lap, so a bucket holds only requests
     * due within its tick. A longer timeout still works: requests of a later lap are skipped until theirs.
     */
    static final int BUCKETS = 2048;

    private final PendingRequest[] heads = new PendingRequest[BUCKETS];
    /** The tick whose bucket {@link #expire} visits first: the one of its last call (it may hold later deadlines). */
    private long firstTick;

    DeadlineWheel(long nowNanos) {
        firstTick = Math.floorDiv(nowNanos, TICK_NANOS);
    }

    /** Adds a request whose deadline has not passed yet (one that has would wait a whole lap). */
    void add(PendingRequest request) {
        int bucket = bucket(request.deadlineNanos);
        PendingRequest head = heads[bucket];
        request.prevInBucket = null;
        request.nextInBucket = head;
        if (head != null) {
            head.prevInBucket = request;
        }
        heads[bucket] = request;
    }

    /** Removes a request; nothing when it is not in the wheel. */
    void remove(PendingRequest request) {
        PendingRequest prev = request.prevInBucket;
        PendingRequest next = request.nextInBucket;
        if (prev != null) {
            prev.nextInBucket = next;
        } else {
            int bucket = bucket(request.deadlineNanos);
            if (heads[bucket] != request) {
                return;
            }
            heads[bucket] = next;
        }
        if (next != null) {
            next.prevInBucket = prev;
        }
        request.prevInBucket = null;
        request.nextInBucket = null;
    }

    /**
     * Removes every request whose deadline is before {@code nowNanos} and hands it to {@code expired}. Visits only
     * the buckets of the ticks since the last call, up to the current one.
     *
     * @return how many expired
     */
    int expire(long nowNanos, Consumer<PendingRequest> expired) {
        long currentTick = Math.floorDiv(nowNanos, TICK_NANOS);
        long tick = Math.max(firstTick, currentTick - BUCKETS + 1);
        int count = 0;
        for (; tick <= currentTick; tick++) {
            PendingRequest request = heads[(int) Math.floorMod(tick, BUCKETS)];
            while (request != null) {
                PendingRequest next = request.nextInBucket;
                if (nowNanos - request.deadlineNanos > 0) {
                    remove(request);
                    expired.accept(request);
                    count++;
                }
                request = next;
            }
        }
        firstTick = currentTick;
        return count;
    }

    /** Forgets every request (the link closed; its requests go elsewhere). */
    void clear(Iterable<PendingRequest> requests) {
        for (PendingRequest request : requests) {
            request.prevInBucket = null;
            request.nextInBucket = null;
        }
        Arrays.fill(heads, null);
    }

    private static int bucket(long deadlineNanos) {
        return (int) Math.floorMod(Math.floorDiv(deadlineNanos, TICK_NANOS), BUCKETS);
    }
}
