package io.megaphone.edge;

import org.springframework.boot.reactor.netty.NettyReactiveWebServerFactory;
import org.springframework.boot.web.server.WebServer;
import org.springframework.boot.web.server.reactive.AbstractReactiveWebServerFactory;
import org.springframework.http.server.reactive.HttpHandler;

/**
 * Makes the BOSH server the application's main web server. Spring's {@code server.*} settings (port, address)
 * reach it through the factory; the WebFlux handler it is offered is not used (only BOSH and the demo page are
 * served on this port).
 *
 * <p>Spring Boot builds the management (Actuator) server's factory by instantiating this same class in a child
 * context with its no-argument constructor: that instance, having no edge, serves WebFlux on plain Reactor Netty.
 */
public final class BoshServerFactory extends AbstractReactiveWebServerFactory {

    private final BoshEdge edge;
    private final int ioThreads;

    /** For Spring Boot's management child context: a plain Reactor Netty server for Actuator. */
    public BoshServerFactory() {
        this(null, 0);
    }

    BoshServerFactory(BoshEdge edge, int ioThreads) {
        this.edge = edge;
        this.ioThreads = ioThreads;
    }

    @Override
    public WebServer getWebServer(HttpHandler httpHandler) {
        if (edge == null) {
            NettyReactiveWebServerFactory management = new NettyReactiveWebServerFactory(getPort());
            management.setAddress(getAddress());
            management.setShutdown(getShutdown());
            return management.getWebServer(httpHandler);
        }
        return new BoshServer(edge, getAddress(), getPort(), ioThreads);
    }
}
