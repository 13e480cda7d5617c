package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.config.MegaphoneProperties;
import java.net.InetAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class AdmissionControlTest {

    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);

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
        AdmissionControl admission = new AdmissionControl(new MegaphoneProperties.Admission(1000, 1000, 1000, 0.001, 2),
                () -> 0);
        InetAddress client = InetAddress.getByName("192.0.2.1");
        assertThat(admission.check(true, client)).isNull();
        assertThat(admission.check(true, client)).isNull();
        assertThat(admission.check(true, client)).isEqualTo(AdmissionControl.Refusal.SESSION_RATE_PER_CLIENT);
        assertThat(admission.check(false, client)).as("a request of an existing session").isNull();
        assertThat(admission.check(true, InetAddress.getByName("192.0.2.2"))).as("another client").isNull();
    }

    @Test
    void theGlobalSessionBucketHoldsAcrossClients() throws Exception {
        AdmissionControl admission = new AdmissionControl(new MegaphoneProperties.Admission(1000, 0.001, 2, 100, 100),
                () -> 0);
        assertThat(admission.check(true, InetAddress.getByName("192.0.2.1"))).isNull();
        assertThat(admission.check(true, InetAddress.getByName("192.0.2.2"))).isNull();
        assertThat(admission.check(true, InetAddress.getByName("192.0.2.3"))).isEqualTo(AdmissionControl.Refusal.SESSION_RATE);
        assertThat(admission.check(false, InetAddress.getByName("192.0.2.3"))).isNull();
    }

    @Test
    void overTheHeldCapEveryRequestIsRefused() throws Exception {
        AtomicInteger held = new AtomicInteger(5);
        AdmissionControl admission = new AdmissionControl(new MegaphoneProperties.Admission(5, 1000, 1000, 1000, 1000),
                held::get);
        assertThat(admission.check(false, InetAddress.getByName("192.0.2.1"))).isEqualTo(AdmissionControl.Refusal.HELD_LIMIT);
        held.set(4);
        assertThat(admission.check(false, InetAddress.getByName("192.0.2.1"))).isNull();
    }

    @Test
    void idleClientsAreForgotten() throws Exception {
        AdmissionControl admission = new AdmissionControl(new MegaphoneProperties.Admission(1000, 1000, 1000, 1e9, 2),
                () -> 0);
        admission.check(true, InetAddress.getByName("192.0.2.1"));
        assertThat(admission.trackedClients()).isEqualTo(1);
        Thread.sleep(5);
        admission.forgetIdleClients();
        assertThat(admission.trackedClients()).isZero();
    }
}
