// SPDX-License-Identifier: Apache-2.0
package io.megaphone.clients;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.RealEcmTest;
import io.megaphone.it.SharedEjabberd;
import java.time.Duration;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import tools.jackson.databind.JsonNode;

/**
 * Strophe.js 5 (npm), headless in Node ({@code clients/strophe-chat.mjs}), through the real ECM on a real port into
 * the real ejabberd: two users log in and chat both ways, then one of them reloads its page twice (the page process
 * is killed with its TCP connections, a new Strophe connection attaches to the same BOSH session on a new TCP
 * connection) and the chat goes on; every message must arrive exactly once.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class StropheClientTest extends RealEcmTest {

    @BeforeEach
    void linksAreUp() {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
    }

    @Test
    void stropheJsChatsThroughTheEcmAndReattachesAfterPageReloads() throws Exception {
        NodeClients.requireInstalled("strophe.js", "@xmldom/xmldom", "xhr2", "ws");
        String alice = SharedEjabberd.newUser("strophe-alice");
        String bob = SharedEjabberd.newUser("strophe-bob");

        NodeClients.Run run = NodeClients.run(60, "strophe-chat.mjs", "http://127.0.0.1:" + port + "/http-bind",
                alice + "@" + PrivateEjabberd.DOMAIN, SharedEjabberd.PASSWORD,
                bob + "@" + PrivateEjabberd.DOMAIN, SharedEjabberd.PASSWORD);
        JsonNode result = run.result();
        System.out.println("[real client] " + result.path("client").asString() + " through the ECM on port " + port
                + ":\n" + NodeClients.pretty(result));

        assertThat(run.exitCode()).as("strophe-chat.mjs failed: %s\nstderr:\n%s", result.path("problems"),
                run.stderr()).isZero();
        assertThat(result.path("ok").asBoolean()).isTrue();
        assertThat(result.path("sent").asInt()).isEqualTo(9);
        assertThat(result.path("received").path(alice + "@localhost").asInt()).isEqualTo(3);
        assertThat(result.path("received").path(bob + "@localhost").asInt()).isEqualTo(6);
        assertThat(result.path("freshTcp").asBoolean()).as("reloaded pages used new TCP connections").isTrue();
        assertThat(result.path("reloads")).hasSize(2);
    }
}
