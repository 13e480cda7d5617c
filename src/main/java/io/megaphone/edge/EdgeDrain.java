// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.availability.AvailabilityChangeEvent;
import org.springframework.boot.availability.ReadinessState;
import org.springframework.context.ApplicationEventPublisher;
import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;

/**
 * Graceful drain on SIGTERM, before the web server stops: readiness goes DOWN at once (the load balancer moves
 * new connections elsewhere), session creations get 503, answers carry {@code Connection: close} so clients open
 * their next request elsewhere, held requests finish normally (at most the drain timeout, which covers the longest
 * BOSH wait), then every link gets GOAWAY and none connects again. Requests still held at the deadline get a
 * retryable 503. WebSocket handshakes get 503 from the start; open WebSocket streams are closed with 1001 (going
 * away) when the wait ends, just before the GOAWAY, and their clients reconnect elsewhere.
 */
@Component
final class EdgeDrain implements SmartLifecycle {

    private static final Logger log = LoggerFactory.getLogger(EdgeDrain.class);

    private final ApplicationEventPublisher events;
    private final BoshHandler edge;
    /** The WebSocket endpoint, null when it is off. */
    private final XmppWebSocketService webSocket;
    private final LinkPool pool;
    private final Duration timeout;
    private final Duration delay;
    private volatile boolean running;

    EdgeDrain(ApplicationEventPublisher events, BoshHandler edge, LinkPool pool, MegaphoneProperties properties,
              org.springframework.beans.factory.ObjectProvider<XmppWebSocketService> webSocket) {
        this.events = events;
        this.edge = edge;
        this.webSocket = webSocket.getIfAvailable();
        this.pool = pool;
        this.timeout = properties.edge().drainTimeout();
        this.delay = properties.edge().drainDelay();
    }

    /**
     * A drain is final: after a {@code stop()} the links are gone for good ({@link LinkPool#drain()}), so a context
     * started again stays draining and not ready; close it and start a new one.
     */
    @Override
    public void start() {
        if (edge.draining()) {
            log.warn("started again after a drain: the links do not reconnect, readiness stays DOWN (close this"
                    + " context and start a new one)");
        }
        running = true;
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    /** Stops first of all lifecycle beans: before the web server's own graceful shutdown. */
    @Override
    public int getPhase() {
        return SmartLifecycle.DEFAULT_PHASE;
    }

    @Override
    public void stop(Runnable callback) {
        Thread drain = new Thread(() -> {
            try {
                drain();
            } finally {
                running = false;
                callback.run();
            }
        }, "megaphone-drain");
        drain.start();
    }

    @Override
    public void stop() {
        drain();
        running = false;
    }

    private void drain() {
        long start = System.nanoTime();
        long deadline = start + timeout.toNanos();
        AvailabilityChangeEvent.publish(events, this, ReadinessState.REFUSING_TRAFFIC);
        edge.startDraining();
        if (webSocket != null) {
            webSocket.startDraining();
        }
        log.info("draining: readiness DOWN, {} requests held, waiting up to {}", pool.inflight(), timeout);
        long earliestEnd = start + Math.min(delay.toNanos(), timeout.toNanos());
        while ((pool.inflight() > 0 || System.nanoTime() < earliestEnd) && System.nanoTime() < deadline) {
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        int left = pool.inflight();
        if (webSocket != null) {
            int streams = webSocket.openStreams();
            webSocket.closeAll(); // STREAM_CLOSE goes out on each link before its GOAWAY
            log.info("closed {} WebSocket streams with 1001", streams);
        }
        pool.drain();
        if (left > 0) {
            pool.close(); // their links close; each still-held request is answered 503 and its client re-sends
        }
        log.info("drained in {} ms; {} requests still held get 503; links sent GOAWAY",
                (System.nanoTime() - start) / 1_000_000, left);
    }
}
