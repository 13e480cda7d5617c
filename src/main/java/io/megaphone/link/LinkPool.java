// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.resolver.AddressResolverGroup;
import io.netty.resolver.dns.DnsAddressResolverGroup;
import io.netty.resolver.dns.DnsNameResolverBuilder;
import io.netty.resolver.dns.DnsServerAddressStreamProviders;
import io.netty.resolver.dns.SequentialDnsServerAddressStreamProvider;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.Objects;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import reactor.core.publisher.Mono;

/**
 * The links of one ECM: {@code linksPerNode} links to each configured ejabberd node. Each request goes to the
 * ready link with the fewest requests in flight; a request whose link dies is re-sent, same envelope, on
 * another link (of the same node first, where mod_megaphone recognises a re-sent copy still running).
 */
public final class LinkPool implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(LinkPool.class);

    /** How many times one request may be re-sent after the links carrying it died. */
    static final int MAX_RESENDS = 3;
    /**
     * How long a request whose link died may wait for another link (a reconnect) before it is answered 503. New
     * requests never wait: with no link ready they get 503 at once.
     */
    static final long FAILOVER_WAIT_NANOS = TimeUnit.SECONDS.toNanos(1);
    /**
     * How many more requests in flight than the least loaded link a link on the caller's own event loop may have and
     * still be picked: enough that load spreads evenly when clients are spread evenly over the loops, not so much
     * that one link takes everything when they are not.
     */
    static final int AFFINITY_SLACK = 64;
    /**
     * Outbound buffer of one link: above 4 MiB it is unwritable and takes no new request until it is back under
     * 1 MiB. A REQUEST is at most max-body-bytes, so a link never buffers much more than 4 MiB for an ejabberd that
     * reads slowly; requests find another link, or get 503 with Retry-After.
     */
    static final WriteBufferWaterMark WATER_MARK = new WriteBufferWaterMark(1 << 20, 4 << 20);

    private final EventLoopGroup group;
    private final List<EventLoop> loops;
    /** False when the group is the web server's (shared): closing the pool then leaves it running. */
    private final boolean ownsGroup;
    private volatile ScheduledFuture<?> parkedExpiry;
    private final List<LinkSlot> slots = new CopyOnWriteArrayList<>();
    /**
     * Links of nodes that discovery dropped, draining: no new requests, but theirs still count as held (for the
     * gauge, admission and the drain) until each link has closed.
     */
    private final List<LinkSlot> retiring = new CopyOnWriteArrayList<>();
    private final List<MembershipListener> membershipListeners = new CopyOnWriteArrayList<>();
    private final Bootstrap bootstrap;
    private final AddressResolverGroup<InetSocketAddress> resolver;
    private final LinkSettings settings;
    private final int linksPerNode;
    private final Duration minBackoff;
    private final Duration maxBackoff;
    private volatile boolean started;
    private final long upstreamTimeoutNanos;
    private final Listener listener = new Listener();
    /** Orphaned requests waiting for a link to come back, oldest first. */
    private final Queue<PendingRequest> parked = new ConcurrentLinkedQueue<>();
    /** Re-sends because the request's link closed (or was closing), and because mod_megaphone refused it. */
    private final LongAdder resendsLinkClosed = new LongAdder();
    private final LongAdder resendsRefused = new LongAdder();
    private volatile boolean closing;
    /** Where the next pick starts scanning; racy increments are fine, it only spreads ties. */
    private int rotation;
    private final LongAdder clientGone = new LongAdder();
    /** One shared callback: a method reference made per request would cost every held request 16 bytes. */
    private final Runnable countClientGone = clientGone::increment;
    /** Test seam: runs in {@link #resend} between a pick that found no link and the parking; null in production. */
    volatile Runnable beforePark;

    /** Told when links come and go (nodes found or lost by discovery). */
    public interface MembershipListener {
        void added(LinkView link);

        void removed(LinkView link);
    }

    /**
     * @param nodes the ejabberd nodes' mod_megaphone addresses (may be empty when discovery supplies them)
     * @param upstreamTimeout how long a request may wait for ejabberd before the ECM answers it with a 5xx;
     *     longer than any BOSH {@code wait}
     */
    public LinkPool(List<InetSocketAddress> nodes, int linksPerNode, LinkSettings settings, Duration upstreamTimeout,
                    Duration minBackoff, Duration maxBackoff, int ioThreads) {
        this(nodes, linksPerNode, settings, upstreamTimeout, minBackoff, maxBackoff,
                new MultiThreadIoEventLoopGroup(ioThreads, NioIoHandler.newFactory()), NioSocketChannel.class, true,
                dnsResolver(NioDatagramChannel.class, List.of(), DEFAULT_DNS_QUERY_TIMEOUT));
    }

    /** How long the default resolver waits for one DNS answer (Netty's default). */
    public static final Duration DEFAULT_DNS_QUERY_TIMEOUT = Duration.ofSeconds(5);

    /**
     * Netty's non-blocking DNS resolver, which keeps answers for their TTL: the links look their nodes' names up
     * with it, so a slow name server never stalls an event loop.
     *
     * @param datagramChannelType the UDP channel class of the pool's event loops (e.g. {@code NioDatagramChannel})
     * @param nameServers the name servers to ask, in order; empty: the system's ({@code /etc/resolv.conf})
     * @param queryTimeout how long to wait for one answer
     */
    public static AddressResolverGroup<InetSocketAddress> dnsResolver(
            Class<? extends DatagramChannel> datagramChannelType, List<InetSocketAddress> nameServers,
            Duration queryTimeout) {
        Objects.requireNonNull(datagramChannelType, "datagramChannelType");
        if (queryTimeout.isNegative() || queryTimeout.isZero()) {
            throw new IllegalArgumentException("queryTimeout: " + queryTimeout + " (expected: > 0)");
        }
        DnsNameResolverBuilder builder = new DnsNameResolverBuilder()
                .datagramChannelType(datagramChannelType)
                .queryTimeoutMillis(queryTimeout.toMillis())
                .nameServerProvider(nameServers.isEmpty() ? DnsServerAddressStreamProviders.platformDefault()
                        : new SequentialDnsServerAddressStreamProvider(nameServers));
        return new DnsAddressResolverGroup(builder);
    }

    /**
     * A pool whose links run on {@code group}, e.g. the event loops of the web server that receives the clients'
     * requests: a request then goes out on a link of its client connection's own event loop when there is one, and
     * its answer comes back on that loop, with no hand-over between threads ({@link #pick}).
     *
     * @param ownsGroup whether {@link #close()} shuts {@code group} down
     * @param resolver resolves the nodes' names when a link connects, without blocking its event loop
     *     ({@link #dnsResolver}); the pool closes it
     */
    public LinkPool(List<InetSocketAddress> nodes, int linksPerNode, LinkSettings settings, Duration upstreamTimeout,
                    Duration minBackoff, Duration maxBackoff, EventLoopGroup group,
                    Class<? extends Channel> channelClass, boolean ownsGroup,
                    AddressResolverGroup<InetSocketAddress> resolver) {
        Objects.requireNonNull(nodes, "nodes");
        if (linksPerNode < 1) {
            throw new IllegalArgumentException("linksPerNode: " + linksPerNode + " (expected: >= 1)");
        }
        this.upstreamTimeoutNanos = upstreamTimeout.toNanos();
        this.group = Objects.requireNonNull(group, "group");
        this.ownsGroup = ownsGroup;
        this.settings = settings;
        this.linksPerNode = linksPerNode;
        this.minBackoff = minBackoff;
        this.maxBackoff = maxBackoff;
        this.loops = new ArrayList<>();
        group.forEach(executor -> loops.add((EventLoop) executor));
        this.resolver = Objects.requireNonNull(resolver, "resolver");
        this.bootstrap = new Bootstrap().group(group).channel(channelClass).resolver(resolver)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.SO_KEEPALIVE, true)
                .option(ChannelOption.WRITE_BUFFER_WATER_MARK, WATER_MARK)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 2000);
        for (InetSocketAddress node : nodes) {
            addNode(node);
        }
    }

    private void addNode(InetSocketAddress node) {
        for (int i = 0; i < linksPerNode; i++) {
            // Each link of a node on its own event loop (round robin), so that every loop has links to offer.
            LinkSlot slot = new LinkSlot(bootstrap.clone(loops.get(i % loops.size())), node, i, settings, listener,
                    minBackoff, maxBackoff);
            slots.add(slot);
            membershipListeners.forEach(l -> l.added(slot));
            if (started) {
                slot.start();
            }
        }
    }

    /**
     * Makes the pool's nodes exactly {@code nodes}: new ones get {@code linksPerNode} links, the links of nodes no
     * longer there drain (GOAWAY; requests in flight finish) and go. Used by DNS discovery.
     */
    public synchronized void setNodes(Collection<InetSocketAddress> nodes) {
        Set<InetSocketAddress> wanted = new LinkedHashSet<>(nodes);
        Set<InetSocketAddress> present = new LinkedHashSet<>();
        for (LinkSlot slot : slots) {
            present.add(slot.address());
            if (!wanted.contains(slot.address())) {
                log.info("node {} is gone: draining link {}", slot.address(), slot.name());
                slots.remove(slot);
                if (!slot.idle()) {
                    retiring.add(slot);
                }
                slot.retire("node removed from discovery");
                membershipListeners.forEach(l -> l.removed(slot));
            }
        }
        for (InetSocketAddress node : wanted) {
            if (!present.contains(node)) {
                log.info("node {} found: opening {} links", node, linksPerNode);
                addNode(node);
            }
        }
    }

    /** The nodes the pool has links to now. */
    public Set<InetSocketAddress> nodes() {
        Set<InetSocketAddress> nodes = new LinkedHashSet<>();
        slots.forEach(slot -> nodes.add(slot.address()));
        return nodes;
    }

    /** Registers a listener and tells it about the links that exist already. */
    public void addMembershipListener(MembershipListener membership) {
        membershipListeners.add(membership);
        slots.forEach(membership::added);
    }

    public void start() {
        started = true;
        slots.forEach(LinkSlot::start);
        parkedExpiry = group.next().scheduleAtFixedRate(this::expireParked, 100, 100, TimeUnit.MILLISECONDS);
    }

    /**
     * Sends one request to ejabberd; its {@code exchange} hears the RESPONSE, or a failure
     * ({@link UpstreamUnavailableException}, {@link UpstreamTimeoutException}). {@link PendingRequest#cancel()}
     * (the HTTP client went away) sends CANCEL upstream instead.
     */
    public PendingRequest submit(RequestEnvelope envelope, Exchange exchange) {
        PendingRequest request = new PendingRequest(envelope, exchange, System.nanoTime() + upstreamTimeoutNanos,
                countClientGone);
        dispatch(request, null);
        return request;
    }

    /**
     * Opens a WebSocket stream for {@code client} on the version-2 link with the fewest streams. The Mono gives the
     * stream once the server has opened it (STREAM_OPENED), or fails with {@link UpstreamUnavailableException} when
     * no link takes streams or the server refused it (STREAM_CLOSE); cancelling it closes the stream.
     *
     * @param window the credit granted to the server for the stream: at most this many bytes of its messages are
     *     buffered here at once
     */
    public Mono<LinkStream> openStream(InetSocketAddress client, long window) {
        Objects.requireNonNull(client, "client");
        if (window < 1 || window > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("window: " + window + " (expected: 1 to 2^32 - 1)");
        }
        return Mono.create(sink -> {
            LinkMultiplexer link = closing ? null : pickForStream();
            if (link == null) {
                sink.error(new UpstreamUnavailableException("no megaphone link takes WebSocket streams (none ready"
                        + " with link protocol version 2, or all full)"));
                return;
            }
            LinkStream stream = new LinkStream(link, client, window, sink);
            sink.onCancel(() -> stream.close(Frame.StreamClose.GOING_AWAY, "client went away"));
            link.openStream(stream);
        });
    }

    /** The link that takes streams with the fewest open; ties go round-robin. */
    private LinkMultiplexer pickForStream() {
        List<LinkSlot> candidates = slots;
        int size = candidates.size();
        if (size == 0) {
            return null;
        }
        int start = Math.floorMod(rotation++, size);
        LinkMultiplexer best = null;
        for (int i = 0; i < size; i++) {
            LinkMultiplexer link = candidates.get((start + i) % size).current();
            if (link != null && link.takesStreams() && (best == null || link.streamCount() < best.streamCount())) {
                best = link;
            }
        }
        return best;
    }

    /** WebSocket streams open (or opening) on all links. */
    public int streams() {
        int total = 0;
        for (List<LinkSlot> of : List.of(slots, retiring)) {
            for (LinkSlot slot : of) {
                total += slot.streamCount();
            }
        }
        return total;
    }

    /** Ready links, for readiness and metrics. */
    public int readyLinks() {
        int ready = 0;
        for (LinkSlot slot : slots) {
            LinkMultiplexer link = slot.current();
            if (link != null && link.ready()) {
                ready++;
            }
        }
        return ready;
    }

    public int configuredLinks() {
        return slots.size();
    }

    /**
     * Requests the ready links can carry at once: the sum of their {@code max_inflight} (mod_megaphone's, from
     * WELCOME; a link without one counts as {@link Integer#MAX_VALUE}). Past it no link can take a request. 0 while
     * no link is ready.
     */
    public int capacity() {
        long total = 0;
        for (LinkSlot slot : slots) {
            LinkMultiplexer link = slot.current();
            if (link != null && link.state() == LinkMultiplexer.State.READY) {
                total += Math.min(link.maxInflight(), Integer.MAX_VALUE);
            }
        }
        return (int) Math.min(total, Integer.MAX_VALUE);
    }

    /** Requests in flight on all links. */
    public int inflight() {
        return inflight(slots) + inflight(retiring);
    }

    private static int inflight(List<LinkSlot> of) {
        int total = 0;
        for (LinkSlot slot : of) {
            total += slot.inflight();
        }
        return total;
    }

    /** The links now, for health and metrics. */
    public List<LinkView> links() {
        return List.copyOf(slots);
    }

    /** Requests re-sent on another link, for either reason. */
    public long resends() {
        return resendsLinkClosed.sum() + resendsRefused.sum();
    }

    /** Requests re-sent on another link because theirs died or was closing. */
    public long resendsLinkClosed() {
        return resendsLinkClosed.sum();
    }

    /** Requests re-sent on another link because mod_megaphone refused them (503: over max_inflight, draining). */
    public long resendsRefused() {
        return resendsRefused.sum();
    }

    /** Requests whose HTTP client went away before the answer. */
    public long clientGone() {
        return clientGone.sum();
    }

    /** Counts a request whose client went away before it was submitted (the edge's side of {@link #clientGone}). */
    public void countClientGone() {
        clientGone.increment();
    }

    private void dispatch(PendingRequest request, LinkMultiplexer failed) {
        if (request.cancelled) {
            return;
        }
        LinkMultiplexer best = pick(failed);
        if (best == null) {
            request.fail(new UpstreamUnavailableException("no megaphone link is ready"));
            return;
        }
        best.submit(request);
    }

    /**
     * The ready link with the fewest in flight; after a failure, one to the failed link's node if possible. Ties
     * go round-robin (the scan starts at a rotating slot), so at low load new sessions still spread over nodes.
     * A new request called from an event loop prefers a ready link on that same loop when its load is within
     * {@link #AFFINITY_SLACK} of the least loaded one: its REQUEST is then written, and its answer delivered, without
     * a hand-over between threads.
     */
    private LinkMultiplexer pick(LinkMultiplexer failed) {
        List<LinkSlot> candidates = slots;
        int size = candidates.size();
        if (size == 0) {
            return null;
        }
        int start = Math.floorMod(rotation++, size);
        LinkMultiplexer best = null;
        LinkMultiplexer local = null;
        boolean bestSameNode = false;
        for (int i = 0; i < size; i++) {
            LinkSlot slot = candidates.get((start + i) % size);
            LinkMultiplexer link = slot.current();
            if (link == null || link == failed || !link.canTake()) {
                continue;
            }
            if (failed == null && link.inEventLoop() && (local == null || link.inflightCount() < local.inflightCount())) {
                local = link;
            }
            boolean sameNode = failed != null && slot.name().startsWith(nodeOf(failed));
            if (best == null || (sameNode && !bestSameNode)
                    || (sameNode == bestSameNode && link.inflightCount() < best.inflightCount())) {
                best = link;
                bestSameNode = sameNode;
            }
        }
        if (local != null && local.inflightCount() <= best.inflightCount() + AFFINITY_SLACK) {
            return local;
        }
        return best;
    }

    private static String nodeOf(LinkMultiplexer link) {
        String target = link.target();
        return target.substring(0, target.lastIndexOf('#') + 1);
    }

    private void resend(PendingRequest request, LinkMultiplexer from, LongAdder reason) {
        request.link = null;
        if (closing || ++request.attempts > MAX_RESENDS || System.nanoTime() - request.deadlineNanos > 0) {
            request.fail(new UpstreamUnavailableException("the links carrying this request died"));
            return;
        }
        if (request.cancelled) {
            return;
        }
        reason.increment();
        LinkMultiplexer best = pick(from);
        if (best != null) {
            best.submit(request);
            return;
        }
        request.parkedSinceNanos = System.nanoTime();
        Runnable hook = beforePark;
        if (hook != null) {
            hook.run();
        }
        parked.add(request);
        // A link that became ready after the pick above may have found nothing parked (Listener.onReady): look again,
        // for a link other than the one that failed or refused this request (that one must not get it straight back).
        if (pick(from) != null) {
            unpark();
        }
    }

    /** A link is ready: orphans waiting for one go now. */
    private void unpark() {
        PendingRequest request;
        while ((request = parked.poll()) != null) {
            if (!request.cancelled) {
                dispatch(request, null);
            }
        }
    }

    private void expireParked() {
        long now = System.nanoTime();
        PendingRequest request;
        while ((request = parked.peek()) != null && now - request.parkedSinceNanos > FAILOVER_WAIT_NANOS) {
            if (parked.remove(request) && !request.cancelled) {
                request.fail(new UpstreamUnavailableException("no megaphone link came back in time"));
            }
        }
    }

    @Override
    public void close() {
        closing = true;
        slots.forEach(LinkSlot::stop);
        retiring.forEach(LinkSlot::stop);
        PendingRequest request;
        while ((request = parked.poll()) != null) {
            request.fail(new UpstreamUnavailableException("the ECM is shutting down"));
        }
        ScheduledFuture<?> expiry = parkedExpiry;
        if (expiry != null) {
            expiry.cancel(false);
        }
        resolver.close();
        if (ownsGroup) {
            group.shutdownGracefully(0, 2, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    /**
     * Sends GOAWAY on every link; each closes once its requests are answered, and no link connects again: a drained
     * pool takes no traffic until it is closed (a pool does not restart).
     */
    public void drain() {
        for (LinkSlot slot : slots) {
            slot.retire("ECM shutting down");
        }
    }

    private final class Listener implements LinkMultiplexer.Listener {
        @Override
        public void onReady(LinkMultiplexer link) {
            if (!parked.isEmpty()) {
                unpark();
            }
        }

        @Override
        public void onHandshakeFailed(LinkMultiplexer link, Throwable cause) {
        }

        @Override
        public void onClosed(LinkMultiplexer link, List<PendingRequest> orphans) {
            if (!retiring.isEmpty()) {
                retiring.removeIf(LinkSlot::idle); // a retired slot never reconnects
            }
            if (!orphans.isEmpty()) {
                log.info("re-sending {} requests of {} on other links", orphans.size(), link);
            }
            for (PendingRequest request : orphans) {
                resend(request, link, resendsLinkClosed);
            }
        }

        @Override
        public void redispatch(PendingRequest request, LinkMultiplexer from) {
            resend(request, from, resendsLinkClosed);
        }

        @Override
        public void refused(PendingRequest request, LinkMultiplexer from) {
            resend(request, from, resendsRefused);
        }

        @Override
        public boolean anotherLinkAnswers(LinkMultiplexer self) {
            long now = System.nanoTime();
            long stall = settings.stallTimeout().toNanos();
            for (LinkSlot slot : slots) {
                LinkMultiplexer link = slot.current();
                if (link != null && link != self && link.ready() && link.answeredWithin(now, stall / 2)) {
                    return true;
                }
            }
            return false;
        }
    }
}
