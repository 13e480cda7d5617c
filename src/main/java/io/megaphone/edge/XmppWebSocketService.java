// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkStream;
import io.megaphone.link.UpstreamUnavailableException;
import io.megaphone.metrics.WebSocketMetrics;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.HttpStatus;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.reactive.socket.CloseStatus;
import org.springframework.web.reactive.socket.WebSocketHandler;
import org.springframework.web.reactive.socket.WebSocketSession;
import org.springframework.web.reactive.socket.server.WebSocketService;
import org.springframework.web.reactive.socket.server.support.HandshakeWebSocketService;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

/**
 * The handshake of the XMPP-over-WebSocket endpoint (RFC 7395), in front of WebFlux's own
 * {@link HandshakeWebSocketService}: it refuses a bad {@code Origin} (403), a client that does not offer the
 * {@code xmpp} subprotocol (400) and, while draining, every handshake (503); then it opens the link stream
 * <em>before</em> the upgrade, so that a handshake no link can take gets 503 and no 101 (the client's WebSocket
 * fails; Converse.js 14 retries it rather than switch to BOSH: ConverseClientTest). Only once ejabberd has opened the stream does WebFlux answer 101 and run an {@link XmppWebSocketSession}.
 * It keeps the sessions open, for the drain.
 */
final class XmppWebSocketService implements WebSocketService {

    private static final Logger log = LoggerFactory.getLogger(XmppWebSocketService.class);
    static final String SUBPROTOCOL = "xmpp";

    private final HandshakeWebSocketService handshake;
    private final LinkPool pool;
    private final MegaphoneProperties.WebSocket config;
    private final ClientAddressResolver clientAddresses;
    private final WebSocketMetrics metrics;
    private final Set<String> origins;
    private final boolean anyOrigin;
    private final int retryAfterSeconds;
    private final Set<XmppWebSocketSession> open = ConcurrentHashMap.newKeySet();
    private volatile boolean draining;

    XmppWebSocketService(HandshakeWebSocketService handshake, LinkPool pool, MegaphoneProperties.Edge edge,
                         io.micrometer.core.instrument.MeterRegistry registry) {
        this.handshake = handshake;
        this.pool = pool;
        this.config = edge.websocket();
        this.clientAddresses = new ClientAddressResolver(edge.trustedProxies(), edge.forwardedHeader());
        this.metrics = new WebSocketMetrics(registry, open::size);
        List<String> allowed = config.allowedOrigins();
        this.anyOrigin = allowed.contains("*");
        this.origins = Set.copyOf(allowed);
        this.retryAfterSeconds = edge.retryAfterSeconds();
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
        var client = clientAddresses.resolve(exchange.getRequest().getRemoteAddress(), headers).address();
        return pool.openStream(client, config.streamWindow())
                .onErrorResume(UpstreamUnavailableException.class, e -> {
                    log.debug("WebSocket handshake refused: {}", e.getMessage());
                    return refuse(exchange, HttpStatus.SERVICE_UNAVAILABLE, "unavailable").then(Mono.empty());
                })
                .publishOn(connectionLoop(exchange)) // STREAM_OPENED arrives on the link's loop
                .flatMap(stream -> upgrade(exchange, stream));
    }

    /**
     * The event loop of the exchange's own connection: the upgrade (the 101, the pipeline's switch to WebSocket
     * frames) runs there, as Reactor Netty expects, not on the link's loop that completed the stream's opening.
     */
    private static reactor.core.scheduler.Scheduler connectionLoop(ServerWebExchange exchange) {
        Object request = org.springframework.http.server.reactive.ServerHttpRequestDecorator.getNativeRequest(
                exchange.getRequest());
        if (request instanceof reactor.netty.Connection connection) {
            return reactor.core.scheduler.Schedulers.fromExecutor(connection.channel().eventLoop());
        }
        return reactor.core.scheduler.Schedulers.immediate();
    }

    private Mono<Void> upgrade(ServerWebExchange exchange, LinkStream stream) {
        java.util.concurrent.atomic.AtomicBoolean ran = new java.util.concurrent.atomic.AtomicBoolean();
        WebSocketHandler xmpp = new WebSocketHandler() {
            @Override
            public List<String> getSubProtocols() {
                return List.of(SUBPROTOCOL);
            }

            @Override
            public Mono<Void> handle(WebSocketSession session) {
                ran.set(true);
                metrics.opened("opened");
                XmppWebSocketSession running = new XmppWebSocketSession(session, stream, config, metrics,
                        XmppWebSocketService.this::jitter);
                open.add(running);
                return running.run().doFinally(signal -> open.remove(running));
            }
        };
        return handshake.handleRequest(exchange, xmpp).doFinally(signal -> {
            if (!ran.get()) { // the upgrade failed after the stream opened: it must not stay open upstream
                stream.close(CloseStatus.SERVER_ERROR.getCode(), "WebSocket handshake failed");
            }
        });
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
