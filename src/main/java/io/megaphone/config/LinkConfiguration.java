package io.megaphone.config;

import io.megaphone.link.HandshakeProof;
import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkSettings;
import io.megaphone.link.NodeDiscovery;
import org.springframework.boot.autoconfigure.condition.ConditionalOnExpression;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** Builds the {@link LinkPool} from {@code megaphone.link.*} and starts connecting at startup. */
@Configuration(proxyBeanMethods = false)
class LinkConfiguration {

    @Bean(destroyMethod = "close")
    LinkPool linkPool(MegaphoneProperties properties) {
        MegaphoneProperties.Link link = properties.link();
        LinkSettings settings = new LinkSettings(new HandshakeProof(secret(link)), ecmName(link), link.heartbeat(),
                link.handshakeTimeout(), link.maxFrameBytes());
        boolean discovery = !link.discovery().dnsName().isBlank();
        if (link.nodes().isEmpty() && !discovery) {
            throw new IllegalStateException("megaphone.link.nodes: [] (expected: at least one host:port of"
                    + " mod_megaphone, or megaphone.link.discovery.dns-name)");
        }
        LinkPool pool = new LinkPool(discovery ? List.of() : addresses(link.nodes()), link.linksPerNode(), settings,
                properties.edge().upstreamTimeout(), link.reconnectMinBackoff(), link.reconnectMaxBackoff(),
                link.ioThreads());
        pool.start();
        return pool;
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
