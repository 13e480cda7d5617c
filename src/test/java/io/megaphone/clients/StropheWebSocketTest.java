// SPDX-License-Identifier: Apache-2.0
package io.megaphone.clients;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.RealEcmTest;
import io.megaphone.it.SharedEjabberd;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import tools.jackson.databind.JsonNode;

/**
 * Strophe.js 5 (npm), headless in Node ({@code clients/strophe-ws-chat.mjs}), over XMPP over WebSocket through the
 * real ECM into the real ejabberd, chatting both ways with a Strophe.js user on BOSH; each message exactly once.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class StropheWebSocketTest extends RealEcmTest {

    @Test
    void stropheJsOverWebSocketChatsWithABoshUserThroughTheEcm() throws Exception {
        NodeClients.requireInstalled("strophe.js", "@xmldom/xmldom", "xhr2", "ws");
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        String alice = SharedEjabberd.newUser("strophe-ws-alice");
        String bob = SharedEjabberd.newUser("strophe-ws-bob");

        NodeClients.Run run = NodeClients.run(60, "strophe-ws-chat.mjs", "ws://127.0.0.1:" + port + "/xmpp-websocket",
                "http://127.0.0.1:" + port + "/http-bind", alice + "@" + PrivateEjabberd.DOMAIN,
                SharedEjabberd.PASSWORD, bob + "@" + PrivateEjabberd.DOMAIN, SharedEjabberd.PASSWORD);
        JsonNode result = run.result();
        System.out.println("[real client] Strophe.js over WebSocket through the ECM on port " + port + ":\n"
                + NodeClients.pretty(result));

        assertThat(run.exitCode()).as("strophe-ws-chat.mjs failed: %s\nstderr:\n%s", result.path("problems"),
                run.stderr()).isZero();
        assertThat(result.path("transports").path("a").asString()).isEqualTo("websocket");
        assertThat(result.path("transports").path("b").asString()).isEqualTo("bosh");
    }
}
