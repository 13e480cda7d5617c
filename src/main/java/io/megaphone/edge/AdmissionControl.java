package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import java.net.InetAddress;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntSupplier;

/**
 * Protects the ECM and ejabberd from reconnect storms. Two rules, checked before a request is forwarded:
 * <ul>
 *   <li>a cap on held requests (memory is the budget): any request over it is refused;</li>
 *   <li>token buckets on session creations, one global and one per client address: only requests that create a
 *       session (no {@code sid}) are refused by them, so existing sessions never pay for new-session pressure.</li>
 * </ul>
 * Refusals are 503 with a jittered Retry-After: clients come back later, spread out.
 */
final class AdmissionControl {

    /** Why a request was refused; a closed set, used as a metric tag. */
    enum Refusal { HELD_LIMIT, SESSION_RATE, SESSION_RATE_PER_CLIENT }

    /** Per-address buckets kept at most; past it, unknown addresses share the global bucket only. */
    static final int MAX_TRACKED_CLIENTS = 100_000;

    private final IntSupplier held;
    private final int maxHeld;
    private final TokenBucket sessions;
    private final double perClientRate;
    private final double perClientBurst;
    private final ConcurrentHashMap<InetAddress, TokenBucket> perClient = new ConcurrentHashMap<>();

    AdmissionControl(MegaphoneProperties.Admission admission, IntSupplier held) {
        this.held = held;
        this.maxHeld = admission.maxHeld();
        this.sessions = new TokenBucket(admission.sessionsPerSecond(), admission.sessionsBurst(), System.nanoTime());
        this.perClientRate = admission.sessionsPerSecondPerClient();
        this.perClientBurst = admission.sessionsBurstPerClient();
    }

    /** Null when the request may go on, else why it is refused. */
    Refusal check(boolean createsSession, InetAddress client) {
        if (held.getAsInt() >= maxHeld) {
            return Refusal.HELD_LIMIT;
        }
        if (!createsSession) {
            return null;
        }
        long now = System.nanoTime();
        TokenBucket mine = perClient.get(client);
        if (mine == null && perClient.size() < MAX_TRACKED_CLIENTS) {
            mine = perClient.computeIfAbsent(client, key -> new TokenBucket(perClientRate, perClientBurst, now));
        }
        if (mine != null && !mine.tryTake(now)) {
            return Refusal.SESSION_RATE_PER_CLIENT;
        }
        return sessions.tryTake(now) ? null : Refusal.SESSION_RATE;
    }

    /** Forgets clients whose bucket is full again (idle); called periodically. */
    void forgetIdleClients() {
        long now = System.nanoTime();
        perClient.values().removeIf(bucket -> bucket.isFull(now));
    }

    int trackedClients() {
        return perClient.size();
    }
}
