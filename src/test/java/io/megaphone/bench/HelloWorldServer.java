// SPDX-License-Identifier: Apache-2.0
package io.megaphone.bench;

import io.netty.handler.codec.http.HttpHeaderNames;
import reactor.core.publisher.Mono;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServer;

/**
 * The ceiling of the forwarding benchmark (bench/forwarding.sh): a bare Reactor Netty HTTP server that reads a
 * POSTed body and answers it at once with the same small {@code <body/>} as {@link InstantUpstream}, with
 * no forwarding. Usage: {@code HelloWorldServer <port> [path]}; loopback only; default event loops (one per
 * CPU).
 */
public final class HelloWorldServer {

    private HelloWorldServer() {
    }

    public static void main(String[] args) {
        int port = Integer.parseInt(args[0]);
        String path = args.length > 1 ? args[1] : "/http-bind";
        String body = new String(InstantUpstream.BODY, java.nio.charset.StandardCharsets.UTF_8);
        DisposableServer server = HttpServer.create().host("127.0.0.1").port(port)
                .route(routes -> routes.post(path, (request, response) -> response
                        .header(HttpHeaderNames.CONTENT_TYPE, "text/xml; charset=utf-8")
                        .sendString(request.receive().aggregate().then(Mono.just(body)))))
                .bindNow();
        System.out.println("hello world listening on " + server.address());
        server.onDispose().block();
    }
}
