// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.metrics.EdgeMetrics;
import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelOption;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import reactor.netty.NettyPipeline;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.ProxyProtocolSupportType;

/**
 * Options of the BOSH port's server (Boot's Reactor Netty server):
 * <ul>
 *   <li>{@link RequestDeadline}, with {@code megaphone.edge.idle-timeout} for the request head and
 *       {@code megaphone.edge.request-read-timeout} for the body; neither limits how long a request is held;</li>
 *   <li>the PROXY protocol (v1/v2) when {@code megaphone.edge.proxy-protocol} is on: the proxied source is then the
 *       request's remote address;</li>
 *   <li>never Reactor Netty's forwarded-header handling, which Boot turns on by itself on a cloud platform
 *       (Kubernetes included) and which believes any client;</li>
 *   <li>client connections counted for the {@code megaphone.edge.connections.*} meters, with one shared close
 *       listener, and one shared receive-buffer allocator (no object per connection for either).</li>
 * </ul>
 * Header and initial-line limits are {@code server.max-http-request-header-size} and
 * {@code server.netty.max-initial-line-length} (application.yaml).
 */
final class EdgeServerCustomizer implements NettyServerCustomizer {

    private static final AdaptiveRecvByteBufAllocator RECEIVE_ALLOCATOR = new AdaptiveRecvByteBufAllocator();

    private final MegaphoneProperties.Edge edge;
    private final EdgeMetrics metrics;
    private final ChannelFutureListener countClose;

    EdgeServerCustomizer(MegaphoneProperties.Edge edge, EdgeMetrics metrics) {
        this.edge = edge;
        this.metrics = metrics;
        this.countClose = future -> metrics.connectionClosed();
    }

    @Override
    public HttpServer apply(HttpServer server) {
        long headNanos = edge.idleTimeout().toNanos();
        long bodyNanos = edge.requestReadTimeout().toNanos();
        HttpServer configured = server
                // the socket peer (or the PROXY protocol's source) stays the request's remote address: forwarded
                // headers are read by ClientAddressResolver, and only from trusted proxies
                .forwarded(false)
                // one receive-buffer allocator for all client connections (Netty's default is one per connection)
                .childOption(ChannelOption.RCVBUF_ALLOCATOR, RECEIVE_ALLOCATOR)
                .doOnChannelInit((observer, channel, remoteAddress) -> {
                    metrics.connectionOpened();
                    channel.closeFuture().addListener(countClose);
                    if (channel.pipeline().get(NettyPipeline.HttpCodec) != null) { // HTTP/1.1 (h2c has no head)
                        channel.pipeline().addAfter(NettyPipeline.HttpCodec, RequestDeadline.NAME,
                                new RequestDeadline(headNanos, bodyNanos, metrics));
                    }
                });
        return edge.proxyProtocol() ? configured.proxyProtocol(ProxyProtocolSupportType.ON) : configured;
    }
}
