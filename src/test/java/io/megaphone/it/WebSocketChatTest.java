// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;

/**
 * XMPP over WebSocket (RFC 7395) through the real parts: a WebSocket client logs in through the ECM's
 * {@code /xmpp-websocket} into the private ejabberd (mod_megaphone's stream, no socket in ejabberd) and chats both ways
 * with a BOSH user of the same ECM; ejabberd lists the session as a WebSocket one.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class WebSocketChatTest extends RealEcmTest {

    private static final String FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

    /** The whole text messages a client WebSocket received, and its close code. */
    static final class Heard implements WebSocket.Listener {
        final List<String> messages = new CopyOnWriteArrayList<>();
        volatile int closeCode = -1;
        private final StringBuilder partial = new StringBuilder();

        @Override
        public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                messages.add(partial.toString());
                partial.setLength(0);
            }
            ws.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket ws, int statusCode, String reason) {
            closeCode = statusCode;
            return null;
        }

        String awaitContaining(String text) {
            await().atMost(Duration.ofSeconds(10)).until(() -> messages.stream().anyMatch(m -> m.contains(text)));
            return messages.stream().filter(m -> m.contains(text)).findFirst().orElseThrow();
        }
    }

    private static String open() {
        return "<open xmlns='" + FRAMING + "' to='" + PrivateEjabberd.DOMAIN + "' version='1.0'/>";
    }

    @Test
    void aWebSocketUserAndABoshUserChatBothWaysThroughTheEcm() throws Exception {
        awaitLinks(2);
        String alice = SharedEjabberd.newUser("wsalice");
        String bob = SharedEjabberd.newUser("wsbob");
        BoshTestClient bobClient = new BoshTestClient(boshUrl(), PrivateEjabberd.DOMAIN)
                .login(bob, SharedEjabberd.PASSWORD, 20);
        bobClient.clear();

        Heard heard = new Heard();
        WebSocket ws = HttpClient.newHttpClient().newWebSocketBuilder().subprotocols("xmpp")
                .buildAsync(URI.create("ws://127.0.0.1:" + port + "/xmpp-websocket"), heard)
                .get(10, TimeUnit.SECONDS);
        assertThat(ws.getSubprotocol()).isEqualTo("xmpp");

        ws.sendText(open(), true).get(5, TimeUnit.SECONDS);
        heard.awaitContaining("PLAIN");
        String credentials = Base64.getEncoder().encodeToString(
                ("\0" + alice + "\0" + SharedEjabberd.PASSWORD).getBytes(StandardCharsets.UTF_8));
        ws.sendText("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + credentials + "</auth>", true)
                .get(5, TimeUnit.SECONDS);
        heard.awaitContaining("<success");
        heard.messages.clear();
        ws.sendText(open(), true).get(5, TimeUnit.SECONDS); // the stream restarts after SASL
        heard.awaitContaining("urn:ietf:params:xml:ns:xmpp-bind");
        ws.sendText("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                + "<resource>ws</resource></bind></iq>", true).get(5, TimeUnit.SECONDS);
        assertThat(heard.awaitContaining("bind1")).contains("<jid>" + alice + "@" + PrivateEjabberd.DOMAIN + "/ws</jid>");

        try (BoshPoller bobPoller = new BoshPoller(bobClient)) {
            ws.sendText(BoshTestClient.chat(bob + "@" + PrivateEjabberd.DOMAIN, "hello from a websocket"), true)
                    .get(5, TimeUnit.SECONDS);
            await().atMost(Duration.ofSeconds(10)).until(() -> bobPoller.chatBodies.contains("hello from a websocket")
                    || !bobPoller.failures.isEmpty());
            assertThat(bobPoller.failures).isEmpty();

            bobClient.sendChat(alice + "@" + PrivateEjabberd.DOMAIN + "/ws", "hello from bosh");
            assertThat(heard.awaitContaining("hello from bosh")).contains("<message");

            String sessions = SharedEjabberd.get().ctl("connected_users_info");
            assertThat(sessions.lines().filter(l -> l.startsWith(alice + "@")))
                    .as("ejabberd's view of the WebSocket user: %s", sessions)
                    .singleElement().asString().contains("websocket");

            ws.sendText("<close xmlns='" + FRAMING + "'/>", true).get(5, TimeUnit.SECONDS);
            heard.awaitContaining("<close"); // ejabberd ends the stream, and the ECM closes the WebSocket (RFC 7395)
            await().atMost(Duration.ofSeconds(10)).until(() -> heard.closeCode != -1);
            assertThat(heard.closeCode).isEqualTo(WebSocket.NORMAL_CLOSURE);
            await().atMost(Duration.ofSeconds(10)).until(() -> !SharedEjabberd.get().ctl("connected_users")
                    .contains(alice + "@"));
        }
        bobClient.terminate();
    }
}
