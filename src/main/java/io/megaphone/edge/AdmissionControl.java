// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import io.megaphone.config.MegaphoneProperties;
import java.net.InetAddress;
import java.time.Duration;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Protects the ECM and ejabberd from reconnect storms. Two rules, checked before a request is forwarded:
 * <ul>
 *   <li>a cap on held requests: {@code max-held} (memory is the budget), and the links' capacity (the sum of
 *       mod_megaphone's {@code max_inflight} over the ready links), whichever is lower; any request over it is
 *       refused, and a capacity below {@code max-held} is logged (at most once a minute) with the fix;</li>
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

    private static final Logger log = LoggerFactory.getLogger(AdmissionControl.class);

    /** Why a request was refused; a closed set, used as a metric tag. */
    enum Refusal { HELD_LIMIT, LINK_CAPACITY, SESSION_RATE, SESSION_RATE_PER_CLIENT }

    /** Per-client buckets kept at most. */
    static final int MAX_TRACKED_CLIENTS = 100_000;
    /** IPv4 keys live in ffff:ffff::/32 of the key space, a multicast range no client sends from. */
    private static final long IPV4_KEY = 0xFFFF_FFFF_0000_0000L;

    private final IntSupplier held;
    private final IntSupplier capacity;
    private final int maxHeld;
    private volatile long lastCapacityWarningNanos;
    private final LongSupplier nanoClock;
    private final TokenBucket sessions;
    private final double perClientRate;
    private final double perClientBurst;
    private final Cache<Long, TokenBucket> perClient;

    /**
     * @param held requests held now
     * @param capacity requests the links can carry at once (0: no link is ready, the request will fail as
     *     unavailable)
     */
    AdmissionControl(MegaphoneProperties.Admission admission, IntSupplier held, IntSupplier capacity,
                     LongSupplier nanoClock) {
        this.held = held;
        this.capacity = capacity;
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
        int now = held.getAsInt();
        if (now >= maxHeld) {
            return Refusal.HELD_LIMIT;
        }
        int links = capacity.getAsInt();
        if (links > 0 && now >= links) {
            warnCapacity(links);
            return Refusal.LINK_CAPACITY;
        }
        return createsSession ? checkNewSession(client, perClientApplies) : null;
    }

    /**
     * The session-creation rates alone, for a new session that holds no request here (an XMPP-over-WebSocket
     * stream): null when it may go on, else why it is refused. The buckets are the BOSH creations' own: a client
     * pays the same whichever transport it reconnects with.
     */
    Refusal checkNewSession(InetAddress client, boolean perClientApplies) {
        long nanos = nanoClock.getAsLong();
        if (perClientApplies) {
            TokenBucket mine = perClient.get(key(client), k -> new TokenBucket(perClientRate, perClientBurst, nanos));
            if (!mine.tryTake(nanos)) {
                return Refusal.SESSION_RATE_PER_CLIENT;
            }
        }
        return sessions.tryTake(nanos) ? null : Refusal.SESSION_RATE;
    }

    private void warnCapacity(int links) {
        long nanos = nanoClock.getAsLong();
        long last = lastCapacityWarningNanos;
        if (last != 0 && nanos - last < 60_000_000_000L) {
            return;
        }
        lastCapacityWarningNanos = nanos;
        log.warn("held requests reached the links' capacity: {} (the sum of mod_megaphone's max_inflight over the"
                + " ready links), below megaphone.edge.admission.max-held: {}; requests over it get 503. Raise"
                + " mod_megaphone's max_inflight or megaphone.link.links-per-node so that links x max_inflight >="
                + " max-held, or lower max-held (docs/operations.md, Capacity)", links, maxHeld);
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
