// SPDX-License-Identifier: Apache-2.0
package io.megaphone.drills;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.it.BoshTestClient;
import io.megaphone.it.EcmProcess;
import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.SharedEjabberd;
import io.megaphone.link.Frame;
import io.megaphone.link.FrameCodec;
import io.megaphone.link.RequestEnvelope;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Security drill on the link port of a real ejabberd and on the BOSH port of a real ECM: link attempts without a
 * secret or with a wrong one, a replayed AUTH (recorded from a legitimate handshake done here), frames before the
 * handshake, a request id reused on one link, and X-Forwarded-For / Forwarded spoofing from an untrusted peer.
 * ejabberd's side is checked with mod_megaphone's own counters: refused links must not move requests_total.
 */
@Tag("drill")
class LinkSecurityDrillTest {

    private static final String SESSION_CREATE = "<body rid='%d' to='localhost' wait='10' hold='1' ver='1.6'"
            + " xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>";
    private static final SecureRandom RANDOM = new SecureRandom();

    private static byte[] hmac(byte[] key, byte[]... parts) throws Exception {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(key.length == 0 ? new byte[1] : key, "HmacSHA256"));
        for (byte[] p : parts) {
            mac.update(p);
        }
        return mac.doFinal();
    }

    private static byte[] authMac(byte[] secret, byte[] serverNonce, byte[] clientNonce, String name) throws Exception {
        return hmac(secret, "megaphone-auth".getBytes(StandardCharsets.US_ASCII), new byte[] {1}, serverNonce,
                clientNonce, name.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] nonce() {
        byte[] n = new byte[32];
        RANDOM.nextBytes(n);
        return n;
    }

    private static Socket connect(PrivateEjabberd ejabberd) throws IOException {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), ejabberd.linkPort());
        socket.setSoTimeout(10_000);
        return socket;
    }

    private static Frame read(DataInputStream in) throws IOException {
        int length = in.readInt();
        byte[] frame = new byte[length];
        in.readFully(frame);
        return FrameCodec.decode(Unpooled.wrappedBuffer(frame));
    }

    private static byte[] bytes(Frame frame) {
        ByteBuf buf = FrameCodec.encode(frame, UnpooledByteBufAllocator.DEFAULT);
        return ByteBufUtil.getBytes(buf);
    }

    private static void write(OutputStream out, byte[] bytes) {
        try {
            out.write(bytes);
            out.flush();
        } catch (IOException alreadyClosed) {
            // the server may close first
        }
    }

    private static Frame.Request request(int id, long rid, String sid, String body) {
        return new Frame.Request(id, RequestEnvelope.of(rid, sid, InetAddress.getLoopbackAddress(), 1234,
                body.getBytes(StandardCharsets.UTF_8)));
    }

    /** Reads until the server closes the link; returns the ERROR code it sent first (0: none, -1: no close). */
    private static int errorThenClose(DataInputStream in) {
        int code = 0;
        try {
            for (int i = 0; i < 100; i++) {
                Frame frame = read(in);
                if (frame instanceof Frame.Error e && code == 0) {
                    code = e.code();
                }
            }
            return -1;
        } catch (SocketTimeoutException e) {
            return -1;
        } catch (EOFException | SocketException closed) {
            return code;
        } catch (IOException e) {
            return code;
        }
    }

    /** A legitimate handshake; returns the AUTH frame's bytes as sent (for the replay). */
    private static byte[] handshake(Socket socket, DataInputStream in) throws Exception {
        Frame.Hello hello = (Frame.Hello) read(in);
        byte[] clientNonce = nonce();
        byte[] auth = bytes(new Frame.Auth(1, clientNonce, authMac(PrivateEjabberd.SECRET.getBytes(
                StandardCharsets.UTF_8), hello.serverNonce(), clientNonce, "drill"), "drill"));
        write(socket.getOutputStream(), auth);
        assertThat(read(in)).isInstanceOf(Frame.Welcome.class);
        return auth;
    }

    @Test
    void refusedLinksReachNothingAndSpoofedAddressesAreIgnored() throws Exception {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        int rounds = Drill.scaled(5, 50);
        Map<String, Map<String, Integer>> results = new TreeMap<>();
        Map<String, Long> before = Drill.megaphoneStats(ejabberd);

        // a real AUTH, recorded from a legitimate handshake, to replay
        byte[] recordedAuth;
        try (Socket socket = connect(ejabberd)) {
            recordedAuth = handshake(socket, new DataInputStream(socket.getInputStream()));
        }
        byte[] secret = PrivateEjabberd.SECRET.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i < rounds; i++) {
            for (String attack : new String[] {"no_secret", "wrong_secret", "replayed_auth", "request_before_auth",
                "ping_before_auth", "garbage"}) {
                try (Socket socket = connect(ejabberd)) {
                    DataInputStream in = new DataInputStream(socket.getInputStream());
                    OutputStream out = socket.getOutputStream();
                    Frame.Hello hello = (Frame.Hello) read(in);
                    byte[] clientNonce = nonce();
                    switch (attack) {
                        case "no_secret" -> write(out, bytes(new Frame.Auth(1, clientNonce,
                                authMac(new byte[0], hello.serverNonce(), clientNonce, "x"), "x")));
                        case "wrong_secret" -> write(out, bytes(new Frame.Auth(1, clientNonce,
                                authMac("not-the-secret-not-the-secret-not-the".getBytes(StandardCharsets.UTF_8), hello.serverNonce(),
                                        clientNonce, "x"), "x")));
                        case "replayed_auth" -> write(out, recordedAuth);
                        case "request_before_auth" -> write(out, bytes(request(1, 1, "", SESSION_CREATE.formatted(1))));
                        case "ping_before_auth" -> write(out, bytes(new Frame.Ping(42)));
                        default -> write(out, "POST /http-bind HTTP/1.1\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                    }
                    if (!attack.equals("request_before_auth") && !attack.equals("ping_before_auth")
                            && !attack.equals("garbage")) {
                        // an intruder would follow with a request: it must never reach ejabberd
                        write(out, bytes(request(1, 1, "", SESSION_CREATE.formatted(1))));
                    }
                    int code = errorThenClose(in);
                    results.computeIfAbsent(attack, k -> new TreeMap<>()).merge(errorName(code), 1, Integer::sum);
                }
            }
            // a reused request id: a legitimate link, a session, a held poll, then the same id again
            try (Socket socket = connect(ejabberd)) {
                DataInputStream in = new DataInputStream(socket.getInputStream());
                handshake(socket, in);
                long rid = 1000 + RANDOM.nextInt(1_000_000);
                write(socket.getOutputStream(), bytes(request(1, rid, "", SESSION_CREATE.formatted(rid))));
                Frame.Response created = (Frame.Response) read(in);
                String sid = BoshTestClient.parse(new String(created.body(), StandardCharsets.UTF_8)).getAttribute("sid");
                String poll = "<body rid='" + (rid + 1) + "' sid='" + sid + "' xmlns='http://jabber.org/protocol/httpbind'/>";
                write(socket.getOutputStream(), bytes(request(2, rid + 1, sid, poll)));
                Thread.sleep(50);
                String poll2 = "<body rid='" + (rid + 2) + "' sid='" + sid + "' xmlns='http://jabber.org/protocol/httpbind'/>";
                write(socket.getOutputStream(), bytes(request(2, rid + 2, sid, poll2)));
                int code = errorThenClose(in);
                results.computeIfAbsent("request_id_reused", k -> new TreeMap<>()).merge(errorName(code), 1, Integer::sum);
            }
        }
        Map<String, Long> after = Drill.megaphoneStats(ejabberd);
        long refused = after.getOrDefault("links_refused_total", 0L) - before.getOrDefault("links_refused_total", 0L);
        long requests = after.getOrDefault("requests_total", 0L) - before.getOrDefault("requests_total", 0L);

        // X-Forwarded-For / Forwarded from an untrusted peer (trusted-proxies empty): ejabberd records the socket's
        String spoofUser;
        String sessions;
        try (EcmProcess ecm = Drill.ecm(ejabberd, "--megaphone.link.links-per-node=1")) {
            spoofUser = SharedEjabberd.newUser("spoof");
            BoshTestClient client = new BoshTestClient(ecm.boshUrl(), PrivateEjabberd.DOMAIN)
                    .withHeader("X-Forwarded-For", "203.0.113.66, 198.51.100.7")
                    .withHeader("Forwarded", "for=203.0.113.67")
                    .login(spoofUser, SharedEjabberd.PASSWORD, 10);
            sessions = ejabberd.ctl("user_sessions_info", spoofUser, PrivateEjabberd.DOMAIN);
            client.terminate();
        }

        Map<String, Object> figures = new LinkedHashMap<>();
        figures.put("rounds", rounds);
        figures.put("attempts_by_attack", results);
        figures.put("links_refused_total_delta", refused);
        figures.put("requests_total_delta", requests);
        figures.put("requests_total_expected", 2L * rounds);
        figures.put("spoofed_session_ip", sessions.contains("203.0.113") ? "spoofed" : sessions.contains("127.0.0.1")
                ? "127.0.0.1 (real peer)" : sessions.strip());
        Drill.record("security", figures);

        for (String attack : new String[] {"no_secret", "wrong_secret", "replayed_auth"}) {
            assertThat(results.get(attack)).as(attack).containsOnlyKeys("auth_failed");
        }
        // garbage: "POST" read as a frame length is over the pre-handshake limit of 4096
        assertThat(results.get("garbage")).as("garbage").containsOnlyKeys("frame_too_large");
        for (String attack : new String[] {"request_before_auth", "ping_before_auth", "request_id_reused"}) {
            assertThat(results.get(attack)).as(attack).containsOnlyKeys("protocol_error");
        }
        assertThat(refused).as("every refused link counted").isGreaterThanOrEqualTo(6L * rounds);
        assertThat(requests).as("only the legitimate links' requests (session + first poll) reached ejabberd")
                .isEqualTo(2L * rounds);
        assertThat(sessions).contains("127.0.0.1").doesNotContain("203.0.113").doesNotContain("198.51.100");
    }

    private static String errorName(int code) {
        return switch (code) {
            case -1 -> "not_closed";
            case 0 -> "closed_without_error";
            case Frame.Error.PROTOCOL_ERROR -> "protocol_error";
            case Frame.Error.UNSUPPORTED_VERSION -> "unsupported_version";
            case Frame.Error.AUTH_FAILED -> "auth_failed";
            case Frame.Error.FRAME_TOO_LARGE -> "frame_too_large";
            case Frame.Error.HANDSHAKE_TIMEOUT -> "handshake_timeout";
            default -> "error_" + code;
        };
    }
}
