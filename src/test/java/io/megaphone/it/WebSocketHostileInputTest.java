// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Hostile input on the XMPP-over-WebSocket endpoint, through the real parts: the ECM as its own process on a real
 * port, a private ejabberd with mod_megaphone, clients over TCP (a raw socket for what no WebSocket library sends).
 * Each attack gets a clear close code (or an HTTP status for a handshake) while a WebSocket user and a BOSH user
 * chat through the same ECM, each message exactly once; afterwards the link is the same (no reconnect in the ECM,
 * the same link process in ejabberd) and the bystanders' sessions are still in ejabberd.
 */
class WebSocketHostileInputTest {

    private static final int MAX_MESSAGE = 65_536;
    private static final int MAX_STANZA = 32_768;
    private static final int SHAPED_RATE = 20_000;
    private static final String ORIGIN = "https://chat.example.org";
    private static final String PATH = "/xmpp-websocket";
    private static final String DOMAIN = PrivateEjabberd.DOMAIN;

    private static PrivateEjabberd ejabberd;
    private static EcmProcess ecm;
    private static Bystanders bystanders;
    private double connectsBefore;
    private String linkBefore;

    @BeforeAll
    static void start() throws Exception {
        ejabberd = PrivateEjabberd.start(Map.of("EJ_MAX_STANZA_SIZE", Integer.toString(MAX_STANZA),
                "EJ_SHAPED_USERS_RATE", Integer.toString(SHAPED_RATE)));
        ecm = EcmProcess.builder().name("ws-hostile").linkedTo(ejabberd).waitForReadyLinks(1).args(
                "--megaphone.link.links-per-node=1",
                "--megaphone.edge.websocket.max-message-bytes=" + MAX_MESSAGE,
                "--megaphone.edge.websocket.allowed-origins=" + ORIGIN,
                "--" + RealEcmTest.MANY_SESSIONS_PER_CLIENT, "--" + RealEcmTest.MANY_SESSIONS_BURST).start();
        bystanders = Bystanders.login(ejabberd, ecm.port);
    }

    @AfterAll
    static void stop() throws Exception {
        if (bystanders != null) {
            bystanders.close();
        }
        if (ecm != null) {
            ecm.close();
        }
        if (ejabberd != null) {
            ejabberd.close();
        }
    }

    @BeforeEach
    void noteTheLink() throws Exception {
        connectsBefore = EcmProcess.sum(ecm.prometheus(), "megaphone_link_connects_total");
        linkBefore = linkProcesses();
        assertThat(linkBefore).contains("<");
    }

    /** The link survived: no reconnect counted by the ECM, the same link process in ejabberd, the bystanders there. */
    @AfterEach
    void theLinkAndTheBystandersAreUntouched() throws Exception {
        assertThat(EcmProcess.sum(ecm.prometheus(), "megaphone_link_connects_total")).isEqualTo(connectsBefore);
        assertThat(linkProcesses()).isEqualTo(linkBefore);
        String users = ejabberd.ctl("connected_users");
        assertThat(users).contains(bystanders.wsJid).contains(bystanders.boshJid);
        assertThat(ecm.alive()).isTrue();
    }

    /** ejabberd's mod_megaphone_link processes, as pids. */
    private static String linkProcesses() throws Exception {
        return ejabberd.eval("lists:sort([P || P <- erlang:processes(), "
                + "{dictionary, D} <- [erlang:process_info(P, dictionary)], "
                + "{'$initial_call', {mod_megaphone_link, _, _}} <- D])");
    }

    private static RawWebSocket connect(String... headers) throws IOException {
        RawWebSocket ws = RawWebSocket.connect(ecm.port, PATH, "xmpp", headers);
        assertThat(ws.handshake.status()).as(ws.handshake.head()).isEqualTo(101);
        return ws;
    }

    private static String ascii(int bytes) {
        return "x".repeat(bytes);
    }

    private static double closes(String reason) throws Exception {
        return EcmProcess.sum(ecm.prometheus(), "megaphone_edge_websocket_closes_total", "reason=\"" + reason + "\"");
    }

    @Test
    void aMessageOverMaxMessageBytesIsClosedWith1009() throws Exception {
        double before = closes("too_big");
        bystanders.chatDuring(() -> {
            try (RawWebSocket ws = connect()) {
                ws.sendText(Bystanders.open(DOMAIN));
                ws.readUntil("</stream:features>");
                ws.sendText("<message to='x@" + DOMAIN + "'><body>" + ascii(MAX_MESSAGE) + "</body></message>");
                assertThat(ws.awaitClose(null)).isEqualTo(1009);
            }
        });
        assertThat(closes("too_big")).isEqualTo(before + 1);
    }

    /**
     * Frames whose headers claim 1 GiB each but that send 10 bytes: the ECM closes each at its header with 1009,
     * without waiting for the rest nor allocating for it (40 of them at once would need 40 GiB; the ECM has 256 MB).
     */
    @Test
    void aFrameThatClaimsAHugeLengthIsClosedWith1009AtItsHeader() throws Exception {
        bystanders.chatDuring(() -> {
            List<RawWebSocket> sockets = new ArrayList<>();
            try {
                for (int i = 0; i < 40; i++) {
                    RawWebSocket ws = connect();
                    sockets.add(ws);
                    ws.sendFrame(true, RawWebSocket.TEXT, "<message/".getBytes(StandardCharsets.UTF_8), 1L << 30);
                }
                for (RawWebSocket ws : sockets) {
                    long start = System.nanoTime();
                    assertThat(ws.awaitClose(null)).isEqualTo(1009);
                    assertThat(System.nanoTime() - start).isLessThan(Duration.ofSeconds(5).toNanos());
                }
            } finally {
                for (RawWebSocket ws : sockets) {
                    ws.close();
                }
            }
        });
    }

    /**
     * 40 clients that each start a frame under the limit and stall halfway hold up no one else, and are not kept for
     * ever: ejabberd's negotiation timeout ends each stream (connection-timeout), and the ECM closes it with 1000.
     */
    @Test
    void framesThatStallHalfwayHoldUpNoOneAndEndAtEjabberdsNegotiationTimeout() throws Exception {
        List<RawWebSocket> sockets = new ArrayList<>();
        try {
            bystanders.chatDuring(() -> {
                for (int i = 0; i < 40; i++) {
                    RawWebSocket ws = connect();
                    sockets.add(ws);
                    ws.sendText(Bystanders.open(DOMAIN));
                    ws.readUntil("</stream:features>");
                    ws.sendFrame(true, RawWebSocket.TEXT, "<message>".getBytes(StandardCharsets.UTF_8),
                            MAX_MESSAGE - 1);
                }
                Thread.sleep(5_000);
            });
            for (RawWebSocket ws : sockets) {
                ws.socket().setSoTimeout(60_000);
                List<String> texts = new ArrayList<>();
                assertThat(ws.awaitClose(texts)).isEqualTo(1000);
                assertThat(String.join("\n", texts)).contains("<connection-timeout");
            }
        } finally {
            for (RawWebSocket ws : sockets) {
                ws.close();
            }
        }
    }

    @Test
    void aBinaryFrameIsClosedWith1003() throws Exception {
        bystanders.chatDuring(() -> {
            try (RawWebSocket ws = connect()) {
                ws.sendText(Bystanders.open(DOMAIN));
                ws.readUntil("</stream:features>");
                ws.sendFrame(true, RawWebSocket.BINARY, Bystanders.open(DOMAIN).getBytes(StandardCharsets.UTF_8), -1);
                assertThat(ws.awaitClose(null)).isEqualTo(1003);
            }
        });
    }

    /** Each fragment is under the limit; the message they make is over it. */
    @Test
    void aFragmentedMessageOverMaxMessageBytesIsClosedWith1009() throws Exception {
        bystanders.chatDuring(() -> {
            try (RawWebSocket ws = connect()) {
                ws.sendText(Bystanders.open(DOMAIN));
                ws.readUntil("</stream:features>");
                byte[] fragment = ascii(MAX_MESSAGE / 2 + 100).getBytes(StandardCharsets.UTF_8);
                ws.sendFrame(false, RawWebSocket.TEXT, "<message><body>".getBytes(StandardCharsets.UTF_8), -1);
                ws.sendFrame(false, RawWebSocket.CONTINUATION, fragment, -1);
                ws.sendFrame(false, RawWebSocket.CONTINUATION, fragment, -1);
                try {
                    ws.sendFrame(true, RawWebSocket.CONTINUATION,
                            "</body></message>".getBytes(StandardCharsets.UTF_8), -1);
                } catch (SocketException closedMeanwhile) {
                    // the ECM may have closed already
                }
                assertThat(ws.awaitClose(null)).isEqualTo(1009);
            }
        });
    }

    /**
     * Frames that break RFC 6455 (sent as hex, masked with a zero key where masked): Netty's decoder refuses each and
     * the WebSocket is closed with 1002 (protocol error), or 1007 for a text frame that is not UTF-8.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        unmasked client frame             | 810568656c6c6f                     | 1002
        reserved opcode 0x3               | 838000000000                       | 1002
        reserved bit RSV1, no extension   | c18000000000                       | 1002
        ping longer than 125 bytes        | 89fe007e00000000                   | 1002
        fragmented ping                   | 098000000000                       | 1002
        continuation with nothing to continue | 808100000000 41                | 1002
        text that is not UTF-8            | 818200000000c328                   | 1007
        """)
    void aFrameThatBreaksRfc6455IsClosedWithItsCode(String name, String hex, int code) throws Exception {
        byte[] frame = java.util.HexFormat.of().parseHex(hex.replace(" ", ""));
        if (name.startsWith("ping longer")) { // the 126 bytes of payload, masked with the zero key
            frame = java.util.Arrays.copyOf(frame, frame.length + 126);
        }
        byte[] bytes = frame;
        bystanders.chatDuring(() -> {
            try (RawWebSocket ws = connect()) {
                ws.sendText(Bystanders.open(DOMAIN));
                ws.readUntil("</stream:features>");
                ws.sendRaw(bytes);
                assertThat(ws.awaitClose(null)).isEqualTo(code);
            }
        });
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        wrong subprotocol       | xmpp2  | <none>                   | 400 | bad_subprotocol
        no subprotocol          | <none> | <none>                   | 400 | bad_subprotocol
        origin not in the list  | xmpp   | https://evil.example.org | 403 | bad_origin
        """)
    void aHandshakeWithABadSubprotocolOrOriginIsRefusedWithoutAnUpgrade(String name, String subprotocol,
                                                                       String origin, int status, String result)
            throws Exception {
        String scrape = ecm.prometheus();
        double refused = EcmProcess.sum(scrape, "megaphone_edge_websocket_opens_total", "result=\"" + result + "\"");
        double opened = EcmProcess.sum(scrape, "megaphone_edge_websocket_opens_total", "result=\"opened\"");
        bystanders.chatDuring(() -> {
            try (RawWebSocket ws = RawWebSocket.connect(ecm.port, PATH, subprotocol.equals("<none>") ? null
                    : subprotocol, origin.equals("<none>") ? new String[0] : new String[] {"Origin: " + origin})) {
                assertThat(ws.handshake.status()).as(ws.handshake.head()).isEqualTo(status);
                assertThat(ws.handshake.head()).doesNotContainIgnoringCase("Sec-WebSocket-Accept");
            }
        });
        scrape = ecm.prometheus();
        assertThat(EcmProcess.sum(scrape, "megaphone_edge_websocket_opens_total", "result=\"" + result + "\""))
                .isEqualTo(refused + 1);
        assertThat(EcmProcess.sum(scrape, "megaphone_edge_websocket_opens_total", "result=\"opened\""))
                .isEqualTo(opened);
    }

    @Test
    void theAllowedOriginIsUpgraded() throws Exception {
        try (RawWebSocket ws = connect("Origin: " + ORIGIN)) {
            ws.sendText(Bystanders.open(DOMAIN));
            ws.readUntil("</stream:features>");
        }
    }

    /**
     * Not XML, not XMPP, an entity bomb, a stanza before the stream's {@code <open/>}, a deeply nested element (4,500
     * levels, parsed, then refused before authentication), a stanza over ejabberd's max_stanza_size: ejabberd's c2s
     * answers with its stream error, closes the stream, and the ECM closes the WebSocket with 1000.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
        unclosed open tag          | true  | <open                                   | not-well-formed
        text, not XML              | true  | hello, world                            | not-well-formed
        entity expansion bomb      | true  | BOMB                                    | not-well-formed
        stanza before open         | false | <message to='x@localhost'><body>early</body></message> | invalid-xml
        deeply nested element      | true  | DEEP                                    | not-authorized
        over max_stanza_size       | true  | OVERSIZED                               | policy-violation
        """)
    void malformedOrNotXmppTextGetsEjabberdsStreamErrorAndAClose(String name, boolean openFirst, String text,
                                                                 String condition) throws Exception {
        String payload = switch (text) {
            case "BOMB" -> "<!DOCTYPE m [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
                    + "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'>]>"
                    + "<message to='x@" + DOMAIN + "'><body>&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;</body></message>";
            case "DEEP" -> "<iq type='get' id='deep' xmlns='jabber:client'>" + "<a>".repeat(4500)
                    + "</a>".repeat(4500) + "</iq>";
            case "OVERSIZED" -> "<message to='x@" + DOMAIN + "'><body>" + ascii(MAX_STANZA + 100)
                    + "</body></message>";
            default -> text;
        };
        assertThat(payload.length()).isLessThan(MAX_MESSAGE);
        bystanders.chatDuring(() -> {
            try (RawWebSocket ws = connect()) {
                if (openFirst) {
                    ws.sendText(Bystanders.open(DOMAIN));
                    ws.readUntil("</stream:features>");
                }
                ws.sendText(payload);
                List<String> texts = new ArrayList<>();
                int code = ws.awaitClose(texts);
                String all = String.join("\n", texts);
                assertThat(all).contains("<stream:error").contains("<" + condition).contains("<close");
                assertThat(code).isEqualTo(1000);
            }
        });
    }

    /** A raw WebSocket logged in as {@code user} (open, SASL PLAIN, restart, bind to resource {@code flood}). */
    private static RawWebSocket loginRaw(String user) throws Exception {
        ejabberd.register(user, SharedEjabberd.PASSWORD);
        RawWebSocket ws = connect();
        ws.sendText(Bystanders.open(DOMAIN));
        ws.readUntil("</stream:features>");
        ws.sendText("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + Base64.getEncoder()
                .encodeToString(("\0" + user + "\0" + SharedEjabberd.PASSWORD).getBytes(StandardCharsets.UTF_8))
                + "</auth>");
        ws.readUntil("<success");
        ws.sendText(Bystanders.open(DOMAIN));
        ws.readUntil("</stream:features>");
        ws.sendText("<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                + "<resource>flood</resource></bind></iq>");
        ws.readUntil("bind1");
        return ws;
    }

    /** Writes {@code stanza} as text frames as fast as the socket takes them, never reading, until it is closed. */
    private static Thread flood(RawWebSocket ws, String stanza, AtomicLong written) {
        byte[] payload = stanza.getBytes(StandardCharsets.UTF_8);
        Thread flooder = new Thread(() -> {
            try {
                while (true) {
                    ws.sendFrame(true, RawWebSocket.TEXT, payload, -1);
                    written.addAndGet(payload.length);
                }
            } catch (IOException closed) {
                // the test closed the socket
            }
        }, "flooder");
        flooder.setDaemon(true);
        flooder.start();
        return flooder;
    }

    private static double stalls(String direction) throws Exception {
        return EcmProcess.sum(ecm.prometheus(), "megaphone_edge_websocket_credit_stalls_total",
                "direction=\"" + direction + "\"");
    }

    /**
     * A client that sends 8 KB messages to itself as fast as it can and never reads: its stream's credit holds it
     * back both ways (ejabberd's answers wait for the ECM's credit, the c2s stops taking, the ECM stops reading the
     * client's socket), so the ECM's heap after GC stays flat while the flooder writes, and the bystanders chat on.
     */
    @Test
    void aFloodFromOneClientIsHeldBackByItsOwnSocket() throws Exception {
        AtomicLong written = new AtomicLong();
        double upstreamStalls = stalls("upstream");
        double downstreamStalls = stalls("downstream");
        String user = "flood" + System.nanoTime() % 100000;
        try (RawWebSocket flooder = loginRaw(user)) {
            long heapBefore = ecm.heapAfterGc();
            String self = user + "@" + DOMAIN + "/flood";
            long[] heapDuring = new long[1];
            long slowest = bystanders.chatDuring(() -> {
                Thread thread = flood(flooder, "<message to='" + self + "' type='chat' xmlns='jabber:client'><body>"
                        + ascii(8192) + "</body></message>", written);
                Thread.sleep(8000);
                heapDuring[0] = ecm.heapAfterGc();
                flooder.close();
                thread.join(5000);
            });
            long growth = heapDuring[0] - heapBefore;
            System.out.printf("[ws flood] the flooder wrote %,d bytes in 8 s; ECM heap after GC %,d -> %,d bytes "
                    + "(%+,d); slowest bystander message %d ms; credit stalls up %+.0f, down %+.0f%n", written.get(),
                    heapBefore, heapDuring[0], growth, slowest, stalls("upstream") - upstreamStalls,
                    stalls("downstream") - downstreamStalls);
            assertThat(growth).as("ECM heap growth while the flooder wrote %,d bytes", written.get())
                    .isLessThan(16L << 20);
            assertThat(slowest).as("the bystanders' slowest message, ms").isLessThan(3000);
            assertThat(stalls("upstream")).isGreaterThan(upstreamStalls);
            assertThat(stalls("downstream")).isGreaterThan(downstreamStalls);
        }
    }

    /**
     * ejabberd's shaper applies to a WebSocket client through the ECM as on its own /ws: a user the c2s shaper rule
     * gives {@value #SHAPED_RATE} bytes/s that floods (messages ejabberd drops) gets no more than that through, plus
     * the stream's credit; the rest waits in its own socket.
     */
    @Test
    void ejabberdsShaperHoldsAFloodToItsRate() throws Exception {
        AtomicLong written = new AtomicLong();
        try (RawWebSocket flooder = loginRaw("shaped" + System.nanoTime() % 100000)) {
            double receivedBefore = EcmProcess.sum(ecm.prometheus(), "megaphone_edge_websocket_received_bytes_total");
            long start = System.nanoTime();
            double[] received = new double[1];
            bystanders.chatDuring(() -> {
                Thread thread = flood(flooder, "<message to='nobody@" + DOMAIN + "' type='error' "
                        + "xmlns='jabber:client'><body>" + ascii(1000) + "</body></message>", written);
                Thread.sleep(6000);
                received[0] = EcmProcess.sum(ecm.prometheus(), "megaphone_edge_websocket_received_bytes_total")
                        - receivedBefore;
                flooder.close();
                thread.join(5000);
            });
            double seconds = (System.nanoTime() - start) / 1e9;
            System.out.printf("[ws shaper] the flooder wrote %,d bytes; the ECM took %,.0f bytes from WebSocket "
                    + "clients in %.1f s (shaper %d bytes/s)%n", written.get(), received[0], seconds, SHAPED_RATE);
            // the shaper's rate for the time, the credit ejabberd grants (262144) and one message: a bound that
            // no flooder moves
            assertThat(received[0]).isLessThan(SHAPED_RATE * seconds + 262_144 + 65_536);
        }
    }
}
