// SPDX-License-Identifier: Apache-2.0
package io.megaphone.clients;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.RealEcmTest;
import io.megaphone.it.SharedEjabberd;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import tools.jackson.databind.JsonNode;

/**
 * A real browser through the real ECM into the real ejabberd ({@code clients/browser-chat.mjs}): Debian's Chromium,
 * headless, driven by playwright-core, with two pages: Strophe.js on a page of another origin (cross-origin BOSH with
 * CORS, or a cross-origin WebSocket) and the ECM's own demo page ({@code /demo/index.html}, served from the jar) over
 * the transport picked in its form. They chat both ways, over BOSH, then over XMPP over WebSocket; the screenshots
 * are kept in {@code target/client-screenshots/}. Fails (never skips) when Chromium is missing.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class BrowserClientTest extends RealEcmTest {

    private static final Path CHROMIUM = Path.of(System.getenv().getOrDefault("CHROMIUM_PATH", "/usr/bin/chromium"));

    @BeforeEach
    void linksAreUp() {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
    }

    private NodeClients.Run chat(String transport) throws Exception {
        assertThat(CHROMIUM).as("Chromium is missing at %s: run `bash scripts/install-deps.sh` (Debian package "
                + "chromium)", CHROMIUM).isExecutable();
        NodeClients.requireInstalled("playwright-core", "strophe.js");
        String alice = SharedEjabberd.newUser("browser-alice");
        String bob = SharedEjabberd.newUser("browser-bob");
        return NodeClients.run(60, "browser-chat.mjs", "http://127.0.0.1:" + port,
                alice + "@" + PrivateEjabberd.DOMAIN, SharedEjabberd.PASSWORD,
                bob + "@" + PrivateEjabberd.DOMAIN, SharedEjabberd.PASSWORD, NodeClients.screenshotDir().toString(),
                transport);
    }

    @Test
    void chromiumChatsBetweenAStropheJsPageAndTheDemoPage() throws Exception {
        Path shots = NodeClients.screenshotDir();
        NodeClients.Run run = chat("bosh");
        JsonNode result = run.result();
        System.out.println("[real client] " + result.path("client").asString() + " through the ECM on port " + port
                + ":\n" + NodeClients.pretty(result));

        assertThat(run.exitCode()).as("browser-chat.mjs failed: %s\nstderr:\n%s", result.path("problems"),
                run.stderr()).isZero();
        assertThat(result.path("chatB").toString()).as("the demo page shows the chat")
                .contains("from Strophe.js in Chromium").contains("typed into the Megaphone demo page");
        assertThat(result.path("bosh").path("crossOriginAnswers").asInt()).as("cross-origin BOSH answers")
                .isPositive();
        for (String shot : new String[] {"demo-page.png", "strophe-page.png"}) {
            assertThat(Files.size(shots.resolve(shot))).as(shot).isGreaterThan(10_000);
        }
        System.out.println("[real client] screenshots: " + shots.resolve("demo-page.png") + ", "
                + shots.resolve("strophe-page.png"));
    }

    @Test
    void chromiumChatsOverWebSocketBetweenAStropheJsPageAndTheDemoPage() throws Exception {
        NodeClients.Run run = chat("websocket");
        JsonNode result = run.result();
        System.out.println("[real client] " + result.path("client").asString() + " through the ECM on port " + port
                + ":\n" + NodeClients.pretty(result));

        assertThat(run.exitCode()).as("browser-chat.mjs failed: %s\nstderr:\n%s", result.path("problems"),
                run.stderr()).isZero();
        assertThat(result.path("statusB").asString()).as("the demo page's status").endsWith("(WebSocket)");
        assertThat(result.path("chatB").toString()).as("the demo page shows the chat")
                .contains("from Strophe.js in Chromium").contains("typed into the Megaphone demo page");
        assertThat(result.path("bosh").path("requests").asInt()).as("BOSH requests").isZero();
        assertThat(result.path("sockets")).as("one WebSocket per page").hasSize(2);
        for (JsonNode socket : result.path("sockets")) {
            assertThat(socket.path("error").isNull()).as("%s", socket).isTrue();
            assertThat(socket.path("framesReceived").asInt()).as("%s", socket).isPositive();
        }
    }
}
