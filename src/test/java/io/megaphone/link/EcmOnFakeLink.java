// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.awaitility.Awaitility.await;

import io.megaphone.MegaphoneApplication;
import io.micrometer.core.instrument.MeterRegistry;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The real ECM (Boot's Reactor Netty server, WebFlux) on a free port, with one link of protocol version 2 to a
 * {@link FakeMegaphoneServer} that echoes: what the WebSocket endpoint's fast tests run against.
 */
final class EcmOnFakeLink implements AutoCloseable {

    private static final String SECRET = "ecm-on-fake-link-secret-ecm-on-fake-link";

    final FakeMegaphoneServer server;
    final ConfigurableApplicationContext ecm;
    final int port;

    private EcmOnFakeLink(FakeMegaphoneServer server, ConfigurableApplicationContext ecm) {
        this.server = server;
        this.ecm = ecm;
        this.port = Integer.parseInt(ecm.getEnvironment().getProperty("local.server.port"));
    }

    /** Starts the fake (set up by {@code fake} first), then the ECM with {@code properties} added, and waits for the link. */
    static EcmOnFakeLink start(Consumer<FakeMegaphoneServer> fake, String... properties) throws Exception {
        FakeMegaphoneServer server = new FakeMegaphoneServer(SECRET.getBytes(StandardCharsets.UTF_8),
                FakeMegaphoneServer::echo);
        server.maxVersion = 2;
        fake.accept(server);
        List<String> args = new ArrayList<>(List.of("--server.port=0", "--management.server.port=0",
                "--megaphone.link.secret=" + SECRET, "--megaphone.link.nodes=" + server.address(),
                "--megaphone.link.links-per-node=1"));
        for (String property : properties) {
            args.add("--" + property);
        }
        ConfigurableApplicationContext ecm;
        try {
            ecm = new SpringApplicationBuilder(MegaphoneApplication.class).run(args.toArray(String[]::new));
        } catch (RuntimeException e) {
            server.close();
            throw e;
        }
        EcmOnFakeLink started = new EcmOnFakeLink(server, ecm);
        await().atMost(Duration.ofSeconds(10)).until(() -> server.links.size() == 1);
        return started;
    }

    URI webSocket() {
        return URI.create("ws://127.0.0.1:" + port + "/xmpp-websocket");
    }

    double counter(String name, String tag, String value) {
        return ecm.getBean(MeterRegistry.class).get(name).tag(tag, value).counter().count();
    }

    double openStreams() {
        return ecm.getBean(MeterRegistry.class).get("megaphone.edge.websocket.open").gauge().value();
    }

    @Override
    public void close() {
        ecm.close();
        server.close();
    }
}
