// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.flush.FlushConsolidationHandler;
import io.netty.util.NetUtil;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.util.retry.Retry;

/**
 * One of the K links to one ejabberd node: keeps a {@link LinkMultiplexer} up, reconnecting with exponential
 * backoff and jitter (Reactor's {@link Retry}) whenever it closes or fails its handshake. A link the server drains
 * (GOAWAY) leaves the slot at once: it finishes its requests and WebSocket streams beside the slot's next link, which
 * connects after the maximum backoff. After {@link #stop()} or {@link #retire} it never connects again, and a connect
 * or handshake under way then leaves no channel open.
 */
final class LinkSlot implements LinkView {

    private static final Logger log = LoggerFactory.getLogger(LinkSlot.class);

    private final Bootstrap bootstrap;
    private final InetSocketAddress address;
    private final String name;
    private final LinkSettings settings;
    private final LinkMultiplexer.Listener poolListener;
    private final Duration minBackoff;
    private final Duration maxBackoff;
    private final AtomicInteger failures = new AtomicInteger();
    private final LinkStats stats = new LinkStats();
    /** The ready link; set (under this slot's lock) only while the slot runs. */
    private volatile LinkMultiplexer current;
    /** Links the server drained (GOAWAY), replaced but still finishing their requests and streams. */
    private final List<LinkMultiplexer> draining = new CopyOnWriteArrayList<>();
    /** Guarded by this slot's lock, as is {@link #connecting}: a stop and a link's events never interleave. */
    private boolean running;
    private boolean stopped;
    private Disposable connecting;

    LinkSlot(Bootstrap bootstrap, InetSocketAddress address, int index, LinkSettings settings,
             LinkMultiplexer.Listener poolListener, Duration minBackoff, Duration maxBackoff) {
        this.bootstrap = bootstrap;
        this.address = address;
        this.name = nodeName(address) + "#" + index;
        this.settings = settings;
        this.poolListener = poolListener;
        this.minBackoff = minBackoff;
        this.maxBackoff = maxBackoff;
    }

    /**
     * {@code host:port}, or {@code host/ip:port} for an address resolved from a host name (DNS discovery gives every
     * node the same host): unique per node, as metric tags and the pool's same-node choice need.
     */
    static String nodeName(InetSocketAddress address) {
        String host = address.getHostString();
        if (!address.isUnresolved() && !NetUtil.isValidIpV4Address(host) && !NetUtil.isValidIpV6Address(host)) {
            host = host + "/" + address.getAddress().getHostAddress();
        }
        return host + ":" + address.getPort();
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public boolean up() {
        LinkMultiplexer link = current;
        return link != null && link.ready();
    }

    /** Requests in flight on the link and on the drained links it replaced. */
    @Override
    public int inflight() {
        LinkMultiplexer link = current;
        int total = link == null ? 0 : link.inflightCount();
        for (LinkMultiplexer old : draining) {
            total += old.inflightCount();
        }
        return total;
    }

    /** WebSocket streams open on the link and on the drained links it replaced. */
    int streamCount() {
        LinkMultiplexer link = current;
        int total = link == null ? 0 : link.streamCount();
        for (LinkMultiplexer old : draining) {
            total += old.streamCount();
        }
        return total;
    }

    /** Whether the slot has no link at all: none current, none draining. */
    boolean idle() {
        return current == null && draining.isEmpty();
    }

    @Override
    public double rttSeconds() {
        LinkMultiplexer link = current;
        long rtt = link == null ? -1 : link.rttNanos();
        return rtt < 0 ? Double.NaN : rtt / 1e9;
    }

    InetSocketAddress address() {
        return address;
    }

    @Override
    public LinkStats stats() {
        return stats;
    }

    LinkMultiplexer current() {
        return current;
    }

    /** Starts connecting; does nothing once the slot was stopped or retired (a slot does not restart). */
    synchronized void start() {
        if (!running && !stopped) {
            running = true;
            connect(Duration.ZERO);
        }
    }

    /** No reconnect; the link drains (GOAWAY) and closes once its requests are answered. */
    void retire(String reason) {
        LinkMultiplexer link = stopConnecting();
        if (link != null) {
            link.drain(reason);
        }
    }

    /** Shutdown: no reconnect; the link closes now (its requests are re-sent elsewhere or answered 503). */
    void stop() {
        LinkMultiplexer link = stopConnecting();
        if (link != null) {
            link.close();
        }
        draining.forEach(LinkMultiplexer::close);
    }

    private LinkMultiplexer stopConnecting() {
        Disposable pending;
        LinkMultiplexer link;
        synchronized (this) {
            running = false;
            stopped = true;
            pending = connecting;
            connecting = null;
            link = current;
        }
        if (pending != null) {
            pending.dispose(); // closes the channel of a connect or handshake under way (Attempt.cancel)
        }
        return link;
    }

    /** Starts a connect loop after {@code delay}; called under the slot's lock while it runs. */
    private void connect(Duration delay) {
        Mono<LinkMultiplexer> loop = Mono.defer(this::connectOnce)
                .retryWhen(Retry.backoff(Long.MAX_VALUE, minBackoff).maxBackoff(maxBackoff).jitter(0.5)
                        .filter(error -> isRunning()));
        if (!delay.isZero()) {
            loop = Mono.delay(delay).then(loop);
        }
        connecting = loop.subscribe(link -> {
            if (failures.getAndSet(0) > 0) {
                log.info("link {} reconnected", name);
            }
        }, error -> log.debug("link {} stopped connecting: {}", name, error.toString()));
    }

    private synchronized boolean isRunning() {
        return running;
    }

    private Mono<LinkMultiplexer> connectOnce() {
        return Mono.<LinkMultiplexer>create(sink -> {
            Attempt attempt = new Attempt(sink);
            LinkMultiplexer link = new LinkMultiplexer(attempt, name, stats);
            ChannelFuture connect = bootstrap.clone().handler(new ChannelInitializer<SocketChannel>() {
                @Override
                protected void initChannel(SocketChannel ch) {
                    if (settings.tls()) {
                        // TLS first: the frames (and the secret handshake) run unchanged inside it.
                        String host = settings.tlsServerName() != null ? settings.tlsServerName()
                                : address.getHostString();
                        ch.pipeline().addLast(settings.sslContext().newHandler(ch.alloc(), host, address.getPort()));
                    }
                    ch.pipeline().addLast(new FlushConsolidationHandler(256, true),
                            new LinkFrameDecoder(settings.maxFrameBytes(), stats),
                            new LinkHandshakeHandler(settings, link, attempt, name, stats), link);
                }
            }).connect(address);
            attempt.channel = connect.channel();
            sink.onCancel(attempt::cancel);
            connect.addListener(future -> {
                if (!future.isSuccess()) {
                    attempt.fail(future.cause());
                }
            });
        }).doOnError(error -> {
            if (failures.getAndIncrement() == 0) {
                log.warn("link {} cannot connect: {} (retrying with backoff up to {})", name, error.getMessage(),
                        maxBackoff);
            }
        });
    }

    /**
     * One connect and handshake: it ends once, as the slot's ready link, as a failure (the loop retries), or
     * cancelled (stop, retire), which closes its channel. Then relays the link's events to the pool, and restarts
     * the connect loop when the link goes away while the slot runs.
     */
    private final class Attempt implements LinkMultiplexer.Listener {
        private final MonoSink<LinkMultiplexer> sink;
        private final AtomicBoolean settled = new AtomicBoolean();
        private volatile Channel channel;

        Attempt(MonoSink<LinkMultiplexer> sink) {
            this.sink = sink;
        }

        void cancel() {
            Channel ch = channel;
            if (settled.compareAndSet(false, true) && ch != null) {
                ch.close();
            }
        }

        void fail(Throwable cause) {
            if (settled.compareAndSet(false, true)) {
                sink.error(cause);
            }
        }

        @Override
        public void onReady(LinkMultiplexer link) {
            boolean taken;
            synchronized (LinkSlot.this) {
                taken = running && settled.compareAndSet(false, true);
                if (taken) {
                    current = link;
                }
            }
            if (!taken) {
                link.close(); // stopped or retired during the handshake: nobody would ever close it
                return;
            }
            sink.success(link);
            poolListener.onReady(link);
        }

        @Override
        public void onHandshakeFailed(LinkMultiplexer link, Throwable cause) {
            fail(cause);
        }

        @Override
        public void onDrainingByServer(LinkMultiplexer link) {
            synchronized (LinkSlot.this) {
                if (current == link) {
                    current = null;
                    draining.add(link);
                    if (running) {
                        // A node that sent GOAWAY is going away: give it time rather than knock again at once.
                        connect(maxBackoff);
                    }
                }
            }
        }

        @Override
        public void onClosed(LinkMultiplexer link, List<PendingRequest> orphans) {
            draining.remove(link);
            synchronized (LinkSlot.this) {
                if (current == link) {
                    current = null;
                    if (running) {
                        // A node that sent GOAWAY is going away: give it time rather than knock again at once.
                        connect(link.drainedByServer() ? maxBackoff : Duration.ZERO);
                    }
                }
            }
            poolListener.onClosed(link, orphans);
        }

        @Override
        public void redispatch(PendingRequest request, LinkMultiplexer from) {
            poolListener.redispatch(request, from);
        }

        @Override
        public void refused(PendingRequest request, LinkMultiplexer from) {
            poolListener.refused(request, from);
        }

        @Override
        public boolean anotherLinkAnswers(LinkMultiplexer self) {
            return poolListener.anotherLinkAnswers(self);
        }
    }
}
