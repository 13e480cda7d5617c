// SPDX-License-Identifier: Apache-2.0
package io.megaphone.clients;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.it.EcmProcess;
import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.RealEcmTest;
import io.megaphone.it.SharedEjabberd;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import tools.jackson.databind.JsonNode;

/**
 * Converse.js (npm, its own dist files) in Debian's Chromium, headless ({@code clients/converse-chat.mjs}), through
 * the real ECM into the real ejabberd over XMPP over WebSocket: it chats both ways with another Converse.js on BOSH,
 * and ejabberd lists their sessions as a WebSocket one and a BOSH one. And what Converse.js does when the ECM refuses its handshake (503,
 * no link takes the stream): it retries the WebSocket and never tries its {@code bosh_service_url}. Fails (never
 * skips) when Chromium or the npm packages are missing.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class ConverseClientTest extends RealEcmTest {

    private static void requireClients() {
        assertThat(java.nio.file.Path.of(System.getenv().getOrDefault("CHROMIUM_PATH", "/usr/bin/chromium")))
                .as("Chromium is missing: run `bash scripts/install-deps.sh` (Debian package chromium)").isExecutable();
        NodeClients.requireInstalled("playwright-core", "converse.js");
    }

    /**
     * Makes the users each other's contacts (subscription both), as people who chat are: Converse.js 14 cannot open a
     * chat with a stranger on a server without XEP-0191 blocking (its chat waits for a block list that never comes).
     */
    private static void contacts(PrivateEjabberd ejabberd, String a, String b) throws Exception {
        for (String[] pair : new String[][] {{a, b}, {b, a}}) {
            ejabberd.ctl("add_rosteritem", pair[0], PrivateEjabberd.DOMAIN, pair[1], PrivateEjabberd.DOMAIN, pair[1],
                    "friends", "both");
        }
    }

    /** Converse.js with these {@code websocket_url} and {@code bosh_service_url} (null: not set). */
    private static Map<String, Object> converse(String user, String ws, String bosh) {
        Map<String, Object> spec = new java.util.HashMap<>(Map.of("kind", "converse",
                "jid", user + "@" + PrivateEjabberd.DOMAIN, "password", SharedEjabberd.PASSWORD));
        if (ws != null) {
            spec.put("websocketUrl", ws);
        }
        if (bosh != null) {
            spec.put("boshUrl", bosh);
        }
        return spec;
    }

    private static Map<String, Object> demoPage(String user, String base, String transport) {
        return Map.of("kind", "demo", "jid", user + "@" + PrivateEjabberd.DOMAIN, "password", SharedEjabberd.PASSWORD,
                "demoUrl", base + "/demo/", "transport", transport);
    }

    /** ejabberd's connected_users_info lines of {@code user}. */
    private static List<String> sessionsOf(String sessions, String user) {
        return sessions.lines().filter(l -> l.startsWith(user + "@")).toList();
    }

    /** ejabberd's connected_users_info line of {@code user}, once it has exactly one session. */
    private static String sessionOf(String sessions, String user) {
        List<String> lines = sessionsOf(sessions, user);
        assertThat(lines).as("ejabberd's sessions of %s: %s", user, sessions).hasSize(1);
        return lines.get(0);
    }

    /** Converse.js's own race while it retries refused handshakes back to back (converse-chat.mjs says more). */
    private static final String CONVERSE_RETRY_RACE = "Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.";

    private static void assertChattedOnceEachWay(NodeClients.Run run) {
        assertChattedOnceEachWay(run, List.of());
    }

    private static void assertChattedOnceEachWay(NodeClients.Run run, List<String> toleratedPageErrors) {
        JsonNode result = run.result();
        assertThat(run.exitCode()).as("converse-chat.mjs failed: %s\nstderr:\n%s", result.path("problems"),
                run.stderr()).isZero();
        for (String side : new String[] {"a", "b"}) {
            assertThat(result.path(side).path("got").path("received").asInt()).as("%s received", side).isEqualTo(1);
            assertThat(result.path(side).path("got").path("shown").asInt()).as("%s shows", side).isEqualTo(1);
            List<String> errors = new java.util.ArrayList<>();
            result.path(side).path("pageErrors").forEach(e -> errors.add(e.asString()));
            errors.removeAll(toleratedPageErrors);
            assertThat(errors).as("%s: uncaught errors", side).isEmpty();
        }
    }

    @Test
    void converseJsInChromiumChatsOverWebSocketWithConverseJsOverBosh() throws Exception {
        requireClients();
        awaitLinks(2);
        String alice = SharedEjabberd.newUser("converse-alice");
        String bob = SharedEjabberd.newUser("converse-bob");
        contacts(SharedEjabberd.get(), alice, bob);
        String base = "http://127.0.0.1:" + port;

        String sessions;
        NodeClients.Run run;
        try (NodeClients.Running running = NodeClients.start("converse-chat.mjs", NodeClients.json(Map.of(
                "outDir", NodeClients.screenshotDir().toString(), "prefix", "converse-websocket", "pause", true,
                "a", converse(alice, "ws://127.0.0.1:" + port + "/xmpp-websocket", null),
                "b", converse(bob, null, base + "/http-bind"))))) {
            running.awaitPhase("online", 90);
            sessions = SharedEjabberd.get().ctl("connected_users_info");
            running.proceed();
            run = running.finish(60);
        }
        System.out.println("[real client] Converse.js over WebSocket through the ECM on port " + port + ":\n"
                + NodeClients.pretty(run.result()));
        assertChattedOnceEachWay(run);
        JsonNode a = run.result().path("a");
        assertThat(a.path("transport").asString()).isEqualTo("websocket");
        assertThat(a.path("handshakes")).as("Converse's WebSockets").hasSize(1);
        assertThat(a.path("handshakes").get(0).path("error").isNull()).as("handshake error").isTrue();
        assertThat(a.path("boshRequests").asInt()).as("BOSH requests of the Converse page").isZero();
        assertThat(sessionOf(sessions, alice)).as("ejabberd's view of Converse's session").contains("\twebsocket\t");
        JsonNode b = run.result().path("b");
        assertThat(b.path("transport").asString()).isEqualTo("bosh");
        assertThat(b.path("handshakes")).as("WebSockets of Converse on BOSH").isEmpty();
        assertThat(b.path("boshRequests").asInt()).as("its BOSH requests").isPositive();
        assertThat(sessionOf(sessions, bob)).as("ejabberd's view of Converse's BOSH session").contains("\thttp_bind\t");
    }

    /**
     * Converse.js 14.0.0 does not fall back to BOSH when the handshake is refused, although it has both URLs:
     * {@code api.connection.reconnect()} (src/headless/shared/connection/api.js:103) sets the status to RECONNECTING
     * before {@code Connection.reconnect()} (src/headless/shared/connection/index.js:182-184) switches transports only
     * when the status is CONNFAIL. So it retries the WebSocket (debounced, 3 s), and gets online over it as soon as a
     * link takes the stream. Here mod_megaphone takes one stream per link ({@code max_streams: 1}) on one link, and
     * the demo page's WebSocket holds it; the ECM refuses Converse's handshakes with 503 until the demo page moves to
     * BOSH.
     */
    @Test
    void converseJsRetriesItsWebSocketWhileTheEcmRefusesTheHandshakeAndGetsOnlineWhenAStreamIsFree() throws Exception {
        requireClients();
        try (PrivateEjabberd ejabberd = PrivateEjabberd.start(Map.of("EJ_MAX_STREAMS", "1"));
             EcmProcess ecm = EcmProcess.builder().name("converse-refused").linkedTo(ejabberd)
                     .args("--megaphone.link.links-per-node=1", "--" + RealEcmTest.MANY_SESSIONS_PER_CLIENT,
                             "--" + RealEcmTest.MANY_SESSIONS_BURST)
                     .waitForReadyLinks(1).start()) {
            ejabberd.register("carol", SharedEjabberd.PASSWORD);
            ejabberd.register("dave", SharedEjabberd.PASSWORD);
            contacts(ejabberd, "carol", "dave");
            String base = "http://127.0.0.1:" + ecm.port;

            String sessions;
            NodeClients.Run run;
            try (NodeClients.Running running = NodeClients.start("converse-chat.mjs", NodeClients.json(Map.of(
                    "outDir", NodeClients.screenshotDir().toString(), "prefix", "converse-refused", "pause", true,
                    "refusals", 3,
                    "a", demoPage("carol", base, "websocket"),
                    "b", converse("dave", "ws://127.0.0.1:" + ecm.port + "/xmpp-websocket", base + "/http-bind"))))) {
                running.awaitPhase("online", 120);
                sessions = ejabberd.ctl("connected_users_info");
                running.proceed();
                run = running.finish(60);
            }
            System.out.println("[real client] Converse.js, its handshakes refused by the ECM on port " + ecm.port
                    + ":\n" + NodeClients.pretty(run.result()));
            assertChattedOnceEachWay(run, List.of(CONVERSE_RETRY_RACE));
            JsonNode dave = run.result().path("b");
            assertThat(dave.path("refusedWhileAOnline").asInt()).as("handshakes refused with 503").isGreaterThanOrEqualTo(3);
            assertThat(dave.path("onlineWhileRefused").asBoolean()).as("online while refused").isFalse();
            assertThat(dave.path("boshRequests").asInt()).as("Converse's BOSH requests (bosh_service_url)").isZero();
            assertThat(dave.path("transport").asString()).isEqualTo("websocket");
            assertThat(EcmProcess.sum(ecm.prometheus(), "megaphone_edge_websocket_opens_total",
                    "result=\"unavailable\"")).as("handshakes the ECM refused: no link took the stream")
                    .isGreaterThanOrEqualTo(3);
            // Once the stream is free, Converse's reconnects that were still due connect too, each with a new resource
            // and stream management on: ejabberd keeps those it left for resume_timeout. All are WebSocket sessions.
            assertThat(sessionsOf(sessions, "dave")).as("ejabberd's view of Converse's sessions").isNotEmpty()
                    .allSatisfy(line -> assertThat(line).contains("\twebsocket\t"));
            assertThat(sessionOf(sessions, "carol")).as("the demo page, moved to BOSH").contains("\thttp_bind\t");
        }
    }
}
