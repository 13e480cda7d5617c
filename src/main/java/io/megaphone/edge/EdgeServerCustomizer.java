package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import org.springframework.stereotype.Component;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.ProxyProtocolSupportType;

/**
 * Server-level options of the BOSH port: the PROXY protocol, and the timeouts that close slow or silent
 * connections (the held part of a request is never timed here: that is the upstream timeout's job).
 */
@Component
final class EdgeServerCustomizer implements NettyServerCustomizer {

    private final MegaphoneProperties.Edge edge;

    EdgeServerCustomizer(MegaphoneProperties properties) {
        this.edge = properties.edge();
    }

    @Override
    public HttpServer apply(HttpServer server) {
        HttpServer configured = server.requestTimeout(edge.requestReadTimeout())
                .readTimeout(edge.requestReadTimeout())
                .idleTimeout(edge.idleTimeout());
        return edge.proxyProtocol() ? configured.proxyProtocol(ProxyProtocolSupportType.ON) : configured;
    }
}
