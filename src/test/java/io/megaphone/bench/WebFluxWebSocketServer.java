// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.context.support.GenericApplicationContext;
import org.springframework.web.reactive.HandlerMapping;
import org.springframework.web.reactive.handler.SimpleUrlHandlerMapping;
import org.springframework.web.reactive.socket.WebSocketHandler;
import org.springframework.web.reactive.socket.WebSocketMessage;
import org.springframework.web.reactive.socket.WebSocketSession;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * A reference point of the idle-WebSocket memory benchmark (bench/websocket-heap.sh): the smallest WebFlux
 * {@link WebSocketHandler} (subprotocol {@code xmpp}) on the Reactor Netty server Spring Boot creates, with the
 * ECM's class path and Boot's defaults, mapped by a {@link SimpleUrlHandlerMapping} and run by the
 * {@code WebSocketHandlerAdapter} WebFlux registers itself. It answers a client's {@code <open/>} with the same two
 * messages as the ECM's stand-in link ({@link XmppStreamAnswers}) and is otherwise idle. No link, no checks: what
 * WebFlux's WebSocket costs before the ECM adds anything. Usage: {@code WebFluxWebSocketServer <port> [path]};
 * loopback only; Actuator off.
 *
 * <p>Not a {@code @Configuration} (the mapping is registered by an initializer), so that the ECM's component scan
 * of {@code io.megaphone} does not pick it up in the tests.
 */
@EnableAutoConfiguration
public class WebFluxWebSocketServer {

    /** Answers {@code <open/>}, idle otherwise. */
    static final class Handler implements WebSocketHandler {
        private static final String OPEN = new String(XmppStreamAnswers.OPEN, StandardCharsets.UTF_8);
        private static final String FEATURES = new String(XmppStreamAnswers.FEATURES, StandardCharsets.UTF_8);

        @Override
        public List<String> getSubProtocols() {
            return List.of("xmpp");
        }

        @Override
        public Mono<Void> handle(WebSocketSession session) {
            Flux<WebSocketMessage> answers = session.receive()
                    .filter(message -> message.getType() == WebSocketMessage.Type.TEXT)
                    .map(WebSocketMessage::getPayloadAsText)
                    .concatMap(text -> XmppStreamAnswers.isOpen(text) ? Flux.just(OPEN, FEATURES) : Flux.empty())
                    .map(session::textMessage);
            return session.send(answers);
        }
    }

    public static void main(String[] args) {
        String path = args.length > 1 ? args[1] : "/xmpp-websocket";
        SpringApplication application = new SpringApplication(WebFluxWebSocketServer.class);
        application.addInitializers(context -> ((GenericApplicationContext) context)
                .registerBean("xmppMapping", HandlerMapping.class,
                        () -> new SimpleUrlHandlerMapping(Map.of(path, new Handler()), -1)));
        // spring.config.name: not the ECM's application.yaml, which is on this class path too; Boot's defaults
        application.run("--spring.config.name=webflux-websocket", "--server.address=127.0.0.1",
                "--server.port=" + args[0], "--management.server.port=-1", "--spring.main.banner-mode=off",
                "--logging.level.root=warn");
    }
}
