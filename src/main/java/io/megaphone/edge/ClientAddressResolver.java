// SPDX-License-Identifier: Apache-2.0
package io.megaphone.edge;

import io.megaphone.config.MegaphoneProperties.ForwardedHeader;
import io.netty.handler.ipfilter.IpFilterRuleType;
import io.netty.handler.ipfilter.IpSubnetFilterRule;
import io.netty.util.NetUtil;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import org.springframework.http.HttpHeaders;

/**
 * The HTTP client's real address, which goes to ejabberd in every REQUEST (its ACLs and
 * {@code user_sessions_info} see it). It is the socket peer (after the PROXY protocol, when that is on), unless
 * that peer is a configured trusted proxy: then the one header the proxies maintain ({@code X-Forwarded-For} by
 * default, or RFC 7239 {@code Forwarded}) is read from the right, skipping trusted proxies, and the first untrusted
 * hop is the client. A header from any other peer, and the other header, are ignored, so a client cannot claim
 * someone else's address.
 *
 * <p>Addresses are parsed as literals only ({@link NetUtil}): never a DNS lookup on an event loop.
 */
final class ClientAddressResolver {

    /**
     * A resolved client address. {@code known}: it is the client's own (a direct peer, or what a trusted proxy
     * reported); false when it is a trusted proxy's address because the proxy reported nothing usable.
     */
    record ClientAddress(InetSocketAddress address, boolean known) {
    }

    private final List<IpSubnetFilterRule> trusted;
    private final String header;
    private final boolean rfc7239;

    ClientAddressResolver(List<String> trustedProxies, ForwardedHeader header) {
        this.trusted = trustedProxies.stream().map(ClientAddressResolver::rule).toList();
        this.rfc7239 = header == ForwardedHeader.FORWARDED;
        this.header = rfc7239 ? "Forwarded" : "X-Forwarded-For";
    }

    boolean hasTrustedProxies() {
        return !trusted.isEmpty();
    }

    /** {@code peer} null (a socket with no address) resolves to the unspecified address, not known. */
    ClientAddress resolve(InetSocketAddress peer, HttpHeaders headers) {
        if (peer == null) {
            return new ClientAddress(new InetSocketAddress(0), false);
        }
        if (trusted.isEmpty() || !isTrusted(peer)) {
            return new ClientAddress(peer, true);
        }
        List<String> hops = hops(headers);
        for (int i = hops.size() - 1; i >= 0; i--) {
            InetSocketAddress hop = parseHop(hops.get(i));
            if (hop == null) {
                return new ClientAddress(peer, false); // an obfuscated or broken entry: trust nothing to its left
            }
            if (!isTrusted(hop)) {
                return new ClientAddress(hop, true);
            }
        }
        return new ClientAddress(peer, false);
    }

    private boolean isTrusted(InetSocketAddress address) {
        for (IpSubnetFilterRule rule : trusted) {
            if (rule.matches(address)) {
                return true;
            }
        }
        return false;
    }

    /** The client chain, oldest first, from the configured header only. */
    private List<String> hops(HttpHeaders headers) {
        List<String> hops = new ArrayList<>();
        List<String> values = headers.get(header);
        if (values == null) {
            return hops;
        }
        for (String value : values) {
            for (String element : value.split(",")) {
                if (!rfc7239) {
                    hops.add(element);
                    continue;
                }
                String forElement = null;
                for (String pair : element.split(";")) {
                    String kv = pair.strip();
                    if (kv.regionMatches(true, 0, "for=", 0, 4)) {
                        forElement = kv.substring(4);
                    }
                }
                hops.add(forElement == null ? "" : forElement); // an element without for= breaks the chain
            }
        }
        return hops;
    }

    /** {@code 192.0.2.1}, {@code "[2001:db8::1]:4711"}, {@code 192.0.2.1:80}; null when not an address literal. */
    static InetSocketAddress parseHop(String raw) {
        String hop = raw.strip();
        if (hop.length() >= 2 && hop.startsWith("\"") && hop.endsWith("\"")) {
            hop = hop.substring(1, hop.length() - 1);
        }
        String host = hop;
        int port = 0;
        if (hop.startsWith("[")) {
            int close = hop.indexOf(']');
            if (close < 0) {
                return null;
            }
            host = hop.substring(1, close);
            if (hop.length() > close + 2 && hop.charAt(close + 1) == ':') {
                port = parsePort(hop.substring(close + 2));
            }
        } else if (hop.indexOf(':') >= 0 && hop.indexOf(':') == hop.lastIndexOf(':')) {
            host = hop.substring(0, hop.indexOf(':'));
            port = parsePort(hop.substring(hop.indexOf(':') + 1));
        }
        InetAddress address = port < 0 ? null : NetUtil.createInetAddressFromIpAddressString(host);
        return address == null ? null : new InetSocketAddress(address, port);
    }

    private static int parsePort(String text) {
        try {
            int port = Integer.parseInt(text);
            return port >= 0 && port <= 0xFFFF ? port : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** {@code 10.0.0.0/8}, {@code fd00::/8} or a bare address (a block of one). */
    static IpSubnetFilterRule rule(String text) {
        String value = text.strip();
        int slash = value.indexOf('/');
        String literal = slash < 0 ? value : value.substring(0, slash);
        InetAddress address = NetUtil.createInetAddressFromIpAddressString(literal);
        if (address == null) {
            throw new IllegalArgumentException("megaphone.edge.trusted-proxies: " + text + " (expected: an IP address"
                    + " or CIDR block such as 10.0.0.0/8, not a host name)");
        }
        int bits = address.getAddress().length * 8;
        int prefix;
        try {
            prefix = slash < 0 ? bits : Integer.parseInt(value.substring(slash + 1));
        } catch (NumberFormatException e) {
            prefix = -1;
        }
        if (prefix < 0 || prefix > bits) {
            throw new IllegalArgumentException("megaphone.edge.trusted-proxies: " + text
                    + " (expected: a prefix length 0-" + bits + ")");
        }
        return new IpSubnetFilterRule(address, prefix, IpFilterRuleType.ACCEPT);
    }
}
