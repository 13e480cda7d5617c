// SPDX-License-Identifier: Apache-2.0
package io.megaphone.config;

import io.megaphone.link.HandshakeProof;
import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkSettings;
import io.megaphone.link.NodeDiscovery;
import org.springframework.boot.autoconfigure.condition.ConditionalOnExpression;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.net.ssl.SSLException;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.EventExecutor;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.util.NetUtil;
import org.springframework.context.SmartLifecycle;
import org.springframework.context.annotation.Bean;
import org.springframework.http.client.ReactorResourceFactory;
import reactor.netty.resources.LoopResources;
import org.springframework.context.annotation.Configuration;

/** Builds the {@link LinkPool} from {@code megaphone.link.*} and starts connecting at startup. */
@Configuration(proxyBeanMethods = false)
class LinkConfiguration {

    /**
     * The links run on the event loops of the web server (Reactor Netty's, from Boot's {@link ReactorResourceFactory},
     * epoll on Linux), so a request can go out, and its answer come back, on its client connection's own loop
     * ({@code LinkPool.pick}); the pool leaves those loops to the factory, which is closed after the pool.
     */
    @Bean(destroyMethod = "close")
    LinkPool linkPool(MegaphoneProperties properties, ReactorResourceFactory reactorResources) {
        MegaphoneProperties.Link link = properties.link();
        MegaphoneProperties.Tls tls = link.tls();
        LinkSettings settings = new LinkSettings(new HandshakeProof(secrets(link)), ecmName(link), link.heartbeat(),
                link.handshakeTimeout(), link.maxFrameBytes(), sslContext(tls),
                tls.enabled() && !tls.serverName().isBlank() ? tls.serverName() : null, link.stallTimeout());
        boolean discovery = !link.discovery().dnsName().isBlank();
        if (link.nodes().isEmpty() && !discovery) {
            throw new IllegalStateException("megaphone.link.nodes: [] (expected: at least one host:port of"
                    + " mod_megaphone, or megaphone.link.discovery.dns-name)");
        }
        LoopResources loops = reactorResources.getLoopResources();
        EventLoopGroup group = loops.onServer(true);
        int linksPerNode = link.linksPerNode() != null ? link.linksPerNode() : loopCount(group);
        LinkPool pool = new LinkPool(discovery ? List.of() : addresses(link.nodes()), linksPerNode, settings,
                properties.edge().upstreamTimeout(), link.reconnectMinBackoff(), link.reconnectMaxBackoff(),
                group, loops.onChannelClass(SocketChannel.class, group), false,
                LinkPool.dnsResolver(loops.onChannelClass(DatagramChannel.class, group),
                        nameServers(link.dns().nameServers()), link.dns().queryTimeout()));
        pool.start();
        return pool;
    }

    private static int loopCount(EventLoopGroup group) {
        int loops = 0;
        for (EventExecutor ignored : group) {
            loops++;
        }
        return loops;
    }

    /**
     * Closes the pool after the web server's graceful shutdown and before {@link ReactorResourceFactory} (phase 0)
     * shuts down the event loops the links run on. A destroy method would run too late: links would keep reconnecting
     * on loops that are shutting down, and those loops would not reach their quiet period.
     */
    @Bean
    SmartLifecycle linkPoolShutdown(LinkPool pool) {
        return new SmartLifecycle() {
            private volatile boolean running;

            @Override
            public void start() {
                running = true;
            }

            @Override
            public void stop() {
                running = false;
                pool.close();
            }

            @Override
            public boolean isRunning() {
                return running;
            }

            @Override
            public int getPhase() {
                return 1; // stops before phase 0, after the web server's phases
            }
        };
    }

    /** With a DNS name configured, keeps the pool's nodes in step with it ({@code nodes} is then ignored). */
    @Bean(destroyMethod = "close")
    @ConditionalOnExpression("!'${megaphone.link.discovery.dns-name:}'.isBlank()")
    NodeDiscovery nodeDiscovery(MegaphoneProperties properties, LinkPool pool) {
        MegaphoneProperties.Discovery discovery = properties.link().discovery();
        NodeDiscovery nodes = new NodeDiscovery(discovery.dnsName(), discovery.port(), List.of(), pool,
                InetAddress::getAllByName);
        nodes.start(discovery.refreshInterval());
        return nodes;
    }

    /** Shortest secret accepted, in bytes (as mod_megaphone's). */
    static final int MIN_SECRET_BYTES = 32;

    /**
     * The link secrets: {@code secret}, or the non-empty lines of {@code secret-file} (a rotation: the first proves,
     * any is accepted from the server), each at least {@link #MIN_SECRET_BYTES} bytes.
     */
    static List<byte[]> secrets(MegaphoneProperties.Link link) {
        String where = link.secret() != null && !link.secret().isEmpty() ? "megaphone.link.secret"
                : "megaphone.link.secret-file";
        List<byte[]> secrets = new java.util.ArrayList<>();
        for (String line : new String(secret(link), StandardCharsets.UTF_8).split("\\R")) {
            String secret = line.strip();
            if (secret.isEmpty()) {
                continue;
            }
            byte[] bytes = secret.getBytes(StandardCharsets.UTF_8);
            if (bytes.length < MIN_SECRET_BYTES) {
                throw new IllegalStateException(where + ": a secret of " + bytes.length + " bytes (expected: at least "
                        + MIN_SECRET_BYTES + ", the same as mod_megaphone's secret; e.g. openssl rand -hex 32)");
            }
            secrets.add(bytes);
        }
        return secrets;
    }

    static byte[] secret(MegaphoneProperties.Link link) {
        boolean hasSecret = link.secret() != null && !link.secret().isEmpty();
        boolean hasFile = link.secretFile() != null && !link.secretFile().isEmpty();
        if (hasSecret == hasFile) {
            throw new IllegalStateException("megaphone.link.secret / megaphone.link.secret-file: "
                    + (hasSecret ? "both set" : "neither set")
                    + " (expected: exactly one; e.g. MEGAPHONE_LINK_SECRET_FILE=/run/secrets/megaphone-link)");
        }
        if (hasSecret) {
            if (!link.inlineSecretAllowed() && !link.secret().equals(System.getenv("MEGAPHONE_LINK_SECRET"))) {
                throw new IllegalStateException("megaphone.link.secret: set in configuration (expected: with"
                        + " inline-secret-allowed=false, as in the prod profile, only from the MEGAPHONE_LINK_SECRET"
                        + " environment variable or megaphone.link.secret-file)");
            }
            return link.secret().getBytes(StandardCharsets.UTF_8);
        }
        try {
            String content = Files.readString(Path.of(link.secretFile()), StandardCharsets.UTF_8).strip();
            if (content.isEmpty()) {
                throw new IllegalStateException("megaphone.link.secret-file: " + link.secretFile()
                        + " is empty (expected: the shared secret of mod_megaphone)");
            }
            return content.getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("megaphone.link.secret-file: " + link.secretFile()
                    + " cannot be read (" + e + ")", e);
        }
    }

    /**
     * The one client {@link SslContext} of every link, from {@code megaphone.link.tls.*}; {@code null} when TLS is
     * off. Every file is read here, so a missing or bad one stops startup with a message naming the property.
     */
    static SslContext sslContext(MegaphoneProperties.Tls tls) {
        if (!tls.enabled()) {
            return null;
        }
        if (tls.trustCertificates().isBlank()) {
            throw new IllegalStateException("megaphone.link.tls.trust-certificates: not set (expected: with"
                    + " megaphone.link.tls.enabled=true, a PEM file of the CA or server certificates that"
                    + " mod_megaphone's certfile must chain to)");
        }
        if (tls.certificate().isBlank() != tls.privateKey().isBlank()) {
            throw new IllegalStateException("megaphone.link.tls.certificate / megaphone.link.tls.private-key: only "
                    + (tls.certificate().isBlank() ? "private-key" : "certificate")
                    + " set (expected: both, for mutual TLS with mod_megaphone's verify_client, or neither)");
        }
        File trust = readable("megaphone.link.tls.trust-certificates", tls.trustCertificates());
        SslContextBuilder builder = SslContextBuilder.forClient()
                .sslProvider(SslProvider.JDK)
                .protocols("TLSv1.3", "TLSv1.2")
                // Host names are checked against server-name, else the node's host (SslContext.newHandler's peer).
                .endpointIdentificationAlgorithm(tls.verifyHostname() ? "HTTPS" : null);
        try {
            builder.trustManager(trust);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("megaphone.link.tls.trust-certificates: " + trust
                    + " holds no usable certificate (" + e.getMessage() + "; expected: PEM certificates)", e);
        }
        if (!tls.certificate().isBlank()) {
            File certificate = readable("megaphone.link.tls.certificate", tls.certificate());
            File key = readable("megaphone.link.tls.private-key", tls.privateKey());
            try {
                builder.keyManager(certificate, key);
            } catch (IllegalArgumentException e) {
                throw new IllegalStateException("megaphone.link.tls.certificate / private-key: " + certificate + ", "
                        + key + " cannot be used (" + e.getMessage()
                        + "; expected: a PEM certificate chain and its unencrypted PKCS#8 PEM key)", e);
            }
        }
        try {
            return builder.build();
        } catch (SSLException e) {
            throw new IllegalStateException("megaphone.link.tls.*: the TLS client context cannot be built ("
                    + e.getMessage() + ")", e);
        }
    }

    private static File readable(String property, String path) {
        Path file = Path.of(path);
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            throw new IllegalStateException(property + ": " + path + " cannot be read (expected: a readable PEM file)");
        }
        return file.toFile();
    }

    private static String ecmName(MegaphoneProperties.Link link) {
        if (link.name() != null && !link.name().isBlank()) {
            return link.name();
        }
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return "ecm";
        }
    }

    /** The configured name servers: IP addresses only (looking a name server up would need a name server). */
    static List<InetSocketAddress> nameServers(List<String> servers) {
        return servers.stream().map(server -> {
            int colon = server.lastIndexOf(':');
            String host = server.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            byte[] ip = NetUtil.createByteArrayFromIpAddressString(host);
            if (ip == null) {
                throw new IllegalStateException("megaphone.link.dns.name-servers: " + server
                        + " (expected: ip:port, e.g. 10.96.0.10:53)");
            }
            try {
                return new InetSocketAddress(InetAddress.getByAddress(ip), Integer.parseInt(server.substring(colon + 1)));
            } catch (UnknownHostException | IllegalArgumentException e) {
                throw new IllegalStateException("megaphone.link.dns.name-servers: " + server
                        + " (expected: ip:port with a port up to 65535)", e);
            }
        }).toList();
    }

    static List<InetSocketAddress> addresses(List<String> nodes) {
        return nodes.stream().map(node -> {
            int colon = node.lastIndexOf(':');
            String host = node.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            return InetSocketAddress.createUnresolved(host, Integer.parseInt(node.substring(colon + 1)));
        }).toList();
    }
}
