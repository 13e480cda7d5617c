package io.megaphone.edge;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.megaphone.config.MegaphoneProperties;
import java.net.InetAddress;
import java.time.Duration;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * Protects the ECM and ejabberd from reconnect storms. Two rules, checked before a request is forwarded:
 * <ul>
 *   <li>a cap on held requests (memory is the budget): any request over it is refused;</li>
 *   <li>token buckets on session creations, one global and one per client (an IPv4 address, or an IPv6 /64, which
 *       is what one subscriber usually gets): only requests that create a session (no {@code sid}) are refused by
 *       them, so existing sessions never pay for new-session pressure.</li>
 * </ul>
 * Refusals are 503 with a jittered Retry-After: clients come back later, spread out.
 *
 * <p>The per-client buckets live in a bounded Caffeine cache: idle clients expire once their bucket would be full
 * again, and when a flood of new addresses fills it, its frequency-aware eviction drops the one-time addresses
 * rather than the clients that keep coming back, so the per-client limit stays on for them.
 */
final class AdmissionControl {

    /** Why a request was refused; a closed set, used as a metric tag. */
    enum Refusal { HELD_LIMIT, SESSION_RATE, SESSION_RATE_PER_CLIENT }

    /** Per-client buckets kept at most (about 200 B each). */
    static final int MAX_TRACKED_CLIENTS = 100_000;
    /** IPv4 keys live in ffff:ffff::/32 of the key space, a multicast range no client sends from. */
    private static final long IPV4_KEY = 0xFFFF_FFFF_0000_0000L;

    private final IntSupplier held;
    private final int maxHeld;
    private final LongSupplier nanoClock;
    private final TokenBucket sessions;
    private final double perClientRate;
    private final double perClientBurst;
    private final Cache<Long, TokenBucket> perClient;

    AdmissionControl(MegaphoneProperties.Admission admission, IntSupplier held, LongSupplier nanoClock) {
        this.held = held;
        this.maxHeld = admission.maxHeld();
        this.nanoClock = nanoClock;
        this.sessions = new TokenBucket(admission.sessionsPerSecond(), admission.sessionsBurst(), nanoClock.getAsLong());
        this.perClientRate = admission.sessionsPerSecondPerClient();
        this.perClientBurst = admission.sessionsBurstPerClient();
        // A bucket left alone this long is full again: forgetting it changes nothing.
        Duration refill = Duration.ofNanos((long) Math.ceil(perClientBurst / perClientRate * 1e9));
        this.perClient = Caffeine.newBuilder()
                .maximumSize(MAX_TRACKED_CLIENTS)
                .expireAfterAccess(refill.compareTo(Duration.ofSeconds(1)) < 0 ? Duration.ofSeconds(1) : refill)
                .ticker(nanoClock::getAsLong)
                .executor(Runnable::run)
                .build();
    }

    /**
     * Null when the request may go on, else why it is refused.
     *
     * @param perClientApplies whether the per-client rate applies to this address (it is known to be the client's)
     */
    Refusal check(boolean createsSession, InetAddress client, boolean perClientApplies) {
        if (held.getAsInt() >= maxHeld) {
            return Refusal.HELD_LIMIT;
        }
        if (!createsSession) {
            return null;
        }
        long now = nanoClock.getAsLong();
        if (perClientApplies) {
            TokenBucket mine = perClient.get(key(client), k -> new TokenBucket(perClientRate, perClientBurst, now));
            if (!mine.tryTake(now)) {
                return Refusal.SESSION_RATE_PER_CLIENT;
            }
        }
        return sessions.tryTake(now) ? null : Refusal.SESSION_RATE;
    }

    /** The per-client key: an IPv4 address, or the /64 of an IPv6 address. */
    static long key(InetAddress address) {
        byte[] bytes = address.getAddress();
        long key = 0;
        for (int i = 0; i < Math.min(8, bytes.length); i++) {
            key = key << 8 | (bytes[i] & 0xFF);
        }
        return bytes.length == 4 ? IPV4_KEY | key : key;
    }

    /** Clients with a bucket now (expired ones may linger until the cache's next maintenance). */
    long trackedClients() {
        perClient.cleanUp();
        return perClient.estimatedSize();
    }
}
