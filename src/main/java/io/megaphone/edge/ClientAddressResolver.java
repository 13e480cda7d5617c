package io.megaphone.edge;

import io.netty.handler.codec.http.HttpHeaders;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * The HTTP client's real address, which goes to ejabberd in every REQUEST (its ACLs and
 * {@code user_sessions_info} see it). It is the socket's peer, unless that peer is a configured trusted proxy:
 * then the {@code Forwarded} ({@code for=}) or {@code X-Forwarded-For} chain is read from the right, skipping
 * trusted proxies, and the first untrusted hop is the client. A header from any other peer is ignored, so a
 * client cannot claim someone else's address.
 */
final class ClientAddressResolver {


    private final List<Cidr> trusted;

    ClientAddressResolver(List<String> trustedProxies) {
        this.trusted = trustedProxies.stream().map(Cidr::parse).toList();
    }

    InetSocketAddress resolve(InetSocketAddress peer, HttpHeaders headers) {
        if (trusted.isEmpty() || peer == null || !isTrusted(peer.getAddress())) {
            return peer;
        }
        List<String> hops = hops(headers);
        for (int i = hops.size() - 1; i >= 0; i--) {
            InetSocketAddress hop = parseHop(hops.get(i));
            if (hop == null) {
                return peer; // an obfuscated or broken entry: trust nothing to its left
            }
            if (!isTrusted(hop.getAddress())) {
                return hop;
            }
        }
        return peer;
    }

    private boolean isTrusted(InetAddress address) {
        for (Cidr cidr : trusted) {
            if (cidr.contains(address)) {
                return true;
            }
        }
        return false;
    }

    /** The client chain, oldest first: RFC 7239 {@code Forwarded} when present, else {@code X-Forwarded-For}. */
    private static List<String> hops(HttpHeaders headers) {
        List<String> hops = new ArrayList<>();
        List<String> forwarded = headers.getAll("Forwarded");
        if (!forwarded.isEmpty()) {
            for (String header : forwarded) {
                for (String element : header.split(",")) {
                    for (String pair : element.split(";")) {
                        String kv = pair.strip();
                        if (kv.regionMatches(true, 0, "for=", 0, 4)) {
                            hops.add(kv.substring(4));
                        }
                    }
                }
            }
            return hops;
        }
        for (String header : headers.getAll("X-Forwarded-For")) {
            for (String hop : header.split(",")) {
                hops.add(hop);
            }
        }
        return hops;
    }

    /** {@code 192.0.2.1}, {@code "[2001:db8::1]:4711"}, {@code 192.0.2.1:80}; null when not an address. */
    static InetSocketAddress parseHop(String raw) {
        String hop = raw.strip();
        if (hop.startsWith("\"") && hop.endsWith("\"") && hop.length() >= 2) {
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
        if (port < 0 || host.isEmpty() || !host.matches("[0-9a-fA-F:.]+")) {
            return null;
        }
        try {
            return new InetSocketAddress(InetAddress.getByName(host), port);
        } catch (java.net.UnknownHostException e) {
            return null;
        }
    }

    private static int parsePort(String text) {
        try {
            int port = Integer.parseInt(text);
            return port >= 0 && port <= 0xFFFF ? port : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
