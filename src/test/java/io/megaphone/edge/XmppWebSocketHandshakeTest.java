// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.springframework.http.HttpCookie;
import org.springframework.mock.http.server.reactive.MockServerHttpRequest;
import org.springframework.mock.web.server.MockServerWebExchange;
import org.springframework.web.reactive.socket.HandshakeInfo;
import org.springframework.web.reactive.socket.WebSocketHandler;
import org.springframework.web.reactive.socket.WebSocketSession;
import org.springframework.web.reactive.socket.server.RequestUpgradeStrategy;
import org.springframework.web.reactive.socket.server.support.HandshakeWebSocketService;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Mono;

/** What WebFlux's handshake sees of a browser's upgrade request, and so what each open WebSocket keeps of it. */
class XmppWebSocketHandshakeTest {

    @Test
    void theHandshakeIsAcceptedAndItsSessionKeepsOnlyTheHeadersTheHandshakeReadsAndNoCookie() {
        MockServerHttpRequest browser = MockServerHttpRequest.get("http://ecm.example:5280/xmpp-websocket")
                .header("Connection", "Upgrade").header("Pragma", "no-cache").header("Cache-Control", "no-cache")
                .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)")
                .header("Upgrade", "websocket").header("Origin", "https://chat.example")
                .header("Sec-WebSocket-Version", "13").header("Accept-Language", "en-US,en;q=0.9")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
                .header("Sec-WebSocket-Protocol", "xmpp")
                .cookie(new HttpCookie("JSESSIONID", "0123456789abcdef0123456789abcdef")).build();
        AtomicReference<HandshakeInfo> kept = new AtomicReference<>();
        RequestUpgradeStrategy capture = new RequestUpgradeStrategy() {
            @Override
            public Mono<Void> upgrade(ServerWebExchange exchange, WebSocketHandler handler, String subProtocol,
                                      Supplier<HandshakeInfo> handshakeInfoFactory) {
                kept.set(handshakeInfoFactory.get());
                return Mono.empty();
            }
        };
        WebSocketHandler xmpp = new WebSocketHandler() {
            @Override
            public List<String> getSubProtocols() {
                return List.of(XmppWebSocketService.SUBPROTOCOL);
            }

            @Override
            public Mono<Void> handle(WebSocketSession session) {
                return Mono.empty();
            }
        };

        new HandshakeWebSocketService(capture)
                .handleRequest(XmppWebSocketService.forHandshake(MockServerWebExchange.from(browser)), xmpp)
                .block();

        HandshakeInfo info = kept.get();
        assertThat(info).as("the handshake reached the upgrade").isNotNull();
        assertThat(info.getSubProtocol()).isEqualTo("xmpp");
        assertThat(info.getUri().getPath()).isEqualTo("/xmpp-websocket");
        assertThat(info.getHeaders().headerNames()).containsExactlyInAnyOrderElementsOf(
                XmppWebSocketService.HANDSHAKE_HEADERS);
        assertThat(info.getCookies()).isEmpty();
    }
}
