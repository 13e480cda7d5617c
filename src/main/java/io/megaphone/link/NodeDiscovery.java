// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds the ejabberd nodes from one DNS name (a Kubernetes headless Service resolves to every pod) and keeps the
 * pool's nodes in step: re-resolved every {@code interval}; new addresses get links, vanished ones are drained.
 * A failed or empty lookup changes nothing (a DNS hiccup must not drop every link). The JVM caches lookups for
 * {@code networkaddress.cache.ttl} (30 s by default), which bounds how fast changes are seen.
 */
public final class NodeDiscovery implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(NodeDiscovery.class);

    /** Resolves a name to addresses; {@link InetAddress#getAllByName} in production, a stand-in in tests. */
    @FunctionalInterface
    public interface Resolver {
        InetAddress[] resolve(String name) throws UnknownHostException;
    }

    private final String name;
    private final int port;
    private final List<InetSocketAddress> staticNodes;
    private final LinkPool pool;
    private final Resolver resolver;
    private final ScheduledExecutorService timer;
    private boolean failing;

    public NodeDiscovery(String name, int port, List<InetSocketAddress> staticNodes, LinkPool pool,
                         Resolver resolver) {
        this.name = name;
        this.port = port;
        this.staticNodes = List.copyOf(staticNodes);
        this.pool = pool;
        this.resolver = resolver;
        this.timer = Executors.newSingleThreadScheduledExecutor(runnable -> {
            Thread thread = new Thread(runnable, "megaphone-discovery");
            thread.setDaemon(true);
            return thread;
        });
    }

    /** Resolves once now (so startup has its nodes), then every {@code interval}. */
    public void start(Duration interval) {
        refresh();
        timer.scheduleWithFixedDelay(this::refresh, interval.toMillis(), interval.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** One lookup; public for tests. */
    public void refresh() {
        InetAddress[] found;
        try {
            found = resolver.resolve(name);
        } catch (UnknownHostException | RuntimeException e) {
            if (!failing) {
                log.warn("discovery: {} does not resolve ({}); keeping nodes {}", name, e.getMessage(), pool.nodes());
            }
            failing = true;
            return;
        }
        if (found.length == 0) {
            return;
        }
        if (failing) {
            log.info("discovery: {} resolves again", name);
            failing = false;
        }
        Set<InetSocketAddress> nodes = new LinkedHashSet<>(staticNodes);
        List<InetAddress> sorted = new ArrayList<>(List.of(found));
        sorted.sort((a, b) -> a.getHostAddress().compareTo(b.getHostAddress()));
        for (InetAddress address : sorted) {
            nodes.add(new InetSocketAddress(address, port));
        }
        pool.setNodes(nodes);
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
