// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkStream;
import io.megaphone.link.UpstreamUnavailableException;
import io.megaphone.metrics.WebSocketMetrics;
import io.netty.channel.EventLoop;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.http.HttpCookie;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.HttpStatus;
import org.springframework.http.server.reactive.ServerHttpRequest;
import org.springframework.http.server.reactive.ServerHttpRequestDecorator;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.util.CollectionUtils;
import org.springframework.util.LinkedMultiValueMap;
import org.springframework.util.MultiValueMap;
import org.springframework.web.reactive.socket.CloseStatus;
import org.springframework.web.reactive.socket.WebSocketHandler;
import org.springframework.web.reactive.socket.WebSocketSession;
import org.springframework.web.reactive.socket.server.WebSocketService;
import org.springframework.web.reactive.socket.server.support.HandshakeWebSocketService;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.Disposable;
import reactor.core.Disposables;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Scheduler;
import reactor.core.scheduler.Schedulers;

/**
 * The handshake of the XMPP-over-WebSocket endpoint (RFC 7395), in front of WebFlux's own
 * {@link HandshakeWebSocketService}: it refuses a bad {@code Origin} (403), a client that does not offer the
 * {@code xmpp} subprotocol (400) and, with 503 and a jittered Retry-After, every handshake while draining, over
 * {@code max-open} streams, or over the session-creation rates BOSH's creations pay too; then it opens the link
 * stream <em>before</em> the upgrade, so that a handshake no link can take gets 503 and no 101 (the client's
 * WebSocket fails; Converse.js 14 retries it rather than switch to BOSH: ConverseClientTest). Only once ejabberd has
 * opened the stream does WebFlux answer 101 and run an {@link XmppWebSocketSession}. It keeps the sessions open, for
 * the drain and the pings.
 */
final class XmppWebSocketService implements WebSocketService, DisposableBean {

    private static final Logger log = LoggerFactory.getLogger(XmppWebSocketService.class);
    static final String SUBPROTOCOL = "xmpp";
    private static final List<String> SUBPROTOCOLS = List.of(SUBPROTOCOL);
    /** What {@link HandshakeWebSocketService} reads of the request's headers. */
    static final List<String> HANDSHAKE_HEADERS = List.of(HttpHeaders.UPGRADE, HttpHeaders.CONNECTION,
            "Sec-WebSocket-Key", "Sec-WebSocket-Protocol");

    private final HandshakeWebSocketService handshake;
    private final LinkPool pool;
    private final MegaphoneProperties.WebSocket config;
    private final ClientAddressResolver clientAddresses;
    private final WebSocketMetrics metrics;
    private final Set<String> origins;
    private final boolean anyOrigin;
    private final int retryAfterSeconds;
    private final Set<XmppWebSocketSession> open = ConcurrentHashMap.newKeySet();
    private final Map<EventLoop, Scheduler> loops = new ConcurrentHashMap<>();
    private final LongSupplier jitter = this::jitter;
    private volatile boolean draining;
    private final Disposable pinger;
    private final Function<ClientAddressResolver.ClientAddress, AdmissionControl.Refusal> sessionRate;

    XmppWebSocketService(HandshakeWebSocketService handshake, LinkPool pool, MegaphoneProperties.Edge edge,
                         io.micrometer.core.instrument.MeterRegistry registry,
                         Function<ClientAddressResolver.ClientAddress, AdmissionControl.Refusal> sessionRate) {
        this.sessionRate = sessionRate;
        this.handshake = handshake;
        this.pool = pool;
        this.config = edge.websocket();
        this.clientAddresses = new ClientAddressResolver(edge.trustedProxies(), edge.forwardedHeader());
        this.metrics = new WebSocketMetrics(registry, open::size);
        List<String> allowed = config.allowedOrigins();
        this.anyOrigin = allowed.contains("*");
        this.origins = Set.copyOf(allowed);
        this.retryAfterSeconds = edge.retryAfterSeconds();
        long ping = config.pingInterval().toMillis();
        this.pinger = ping <= 0 ? Disposables.disposed()
                : Schedulers.parallel().schedulePeriodically(this::pingAll, ping, ping, TimeUnit.MILLISECONDS);
    }

    /** One task for every open WebSocket: pings it, or ends it when it did not answer the previous ping. */
    private void pingAll() {
        for (XmppWebSocketSession session : open) {
            try {
                session.pingOrEnd();
            } catch (RuntimeException e) {
                log.warn("WebSocket ping failed", e);
            }
        }
    }

    @Override
    public void destroy() {
        pinger.dispose();
    }

    @Override
    public Mono<Void> handleRequest(ServerWebExchange exchange, WebSocketHandler handler) {
        HttpHeaders headers = exchange.getRequest().getHeaders();
        if (!isUpgrade(exchange)) {
            return handshake.handleRequest(exchange, handler); // WebFlux answers it (400, 405)
        }
        String origin = headers.getOrigin();
        if (origin != null && !anyOrigin && !origins.contains(origin)) {
            return refuse(exchange, HttpStatus.FORBIDDEN, "bad_origin");
        }
        if (!offersXmpp(headers)) {
            return refuse(exchange, HttpStatus.BAD_REQUEST, "bad_subprotocol");
        }
        if (draining) {
            return refuse(exchange, HttpStatus.SERVICE_UNAVAILABLE, "draining");
        }
        if (open.size() >= config.maxOpen()) {
            return refuse(exchange, HttpStatus.SERVICE_UNAVAILABLE, "stream_limit");
        }
        ClientAddressResolver.ClientAddress client = clientAddresses.resolve(exchange.getRequest().getRemoteAddress(),
                headers);
        AdmissionControl.Refusal refusal = sessionRate.apply(client);
        if (refusal != null) {
            return refuse(exchange, HttpStatus.SERVICE_UNAVAILABLE, refusal == AdmissionControl.Refusal.SESSION_RATE
                    ? "session_rate" : "session_rate_per_client");
        }
        return pool.openStream(client.address(), config.streamWindow())
                .onErrorResume(UpstreamUnavailableException.class, e -> {
                    log.debug("WebSocket handshake refused: {}", e.getMessage());
                    return refuse(exchange, HttpStatus.SERVICE_UNAVAILABLE, "unavailable").then(Mono.empty());
                })
                .publishOn(connectionLoop(exchange)) // STREAM_OPENED arrives on the link's loop
                .flatMap(stream -> upgrade(exchange, stream))
                // A client gone between STREAM_OPENED and the upgrade: the opened stream, dropped on the way, must
                // not stay open upstream (it would hold a c2s and a max_streams slot until ejabberd timed it out).
                .doOnDiscard(LinkStream.class, XmppWebSocketService::closeDropped);
    }

    private static void closeDropped(LinkStream stream) {
        stream.close(CloseStatus.GOING_AWAY.getCode(), "client went away");
    }

    /**
     * The event loop of the exchange's own connection: the upgrade (the 101, the pipeline's switch to WebSocket
     * frames) runs there, as Reactor Netty expects, not on the link's loop that completed the stream's opening. One
     * scheduler per event loop, made once (there are a few loops, and one per handshake would stay referenced for
     * the whole life of its WebSocket).
     */
    private Scheduler connectionLoop(ServerWebExchange exchange) {
        Object request = ServerHttpRequestDecorator.getNativeRequest(exchange.getRequest());
        if (request instanceof reactor.netty.Connection connection) {
            return loops.computeIfAbsent(connection.channel().eventLoop(), Schedulers::fromExecutorService);
        }
        return Schedulers.immediate();
    }

    private Mono<Void> upgrade(ServerWebExchange exchange, LinkStream stream) {
        Upgrade xmpp = new Upgrade(stream);
        return handshake.handleRequest(forHandshake(exchange), xmpp).doFinally(signal -> xmpp.closeIfNotRun());
    }

    /**
     * The exchange as WebFlux's handshake sees it: its request has only the headers the handshake reads, and no
     * cookies. WebFlux keeps a copy of both in the session's {@code HandshakeInfo} for the WebSocket's whole life,
     * and nothing reads them there; a browser's other headers and cookies would cost every open WebSocket their size.
     */
    static ServerWebExchange forHandshake(ServerWebExchange exchange) {
        return exchange.mutate().request(new HandshakeRequest(exchange.getRequest())).build();
    }

    /** A request with only the {@link #HANDSHAKE_HEADERS} and no cookies. */
    private static final class HandshakeRequest extends ServerHttpRequestDecorator {
        private static final MultiValueMap<String, HttpCookie> NO_COOKIES =
                CollectionUtils.unmodifiableMultiValueMap(new LinkedMultiValueMap<>());
        private final HttpHeaders headers;

        HandshakeRequest(ServerHttpRequest request) {
            super(request);
            HttpHeaders read = new HttpHeaders();
            for (String name : HANDSHAKE_HEADERS) {
                List<String> values = request.getHeaders().get(name);
                if (values != null) {
                    read.addAll(name, values);
                }
            }
            this.headers = HttpHeaders.readOnlyHttpHeaders(read);
        }

        @Override
        public HttpHeaders getHeaders() {
            return headers;
        }

        @Override
        public MultiValueMap<String, HttpCookie> getCookies() {
            return NO_COOKIES;
        }
    }

    /** The handler WebFlux runs once it has upgraded: the stream's {@link XmppWebSocketSession}. */
    private final class Upgrade implements WebSocketHandler {
        private final LinkStream stream;
        private volatile boolean ran;

        Upgrade(LinkStream stream) {
            this.stream = stream;
        }

        @Override
        public List<String> getSubProtocols() {
            return SUBPROTOCOLS;
        }

        @Override
        public Mono<Void> handle(WebSocketSession session) {
            ran = true;
            metrics.opened("opened");
            XmppWebSocketSession running = new XmppWebSocketSession(session, stream, config, metrics, jitter);
            open.add(running);
            return running.run().doFinally(signal -> open.remove(running));
        }

        /** The upgrade failed after the stream opened: it must not stay open upstream. */
        void closeIfNotRun() {
            if (!ran) {
                stream.close(CloseStatus.SERVER_ERROR.getCode(), "WebSocket handshake failed");
            }
        }
    }

    private long jitter() {
        long max = config.linkLostJitter().toMillis();
        return max <= 0 ? 0 : ThreadLocalRandom.current().nextLong(max + 1);
    }

    private Mono<Void> refuse(ServerWebExchange exchange, HttpStatus status, String result) {
        metrics.opened(result);
        ServerHttpResponse response = exchange.getResponse();
        response.setStatusCode(status);
        if (status == HttpStatus.SERVICE_UNAVAILABLE) {
            response.getHeaders().set(HttpHeaders.RETRY_AFTER,
                    Integer.toString(1 + ThreadLocalRandom.current().nextInt(retryAfterSeconds)));
        }
        return response.setComplete();
    }

    private static boolean isUpgrade(ServerWebExchange exchange) {
        HttpHeaders headers = exchange.getRequest().getHeaders();
        return HttpMethod.GET.equals(exchange.getRequest().getMethod())
                && "websocket".equalsIgnoreCase(headers.getUpgrade())
                && headers.getFirst("Sec-WebSocket-Key") != null;
    }

    private static boolean offersXmpp(HttpHeaders headers) {
        for (String value : headers.getOrEmpty("Sec-WebSocket-Protocol")) {
            for (String protocol : value.split(",")) {
                if (protocol.strip().equals(SUBPROTOCOL)) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Streams open now. */
    int openStreams() {
        return open.size();
    }

    /** No new stream from now on: every handshake gets 503. */
    void startDraining() {
        draining = true;
    }

    /** Closes every open stream with 1001 (going away): its client reconnects, to another ECM. */
    void closeAll() {
        for (XmppWebSocketSession session : open) {
            session.end(CloseStatus.GOING_AWAY, "drain");
        }
    }
}
