// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongConsumer;

/** Counters of one link slot, kept across reconnects; read by the metrics binder. */
public final class LinkStats {

    /** Frame type names, the {@code type} tag values of megaphone.link.frames. */
    public static final String[] TYPES = {"hello", "auth", "welcome", "request", "response", "cancel", "ping", "pong",
        "goaway", "error", "stream_open", "stream_opened", "data", "window", "stream_close"};

    private final LongAdder connects = new LongAdder();
    private final LongAdder stalls = new LongAdder();
    /** Where heartbeat round trips go (the metrics binder's histogram); none until one is set. */
    private volatile LongConsumer rttRecorder = nanos -> { };
    private final LongAdder[] sent = adders();
    private final LongAdder[] received = adders();

    private static LongAdder[] adders() {
        LongAdder[] adders = new LongAdder[TYPES.length];
        for (int i = 0; i < adders.length; i++) {
            adders[i] = new LongAdder();
        }
        return adders;
    }

    static int typeIndex(Frame frame) {
        if (frame instanceof Frame.Request) {
            return 3;
        } else if (frame instanceof Frame.Response) {
            return 4;
        } else if (frame instanceof Frame.Cancel) {
            return 5;
        } else if (frame instanceof Frame.Ping) {
            return 6;
        } else if (frame instanceof Frame.Pong) {
            return 7;
        } else if (frame instanceof Frame.GoAway) {
            return 8;
        } else if (frame instanceof Frame.Error) {
            return 9;
        } else if (frame instanceof Frame.Data) {
            return 12;
        } else if (frame instanceof Frame.Window) {
            return 13;
        } else if (frame instanceof Frame.StreamOpen) {
            return 10;
        } else if (frame instanceof Frame.StreamOpened) {
            return 11;
        } else if (frame instanceof Frame.StreamClose) {
            return 14;
        } else if (frame instanceof Frame.Hello) {
            return 0;
        } else if (frame instanceof Frame.Auth) {
            return 1;
        }
        return 2;
    }

    void sent(Frame frame) {
        sent[typeIndex(frame)].increment();
    }

    void received(Frame frame) {
        received[typeIndex(frame)].increment();
    }

    void rtt(long nanos) {
        rttRecorder.accept(nanos);
    }

    /** Every heartbeat round trip of this slot, in nanoseconds, goes to {@code recorder} from now on. */
    public void recordRtt(LongConsumer recorder) {
        this.rttRecorder = recorder;
    }

    void connected() {
        connects.increment();
    }

    public long connects() {
        return connects.sum();
    }

    void stalled() {
        stalls.increment();
    }

    /** Times the link was closed as stalled: nothing read for the stall timeout with requests in flight. */
    public long stalls() {
        return stalls.sum();
    }

    public long sent(int typeIndex) {
        return sent[typeIndex].sum();
    }

    public long received(int typeIndex) {
        return received[typeIndex].sum();
    }
}
