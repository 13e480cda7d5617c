// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.HdrHistogram.Histogram;

/** Counters and latency histograms (microseconds). Touched from the event loop thread only. */
final class Stats {

    static final long HIGHEST_MICROS = 3_600_000_000L;

    /** send → answer of every non-poll request (login steps, message sends, terminate). */
    final Histogram request = new Histogram(HIGHEST_MICROS, 3);
    /** session-create sent → presence answered (the whole login). */
    final Histogram login = new Histogram(HIGHEST_MICROS, 3);
    /** message put in the sender's outbox → found in the receiver's poll answer. */
    final Histogram delivery = new Histogram(HIGHEST_MICROS, 3);
    /** raw mode: intended send time → answer. */
    final Histogram raw = new Histogram(HIGHEST_MICROS, 3);

    final Map<String, Long> errors = new TreeMap<>();
    long usersStarted;
    long usersOnline;
    long usersFailed;
    long usersTerminated;
    long requestsSent;
    long answers;
    long pollsAnswered;
    long resends;
    long pipelined;
    long messagesQueued;
    long messagesSent;
    long messagesReceived;
    /** Received chat messages that no user of this process queued. */
    long messagesUnexpected;
    /** Chat messages received a second (or later) time. */
    long messagesDuplicated;
    /** Exactly-once accounting: messages queued and not yet received ({@link #messageKey}), and those received. */
    final Set<Long> awaitedMessages = new HashSet<>();
    final Set<Long> deliveredMessages = new HashSet<>();
    long connectionsOpened;
    int openConnections;
    int heldPolls;

    static long messageKey(long sender, long seq) {
        return sender << 32 | seq;
    }

    /** A chat message found in a receiver's poll answer: counts it once, or as a duplicate or unexpected. */
    boolean messageReceived(long key) {
        if (awaitedMessages.remove(key)) {
            deliveredMessages.add(key);
            messagesReceived++;
            return true;
        }
        if (deliveredMessages.contains(key)) {
            messagesDuplicated++;
        } else {
            messagesUnexpected++;
        }
        return false;
    }

    void error(String kind) {
        errors.merge(kind, 1L, Long::sum);
    }

    long errorCount() {
        return errors.values().stream().mapToLong(Long::longValue).sum();
    }

    static void record(Histogram h, long nanos) {
        h.recordValue(Math.min(HIGHEST_MICROS, Math.max(0, nanos / 1000)));
    }

    static String summary(Histogram h) {
        if (h.getTotalCount() == 0) {
            return "-";
        }
        return String.format(Locale.ROOT, "p50=%s p99=%s max=%s", ms(h.getValueAtPercentile(50)),
                ms(h.getValueAtPercentile(99)), ms(h.getMaxValue()));
    }

    static String ms(long micros) {
        return String.format(Locale.ROOT, "%.1fms", micros / 1000.0);
    }

    static void histogramJson(Json json, String name, Histogram h) {
        json.object(name);
        json.field("count", h.getTotalCount());
        if (h.getTotalCount() > 0) {
            json.field("unit", "microseconds");
            json.field("min", h.getMinValue());
            json.field("mean", Math.round(h.getMean()));
            for (double p : new double[] {50, 90, 99, 99.9, 99.99}) {
                json.field("p" + (p == Math.rint(p) ? Long.toString((long) p) : Double.toString(p)),
                        h.getValueAtPercentile(p));
            }
            json.field("max", h.getMaxValue());
        }
        json.end();
    }
}
