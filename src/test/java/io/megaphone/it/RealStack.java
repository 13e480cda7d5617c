// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import org.springframework.test.context.DynamicPropertyRegistry;

/** Helpers shared by the tests that run the real ECM against the shared private ejabberd. */
final class RealStack {

    static final String SESSION_CREATE = "<body rid='%d' to='localhost' wait='10' hold='1' ver='1.6'"
            + " xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>";
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    private RealStack() {
    }

    /** Points the ECM under test at the shared private ejabberd. */
    static void linkToSharedEjabberd(DynamicPropertyRegistry registry) {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        registry.add("megaphone.link.nodes", () -> "127.0.0.1:" + ejabberd.linkPort());
        registry.add("megaphone.link.secret", () -> PrivateEjabberd.SECRET);
    }

    static HttpResponse<String> get(String url) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The value of the sample whose series starts with {@code prefix} and contains every label given. */
    static double sample(String scrape, String name, String... labels) {
        return scrape.lines().filter(line -> line.startsWith(name + "{") || line.startsWith(name + " "))
                .filter(line -> {
                    for (String label : labels) {
                        if (!line.contains(label)) {
                            return false;
                        }
                    }
                    return true;
                }).findFirst().map(line -> Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1)))
                .orElse(Double.NaN);
    }
}
