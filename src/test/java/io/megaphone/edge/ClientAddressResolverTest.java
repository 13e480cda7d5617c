// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.megaphone.config.MegaphoneProperties.ForwardedHeader;
import java.net.InetSocketAddress;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.http.HttpHeaders;

class ClientAddressResolverTest {

    private static final InetSocketAddress PROXY = new InetSocketAddress("10.0.0.5", 40000);
    private static final InetSocketAddress STRANGER = new InetSocketAddress("198.51.100.9", 50000);

    private static HttpHeaders headers(String name, String value) {
        HttpHeaders headers = new HttpHeaders();
        headers.add(name, value);
        return headers;
    }

    private static ClientAddressResolver resolver(String... trusted) {
        return new ClientAddressResolver(List.of(trusted), ForwardedHeader.X_FORWARDED_FOR);
    }

    @Test
    void withoutTrustedProxiesTheSocketPeerIsTheClient() {
        ClientAddressResolver.ClientAddress client = resolver().resolve(STRANGER,
                headers("X-Forwarded-For", "203.0.113.7"));
        assertThat(client.address()).isEqualTo(STRANGER);
        assertThat(client.known()).isTrue();
    }

    @Test
    void aForwardedForFromAnUntrustedPeerIsIgnored() {
        assertThat(resolver("10.0.0.0/8").resolve(STRANGER, headers("X-Forwarded-For", "203.0.113.7")).address())
                .isEqualTo(STRANGER);
    }

    @Test
    void aTrustedProxysForwardedForNamesTheClient() {
        ClientAddressResolver.ClientAddress client = resolver("10.0.0.0/8").resolve(PROXY,
                headers("X-Forwarded-For", "203.0.113.7"));
        assertThat(client.address().getAddress().getHostAddress()).isEqualTo("203.0.113.7");
        assertThat(client.known()).isTrue();
    }

    @Test
    void theChainIsReadFromTheRightSoAClientCannotPrependAFakeAddress() {
        InetSocketAddress client = resolver("10.0.0.0/8").resolve(PROXY,
                headers("X-Forwarded-For", "1.1.1.1, 203.0.113.7, 10.0.0.9")).address();
        assertThat(client.getAddress().getHostAddress()).isEqualTo("203.0.113.7");
    }

    @Test
    void aForwardedHeaderTheProxyDoesNotMaintainIsIgnored() {
        // The proxy appends X-Forwarded-For; the client slipped in its own Forwarded header.
        HttpHeaders headers = headers("Forwarded", "for=192.0.2.66");
        headers.add("X-Forwarded-For", "203.0.113.7");
        assertThat(resolver("10.0.0.5").resolve(PROXY, headers).address().getAddress().getHostAddress())
                .isEqualTo("203.0.113.7");
    }

    @Test
    void rfc7239ForwardedIsReadWhenConfiguredAndKeepsThePort() {
        ClientAddressResolver resolver = new ClientAddressResolver(List.of("10.0.0.5"), ForwardedHeader.FORWARDED);
        HttpHeaders headers = headers("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https");
        headers.add("X-Forwarded-For", "203.0.113.7");
        InetSocketAddress client = resolver.resolve(PROXY, headers).address();
        assertThat(client.getAddress().getHostAddress()).isEqualTo("2001:db8:0:0:0:0:0:1");
        assertThat(client.getPort()).isEqualTo(4711);
    }

    @Test
    void anUnparsableHopStopsTheWalkAtTheProxyWhoseAddressIsNotAClients() {
        ClientAddressResolver.ClientAddress client = resolver("10.0.0.0/8").resolve(PROXY,
                headers("X-Forwarded-For", "evil.example.com"));
        assertThat(client.address()).isEqualTo(PROXY);
        assertThat(client.known()).isFalse();
        assertThat(resolver("10.0.0.0/8").resolve(PROXY, new HttpHeaders()).known())
                .as("a trusted proxy that reports nothing").isFalse();
    }

    @Test
    void aHostNameAsTrustedProxyStopsStartupWithTheFix() {
        assertThatThrownBy(() -> resolver("lb.example.com"))
                .hasMessageContaining("lb.example.com").hasMessageContaining("expected");
        assertThatThrownBy(() -> resolver("10.0.0.0/33")).hasMessageContaining("0-32");
        assertThatThrownBy(() -> resolver("fd00::/129")).hasMessageContaining("0-128");
    }
}
