// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.link.LinkPool;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.List;
import java.util.Map;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.Ordered;
import org.springframework.web.reactive.handler.SimpleUrlHandlerMapping;
import org.springframework.web.reactive.socket.CloseStatus;
import org.springframework.web.reactive.socket.WebSocketHandler;
import org.springframework.web.reactive.socket.WebSocketSession;
import org.springframework.web.reactive.socket.server.support.HandshakeWebSocketService;
import org.springframework.web.reactive.socket.server.support.WebSocketHandlerAdapter;
import org.springframework.web.reactive.socket.server.upgrade.ReactorNettyRequestUpgradeStrategy;
import reactor.core.publisher.Mono;
import reactor.netty.http.server.WebsocketServerSpec;

/**
 * The XMPP-over-WebSocket endpoint (RFC 7395) on the BOSH port, {@code megaphone.edge.websocket.path}: a
 * {@link SimpleUrlHandlerMapping} to a {@link WebSocketHandler}, run by a {@link WebSocketHandlerAdapter} whose
 * {@link XmppWebSocketService} checks the handshake and opens the link stream before WebFlux upgrades. Reactor
 * Netty refuses a frame over {@code max-message-bytes} itself (close 1009).
 */
@Configuration(proxyBeanMethods = false)
@ConditionalOnProperty(prefix = "megaphone.edge.websocket", name = "enabled", havingValue = "true",
        matchIfMissing = true)
class WebSocketConfiguration {

    @Bean
    XmppWebSocketService xmppWebSocketService(MegaphoneProperties properties, LinkPool pool, MeterRegistry registry,
                                              BoshHandler bosh) {
        int max = properties.edge().websocket().maxMessageBytes();
        HandshakeWebSocketService handshake = new HandshakeWebSocketService(new ReactorNettyRequestUpgradeStrategy(
                () -> WebsocketServerSpec.builder().maxFramePayloadLength(max)));
        return new XmppWebSocketService(handshake, pool, properties.edge(), registry, bosh::admitNewStream);
    }

    /** Before the functional routes (order -1), so that the path is the endpoint's whatever else is routed. */
    @Bean
    SimpleUrlHandlerMapping xmppWebSocketMapping(MegaphoneProperties properties) {
        return new SimpleUrlHandlerMapping(Map.of(properties.edge().websocket().path(), new Placeholder()), -2);
    }

    /**
     * Runs the endpoint's handler through {@link XmppWebSocketService}; ordered before the adapter WebFlux
     * registers by itself (order 2), which would upgrade without the checks.
     */
    @Bean
    WebSocketHandlerAdapter xmppWebSocketHandlerAdapter(XmppWebSocketService service) {
        WebSocketHandlerAdapter adapter = new WebSocketHandlerAdapter(service);
        adapter.setOrder(Ordered.HIGHEST_PRECEDENCE);
        return adapter;
    }

    /**
     * What the path maps to: it names the subprotocol for WebFlux's checks of a request that is no upgrade; an
     * upgrade runs the handler {@link XmppWebSocketService} makes with the request's stream instead.
     */
    static final class Placeholder implements WebSocketHandler {
        @Override
        public List<String> getSubProtocols() {
            return List.of(XmppWebSocketService.SUBPROTOCOL);
        }

        @Override
        public Mono<Void> handle(WebSocketSession session) {
            return session.close(CloseStatus.SERVER_ERROR);
        }
    }
}
