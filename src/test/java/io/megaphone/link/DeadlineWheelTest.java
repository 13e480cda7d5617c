// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The deadline wheel of a link: what expires, when, and what it lets go of. */
class DeadlineWheelTest {

    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    private static final long TIMEOUT = 310 * SECOND;

    private final long start = 1_000 * SECOND;
    private final DeadlineWheel wheel = new DeadlineWheel(start);
    private final List<PendingRequest> expired = new ArrayList<>();

    private static PendingRequest request(long deadlineNanos) {
        return new PendingRequest(null, null, deadlineNanos, null);
    }

    private List<PendingRequest> expireAt(long now) {
        expired.clear();
        wheel.expire(now, expired::add);
        return expired;
    }

    @Test
    void aRequestExpiresAtTheFirstTickPastItsDeadlineAndNotBefore() {
        PendingRequest request = request(start + TIMEOUT);
        wheel.add(request);

        assertThat(expireAt(start + TIMEOUT - SECOND)).isEmpty();
        assertThat(expireAt(start + TIMEOUT)).isEmpty();
        assertThat(expireAt(start + TIMEOUT + 1)).containsExactly(request);
        assertThat(expireAt(start + TIMEOUT + SECOND)).isEmpty();
    }

    @Test
    void aReSentRequestWithAnEarlierDeadlineExpiresOnTimeBehindLaterOnes() {
        PendingRequest fresh = request(start + TIMEOUT);
        PendingRequest reSent = request(start + 5 * SECOND); // submitted 305 s ago on a link that died since
        wheel.add(fresh);
        wheel.add(reSent);

        assertThat(expireAt(start + 6 * SECOND)).containsExactly(reSent);
        assertThat(expireAt(start + TIMEOUT + SECOND)).containsExactly(fresh);
    }

    @Test
    void aRequestAnsweredEarlyNeverExpiresAndItsNeighboursForgetIt() {
        PendingRequest first = request(start + TIMEOUT);
        PendingRequest answered = request(start + TIMEOUT);
        PendingRequest last = request(start + TIMEOUT);
        wheel.add(first);
        wheel.add(answered);
        wheel.add(last);

        wheel.remove(answered);
        wheel.remove(answered); // a second remove (cancel after expiry) changes nothing

        assertThat(first.prevInBucket).isNotSameAs(answered);
        assertThat(last.nextInBucket).isNotSameAs(answered);
        assertThat(answered.prevInBucket).isNull();
        assertThat(answered.nextInBucket).isNull();
        assertThat(expireAt(start + TIMEOUT + SECOND)).containsExactlyInAnyOrder(first, last);
    }

    @Test
    void ticksSkippedByALateCallStillExpireTheirRequests() {
        List<PendingRequest> requests = new ArrayList<>();
        for (int i = 1; i <= 100; i++) {
            PendingRequest request = request(start + i * SECOND / 10);
            requests.add(request);
            wheel.add(request);
        }

        assertThat(expireAt(start + 20 * SECOND)).containsExactlyInAnyOrderElementsOf(requests);
    }

    @Test
    void aTimeoutLongerThanOneLapOfTheWheelWaitsForItsOwnLap() {
        long lap = DeadlineWheel.BUCKETS * DeadlineWheel.TICK_NANOS;
        PendingRequest later = request(start + lap + SECOND);
        wheel.add(later);

        assertThat(expireAt(start + 2 * SECOND)).isEmpty();
        assertThat(expireAt(start + lap + 2 * SECOND)).containsExactly(later);
    }
}
