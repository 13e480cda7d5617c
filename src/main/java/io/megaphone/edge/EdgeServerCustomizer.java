package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import org.springframework.stereotype.Component;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.ProxyProtocolSupportType;

/** Server-level options of the BOSH port that Spring Boot has no property for: the PROXY protocol. */
@Component
final class EdgeServerCustomizer implements NettyServerCustomizer {

    private final boolean proxyProtocol;

    EdgeServerCustomizer(MegaphoneProperties properties) {
        this.proxyProtocol = properties.edge().proxyProtocol();
    }

    @Override
    public HttpServer apply(HttpServer server) {
        return proxyProtocol ? server.proxyProtocol(ProxyProtocolSupportType.ON) : server;
    }
}
