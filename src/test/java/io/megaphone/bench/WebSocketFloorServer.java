// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import java.nio.charset.StandardCharsets;
import reactor.core.publisher.Flux;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.WebsocketServerSpec;

/**
 * The floor of the idle-WebSocket memory benchmark (bench/websocket-heap.sh): a bare Reactor Netty WebSocket route
 * (subprotocol {@code xmpp}) that answers a client's {@code <open/>} with the same two messages as the ECM's
 * stand-in link ({@link XmppStreamAnswers}) and is otherwise idle. No Spring, no link. Usage:
 * {@code WebSocketFloorServer <port> [path]}; loopback only; default event loops (one per CPU).
 */
public final class WebSocketFloorServer {

    private WebSocketFloorServer() {
    }

    public static void main(String[] args) {
        int port = Integer.parseInt(args[0]);
        String path = args.length > 1 ? args[1] : "/xmpp-websocket";
        String open = new String(XmppStreamAnswers.OPEN, StandardCharsets.UTF_8);
        String features = new String(XmppStreamAnswers.FEATURES, StandardCharsets.UTF_8);
        DisposableServer server = HttpServer.create().host("127.0.0.1").port(port)
                .route(routes -> routes.ws(path, (in, out) -> out.sendString(in.receive().asString()
                                .concatMap(message -> XmppStreamAnswers.isOpen(message)
                                        ? Flux.just(open, features) : Flux.empty())),
                        WebsocketServerSpec.builder().protocols("xmpp").build()))
                .bindNow();
        System.out.println("websocket floor listening on " + server.address());
        server.onDispose().block();
    }
}
