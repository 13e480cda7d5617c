// SPDX-License-Identifier: Apache-2.0
// An XMPP-over-WebSocket (RFC 7395) chat with nothing but the JDK (a single-file program, no build): USER_A and
// USER_B each open a WebSocket (subprotocol xmpp) to URL and log in (stream <open/>, SASL PLAIN, a new <open/>,
// resource binding, presence); A sends B a message, B answers; each must arrive exactly once. Both then close
// their streams (<close/>). The WebSocket counterpart of bosh-chat.sh, for scripts/demo.sh.
//
//   java scripts/WsChat.java URL DOMAIN USER_A PASSWORD_A USER_B PASSWORD_B
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.time.LocalTime;
import java.time.temporal.ChronoUnit;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class WsChat {

    static final String FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
    static final long TIMEOUT_MS = 15_000;

    /** One user's WebSocket: every whole text message it received, in order. */
    static final class Client implements WebSocket.Listener {
        final String user;
        final List<String> received = new CopyOnWriteArrayList<>();
        private final StringBuilder partial = new StringBuilder();
        volatile int closeCode = -1;
        WebSocket ws;
        String jid;
        private int seen;

        Client(String user) {
            this.user = user;
        }

        @Override
        public CompletionStage<?> onText(WebSocket socket, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                received.add(partial.toString());
                partial.setLength(0);
            }
            socket.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onClose(WebSocket socket, int code, String reason) {
            closeCode = code;
            return null;
        }

        @Override
        public void onError(WebSocket socket, Throwable error) {
            closeCode = 1006;
        }

        void send(String xml) throws Exception {
            ws.sendText(xml, true).get(5, TimeUnit.SECONDS);
        }

        /** The next message (after those already looked at) that contains {@code text}. */
        String await(String text) throws Exception {
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (System.currentTimeMillis() < deadline) {
                while (seen < received.size()) {
                    String message = received.get(seen++);
                    if (message.contains(text)) {
                        return message;
                    }
                    if (message.contains("<close") || message.contains("<failure")) {
                        throw new IllegalStateException(user + ": " + message);
                    }
                }
                if (closeCode != -1) {
                    throw new IllegalStateException(user + ": the WebSocket closed (" + closeCode + ") before " + text);
                }
                Thread.sleep(20);
            }
            throw new IllegalStateException(user + ": nothing with " + text + " within " + TIMEOUT_MS + " ms");
        }

        long count(String text) {
            return received.stream().filter(m -> m.contains(text)).count();
        }
    }

    static Client login(String url, String domain, String user, String password) throws Exception {
        Client client = new Client(user);
        try {
            client.ws = HttpClient.newHttpClient().newWebSocketBuilder().subprotocols("xmpp")
                    .buildAsync(URI.create(url), client).get(10, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            String why = e.getCause() instanceof java.net.http.WebSocketHandshakeException refused
                    ? "HTTP " + refused.getResponse().statusCode() : String.valueOf(e.getCause());
            throw new IllegalStateException(user + ": the WebSocket handshake with " + url + " failed: " + why, e);
        }
        String open = "<open xmlns='" + FRAMING + "' to='" + domain + "' version='1.0'/>";
        client.send(open);
        client.await("PLAIN");
        String plain = Base64.getEncoder().encodeToString(("\0" + user + "\0" + password)
                .getBytes(StandardCharsets.UTF_8));
        client.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain + "</auth>");
        client.await("<success");
        client.send(open); // a new stream after SASL
        client.await("urn:ietf:params:xml:ns:xmpp-bind");
        client.send("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                + "<resource>demo-ws</resource></bind></iq>");
        Matcher jid = Pattern.compile("<jid>([^<]+)</jid>").matcher(client.await("bind1"));
        if (!jid.find()) {
            throw new IllegalStateException(user + ": resource binding failed");
        }
        client.jid = jid.group(1);
        client.send("<presence xmlns='jabber:client'/>");
        client.await("<presence"); // ejabberd echoes it: online
        System.out.println("  " + user + " logged in over WebSocket: " + client.jid);
        return client;
    }

    static String chat(String to, String text) {
        return "<message xmlns='jabber:client' type='chat' to='" + to + "'><body>" + text + "</body></message>";
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: java scripts/WsChat.java URL DOMAIN USER_A PASSWORD_A USER_B PASSWORD_B");
            System.exit(2);
        }
        String url = args[0];
        String domain = args[1];
        try {
            Client a = login(url, domain, args[2], args[3]);
            Client b = login(url, domain, args[4], args[5]);
            String hello = "Hello from " + a.user + ", over XMPP over WebSocket through Megaphone ("
                    + LocalTime.now().truncatedTo(ChronoUnit.SECONDS) + ")";
            a.send(chat(b.user + "@" + domain, hello));
            b.await(hello);
            System.out.println("  " + b.user + " received: " + hello);
            String reply = "Hi " + a.user + ", " + b.user + " here, over WebSocket too";
            b.send(chat(a.user + "@" + domain, reply));
            a.await(reply);
            System.out.println("  " + a.user + " received: " + reply);
            Thread.sleep(300); // a duplicate would arrive now
            if (b.count(hello) != 1 || a.count(reply) != 1) {
                throw new IllegalStateException("a message arrived more than once: " + b.count(hello) + ", "
                        + a.count(reply));
            }
            for (Client c : List.of(a, b)) {
                c.send("<close xmlns='" + FRAMING + "'/>");
            }
            for (Client c : List.of(a, b)) {
                long deadline = System.currentTimeMillis() + TIMEOUT_MS;
                while (c.closeCode == -1 && System.currentTimeMillis() < deadline) {
                    Thread.sleep(20);
                }
            }
            System.out.println("Message delivered from " + a.user + " to " + b.user + " and back through " + url);
        } catch (IllegalStateException e) {
            System.err.println("ws-chat: " + e.getMessage());
            System.exit(1);
        }
    }
}
