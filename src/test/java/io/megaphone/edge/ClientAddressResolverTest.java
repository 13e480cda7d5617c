package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.HttpHeaders;
import java.net.InetSocketAddress;
import java.util.List;
import org.junit.jupiter.api.Test;

class ClientAddressResolverTest {

    private static final InetSocketAddress PROXY = new InetSocketAddress("10.0.0.5", 40000);
    private static final InetSocketAddress STRANGER = new InetSocketAddress("198.51.100.9", 50000);

    private static HttpHeaders headers(String name, String value) {
        return new DefaultHttpHeaders().add(name, value);
    }

    @Test
    void withoutTrustedProxiesTheSocketPeerIsTheClient() {
        ClientAddressResolver resolver = new ClientAddressResolver(List.of());
        assertThat(resolver.resolve(STRANGER, headers("X-Forwarded-For", "203.0.113.7"))).isEqualTo(STRANGER);
    }

    @Test
    void aForwardedForFromAnUntrustedPeerIsIgnored() {
        ClientAddressResolver resolver = new ClientAddressResolver(List.of("10.0.0.0/8"));
        assertThat(resolver.resolve(STRANGER, headers("X-Forwarded-For", "203.0.113.7"))).isEqualTo(STRANGER);
    }

    @Test
    void aTrustedProxysForwardedForNamesTheClient() {
        ClientAddressResolver resolver = new ClientAddressResolver(List.of("10.0.0.0/8"));
        assertThat(resolver.resolve(PROXY, headers("X-Forwarded-For", "203.0.113.7")).getAddress().getHostAddress())
                .isEqualTo("203.0.113.7");
    }

    @Test
    void theChainIsReadFromTheRightSoAClientCannotPrependAFakeAddress() {
        ClientAddressResolver resolver = new ClientAddressResolver(List.of("10.0.0.0/8"));
        InetSocketAddress client = resolver.resolve(PROXY, headers("X-Forwarded-For", "1.1.1.1, 203.0.113.7, 10.0.0.9"));
        assertThat(client.getAddress().getHostAddress()).isEqualTo("203.0.113.7");
    }

    @Test
    void rfc7239ForwardedWinsAndKeepsThePort() {
        ClientAddressResolver resolver = new ClientAddressResolver(List.of("10.0.0.5"));
        HttpHeaders headers = headers("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https")
                .add("X-Forwarded-For", "203.0.113.7");
        InetSocketAddress client = resolver.resolve(PROXY, headers);
        assertThat(client.getAddress().getHostAddress()).isEqualTo("2001:db8:0:0:0:0:0:1");
        assertThat(client.getPort()).isEqualTo(4711);
    }

    @Test
    void anUnparsableHopStopsTheWalkAtTheProxy() {
        ClientAddressResolver resolver = new ClientAddressResolver(List.of("10.0.0.0/8"));
        assertThat(resolver.resolve(PROXY, headers("X-Forwarded-For", "evil.example.com"))).isEqualTo(PROXY);
        assertThat(resolver.resolve(PROXY, headers("Forwarded", "for=unknown"))).isEqualTo(PROXY);
    }

    @Test
    void aHostNameAsTrustedProxyStopsStartupWithTheFix() {
        assertThatThrownBy(() -> new ClientAddressResolver(List.of("lb.example.com")))
                .hasMessageContaining("lb.example.com").hasMessageContaining("expected");
        assertThatThrownBy(() -> new ClientAddressResolver(List.of("10.0.0.0/33"))).hasMessageContaining("0-32");
    }
}
