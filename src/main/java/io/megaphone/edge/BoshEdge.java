package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import io.megaphone.metrics.EdgeMetrics;
import io.micrometer.core.instrument.Counter;
import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * What every BOSH connection of this ECM shares: the settings, the link pool, admission control, CORS, the
 * client-address rules, the meters and the drain flag. One instance; {@link BoshConnection} (one per TCP
 * connection) does the work.
 */
final class BoshEdge {

    final LinkPool pool;
    final EdgeMetrics metrics;
    final BoshAnswers answers;
    final CorsPolicy cors;
    final ClientAddressResolver clientAddresses;
    final AdmissionControl admission;
    final DemoFiles demo = new DemoFiles();
    final int maxBodyBytes;
    final long requestReadTimeoutNanos;
    final long idleTimeoutNanos;
    final boolean proxyProtocol;
    private final Set<String> paths;
    private final Map<AdmissionControl.Refusal, Counter> refusals = new EnumMap<>(AdmissionControl.Refusal.class);
    private final Counter drainingRefusals;
    private volatile boolean draining;

    BoshEdge(MegaphoneProperties.Edge edge, LinkPool pool, EdgeMetrics metrics) {
        this.pool = pool;
        this.metrics = metrics;
        this.paths = Set.copyOf(edge.paths());
        this.maxBodyBytes = edge.maxBodyBytes();
        this.requestReadTimeoutNanos = edge.requestReadTimeout().toNanos();
        this.idleTimeoutNanos = edge.idleTimeout().toNanos();
        this.proxyProtocol = edge.proxyProtocol();
        this.answers = new BoshAnswers(edge.retryAfterSeconds());
        this.cors = new CorsPolicy(edge.cors());
        this.clientAddresses = new ClientAddressResolver(edge.trustedProxies());
        this.admission = new AdmissionControl(edge.admission(), pool::inflight);
        for (AdmissionControl.Refusal refusal : AdmissionControl.Refusal.values()) {
            refusals.put(refusal, metrics.rejection(refusal.name().toLowerCase(Locale.ROOT)));
        }
        this.drainingRefusals = metrics.rejection("draining");
    }

    boolean isBoshPath(String path) {
        return paths.contains(path);
    }

    /** From now on session creations get 503 (so a load balancer moves them elsewhere); others go on. */
    void startDraining() {
        draining = true;
    }

    void stopDraining() {
        draining = false;
    }

    boolean draining() {
        return draining;
    }

    /** Counts a refusal; null means refused because of draining. */
    void refused(AdmissionControl.Refusal refusal) {
        (refusal == null ? drainingRefusals : refusals.get(refusal)).increment();
    }
}
