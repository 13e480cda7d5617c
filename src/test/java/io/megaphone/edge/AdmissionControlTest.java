// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.config.MegaphoneProperties.PerClient;
import java.net.InetAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** Admission rules on a clock the test moves, so nothing depends on how fast the machine is. */
class AdmissionControlTest {

    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    private final AtomicLong clock = new AtomicLong(1_000 * SECOND);

    private AdmissionControl admission(int maxHeld, double rate, double burst, double perClientRate,
                                       double perClientBurst, AtomicInteger held) {
        return new AdmissionControl(new MegaphoneProperties.Admission(maxHeld, rate, burst, perClientRate,
                perClientBurst, PerClient.ON), held::get, () -> 0, clock::get);
    }

    private static InetAddress ip(String literal) throws Exception {
        return InetAddress.getByName(literal);
    }

    @Test
    void aBucketGivesItsBurstThenRefillsAtItsRate() {
        TokenBucket bucket = new TokenBucket(2, 3, 0);
        assertThat(bucket.tryTake(0)).isTrue();
        assertThat(bucket.tryTake(0)).isTrue();
        assertThat(bucket.tryTake(0)).isTrue();
        assertThat(bucket.tryTake(0)).isFalse();
        assertThat(bucket.tryTake(SECOND / 2)).isTrue();
        assertThat(bucket.tryTake(SECOND / 2)).isFalse();
        assertThat(bucket.isFull(10 * SECOND)).isTrue();
    }

    @Test
    void sessionCreationsArePacedPerClientButExistingSessionsAreNeverRefusedForIt() throws Exception {
        AdmissionControl admission = admission(1000, 1000, 1000, 1, 2, new AtomicInteger());
        InetAddress client = ip("192.0.2.1");
        assertThat(admission.check(true, client, true)).isNull();
        assertThat(admission.check(true, client, true)).isNull();
        assertThat(admission.check(true, client, true)).isEqualTo(AdmissionControl.Refusal.SESSION_RATE_PER_CLIENT);
        assertThat(admission.check(false, client, true)).as("a request of an existing session").isNull();
        assertThat(admission.check(true, ip("192.0.2.2"), true)).as("another client").isNull();
        clock.addAndGet(SECOND);
        assertThat(admission.check(true, client, true)).as("one token a second later").isNull();
        assertThat(admission.check(true, client, true)).isEqualTo(AdmissionControl.Refusal.SESSION_RATE_PER_CLIENT);
    }

    @Test
    void theRateAppliesOnlyWhereTheAddressIsKnownToBeTheClients() throws Exception {
        AdmissionControl admission = admission(1000, 1000, 1000, 1, 2, new AtomicInteger());
        InetAddress balancer = ip("10.0.0.5");
        for (int i = 0; i < 50; i++) {
            assertThat(admission.check(true, balancer, false)).as("session %d through a balancer", i).isNull();
        }
    }

    @Test
    void ipv6ClientsAreCountedPerSlash64() throws Exception {
        AdmissionControl admission = admission(1000, 1000, 1000, 1, 2, new AtomicInteger());
        assertThat(admission.check(true, ip("2001:db8:1:2::1"), true)).isNull();
        assertThat(admission.check(true, ip("2001:db8:1:2::ffff:1"), true)).isNull();
        assertThat(admission.check(true, ip("2001:db8:1:2:abcd::9"), true))
                .as("a third address of the same /64").isEqualTo(AdmissionControl.Refusal.SESSION_RATE_PER_CLIENT);
        assertThat(admission.check(true, ip("2001:db8:1:3::1"), true)).as("the next /64").isNull();
        assertThat(AdmissionControl.key(ip("192.0.2.1"))).isNotEqualTo(AdmissionControl.key(ip("::c000:201")));
    }

    @Test
    void aFloodOfNewAddressesDoesNotSwitchTheLimitOffForAClientThatKeepsComing() throws Exception {
        AdmissionControl admission = admission(1000, 1e9, 1e9, 1, 3, new AtomicInteger());
        InetAddress abuser = ip("198.51.100.7");
        for (int round = 0; round < 3; round++) {
            assertThat(admission.check(true, abuser, true)).isNull();
        }
        // More distinct addresses than the cache keeps, interleaved with the abuser's refused attempts.
        for (int i = 0; i < AdmissionControl.MAX_TRACKED_CLIENTS + 20_000; i++) {
            admission.check(true, ip("10." + (i >> 16 & 0xFF) + "." + (i >> 8 & 0xFF) + "." + (i & 0xFF)), true);
            if (i % 1000 == 0) {
                assertThat(admission.check(true, abuser, true)).as("the abuser after %d new addresses", i)
                        .isEqualTo(AdmissionControl.Refusal.SESSION_RATE_PER_CLIENT);
            }
        }
        assertThat(admission.trackedClients()).isLessThanOrEqualTo(AdmissionControl.MAX_TRACKED_CLIENTS);
    }

    @Test
    void theGlobalSessionBucketHoldsAcrossClients() throws Exception {
        AdmissionControl admission = admission(1000, 1, 2, 100, 100, new AtomicInteger());
        assertThat(admission.check(true, ip("192.0.2.1"), true)).isNull();
        assertThat(admission.check(true, ip("192.0.2.2"), false)).isNull();
        assertThat(admission.check(true, ip("192.0.2.3"), true)).isEqualTo(AdmissionControl.Refusal.SESSION_RATE);
        assertThat(admission.check(false, ip("192.0.2.3"), true)).isNull();
    }

    @Test
    void overTheHeldCapEveryRequestIsRefused() throws Exception {
        AtomicInteger held = new AtomicInteger(5);
        AdmissionControl admission = admission(5, 1000, 1000, 1000, 1000, held);
        assertThat(admission.check(false, ip("192.0.2.1"), true)).isEqualTo(AdmissionControl.Refusal.HELD_LIMIT);
        held.set(4);
        assertThat(admission.check(false, ip("192.0.2.1"), true)).isNull();
    }

    @Test
    void idleClientsAreForgottenOnceTheirBucketIsFullAgain() throws Exception {
        AdmissionControl admission = admission(1000, 1000, 1000, 1, 2, new AtomicInteger());
        admission.check(true, ip("192.0.2.1"), true);
        assertThat(admission.trackedClients()).isEqualTo(1);
        clock.addAndGet(SECOND);
        assertThat(admission.trackedClients()).as("refilling takes 2 s").isEqualTo(1);
        clock.addAndGet(2 * SECOND);
        assertThat(admission.trackedClients()).isZero();
    }

    @Test
    void theLinksCapacityCapsHeldRequestsWhenItIsBelowMaxHeld() throws Exception {
        AtomicInteger held = new AtomicInteger();
        AtomicInteger capacity = new AtomicInteger(40_000); // 4 links x max_inflight 10,000
        AdmissionControl admission = new AdmissionControl(new MegaphoneProperties.Admission(70_000, 1e9, 1e9, 1e9,
                1e9, PerClient.ON), held::get, capacity::get, clock::get);

        held.set(39_999);
        assertThat(admission.check(false, ip("10.0.0.1"), true)).isNull();
        held.set(40_000);
        assertThat(admission.check(false, ip("10.0.0.1"), true)).isEqualTo(AdmissionControl.Refusal.LINK_CAPACITY);
        capacity.set(0); // no link ready: the request goes on and fails as unavailable, not as a capacity refusal
        assertThat(admission.check(false, ip("10.0.0.1"), true)).isNull();
        capacity.set(100_000); // capacity above max-held: max-held rules
        held.set(70_000);
        assertThat(admission.check(false, ip("10.0.0.1"), true)).isEqualTo(AdmissionControl.Refusal.HELD_LIMIT);
    }
}
