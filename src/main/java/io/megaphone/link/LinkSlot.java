// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.flush.FlushConsolidationHandler;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.Disposable;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.util.retry.Retry;

/**
 * One of the K links to one ejabberd node: keeps a {@link LinkMultiplexer} up, reconnecting with exponential
 * backoff and jitter (Reactor's {@link Retry}) whenever it closes or fails its handshake.
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
    private volatile LinkMultiplexer current;
    private volatile boolean running;
    private volatile Disposable connecting;
    private volatile MonoSink<LinkMultiplexer> handshake;

    LinkSlot(Bootstrap bootstrap, InetSocketAddress address, int index, LinkSettings settings,
             LinkMultiplexer.Listener poolListener, Duration minBackoff, Duration maxBackoff) {
        this.bootstrap = bootstrap;
        this.address = address;
        this.name = address.getHostString() + ":" + address.getPort() + "#" + index;
        this.settings = settings;
        this.poolListener = poolListener;
        this.minBackoff = minBackoff;
        this.maxBackoff = maxBackoff;
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

    @Override
    public int inflight() {
        LinkMultiplexer link = current;
        return link == null ? 0 : link.inflightCount();
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

    void start() {
        running = true;
        connect();
    }

    /** The node left: no reconnect; the link drains (GOAWAY) and closes once its requests are answered. */
    void retire() {
        LinkMultiplexer link = stopConnecting();
        if (link != null) {
            link.drain("node removed from discovery");
        }
    }

    /** Shutdown: no reconnect; the link closes now (its requests are re-sent elsewhere or answered 503). */
    void stop() {
        LinkMultiplexer link = stopConnecting();
        if (link != null) {
            link.close();
        }
    }

    private LinkMultiplexer stopConnecting() {
        running = false;
        Disposable pending = connecting;
        if (pending != null) {
            pending.dispose();
        }
        return current;
    }

    private void connect() {
        connecting = Mono.defer(this::connectOnce)
                .retryWhen(Retry.backoff(Long.MAX_VALUE, minBackoff).maxBackoff(maxBackoff).jitter(0.5)
                        .filter(error -> running))
                .subscribe(link -> {
                    current = link;
                    if (failures.getAndSet(0) > 0) {
                        log.info("link {} reconnected", name);
                    }
                }, error -> log.debug("link {} stopped connecting: {}", name, error.toString()));
    }

    private Mono<LinkMultiplexer> connectOnce() {
        return Mono.<LinkMultiplexer>create(sink -> {
            handshake = sink;
            Listener listener = new Listener();
            LinkMultiplexer link = new LinkMultiplexer(listener, name, stats);
            bootstrap.clone().handler(new ChannelInitializer<SocketChannel>() {
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
                            new LinkHandshakeHandler(settings, link, listener, name, stats), link);
                }
            }).connect(address).addListener(future -> {
                if (!future.isSuccess()) {
                    sink.error(future.cause());
                }
            });
        }).doOnError(error -> {
            if (failures.getAndIncrement() == 0) {
                log.warn("link {} cannot connect: {} (retrying with backoff up to {})", name, error.getMessage(),
                        maxBackoff);
            }
        });
    }

    /** Relays link events to the pool, and restarts the connect loop when the link goes away. */
    private final class Listener implements LinkMultiplexer.Listener {
        @Override
        public void onReady(LinkMultiplexer link) {
            MonoSink<LinkMultiplexer> sink = handshake;
            if (sink != null) {
                sink.success(link);
            }
            poolListener.onReady(link);
        }

        @Override
        public void onHandshakeFailed(LinkMultiplexer link, Throwable cause) {
            MonoSink<LinkMultiplexer> sink = handshake;
            if (sink != null) {
                sink.error(cause);
            }
        }

        @Override
        public void onClosed(LinkMultiplexer link, java.util.List<PendingRequest> orphans) {
            if (current == link) {
                current = null;
            }
            poolListener.onClosed(link, orphans);
            if (running) {
                connect();
            }
        }

        @Override
        public void redispatch(PendingRequest request, LinkMultiplexer from) {
            poolListener.redispatch(request, from);
        }

        @Override
        public void refused(PendingRequest request, LinkMultiplexer from) {
            poolListener.refused(request, from);
        }
    }
}
