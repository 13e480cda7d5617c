package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties;
import io.megaphone.metrics.EdgeMetrics;
import io.netty.channel.ChannelFutureListener;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import reactor.netty.NettyPipeline;
import reactor.netty.http.server.HttpServer;
import reactor.netty.http.server.ProxyProtocolSupportType;

/**
 * Options of the BOSH port's server (Boot's Reactor Netty server), all Reactor Netty's own but one:
 * <ul>
 *   <li>{@code idleTimeout}: a connection with no request in it closes after {@code megaphone.edge.idle-timeout};</li>
 *   <li>{@code requestTimeout}: a request body not received within {@code megaphone.edge.request-read-timeout}
 *       gets 408 (slow bodies); it ends with the body, so it never limits how long a request is held;</li>
 *   <li>{@link RequestHeadDeadline}: a request head not complete within the idle timeout closes the connection
 *       (trickled headers, which reset Reactor Netty's idle timer);</li>
 *   <li>the PROXY protocol (v1/v2) when {@code megaphone.edge.proxy-protocol} is on: the proxied source is then the
 *       request's remote address;</li>
 *   <li>client connections counted for the {@code megaphone.edge.connections.*} meters, with one shared close
 *       listener (no object per connection).</li>
 * </ul>
 * Header and initial-line limits are {@code server.max-http-request-header-size} and
 * {@code server.netty.max-initial-line-length} (application.yaml).
 */
final class EdgeServerCustomizer implements NettyServerCustomizer {

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
        long headTimeoutNanos = edge.idleTimeout().toNanos();
        HttpServer configured = server.idleTimeout(edge.idleTimeout())
                .requestTimeout(edge.requestReadTimeout())
                .doOnChannelInit((observer, channel, remoteAddress) -> {
                    metrics.connectionOpened();
                    channel.closeFuture().addListener(countClose);
                    if (channel.pipeline().get(NettyPipeline.HttpCodec) != null) { // HTTP/1.1 (h2c has no head)
                        channel.pipeline().addAfter(NettyPipeline.HttpCodec, RequestHeadDeadline.NAME,
                                new RequestHeadDeadline(headTimeoutNanos));
                    }
                });
        return edge.proxyProtocol() ? configured.proxyProtocol(ProxyProtocolSupportType.ON) : configured;
    }
}
