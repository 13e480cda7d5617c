// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.SharedEjabberd;
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
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Hostile peers on the link port of a real ejabberd: each is closed before anything reaches ejabberd's BOSH
 * code, and that is checked on ejabberd's side (mod_megaphone's counters), not only from the socket.
 */
class LinkSecurityRealEjabberdTest {

    private static PrivateEjabberd ejabberd;
    private static final String SESSION_CREATE = "<body rid='1' to='localhost' wait='10' hold='1' ver='1.6'"
            + " xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>";

    @BeforeAll
    static void start() {
        ejabberd = SharedEjabberd.get();
    }

    private Map<String, Long> stats() throws Exception {
        Map<String, Long> stats = new HashMap<>();
        for (String line : ejabberd.ctl("megaphone_stats").split("\n")) {
            String[] fields = line.strip().split("\\s+");
            if (fields.length == 2 && fields[1].matches("\\d+")) {
                stats.put(fields[0], Long.parseLong(fields[1]));
            }
        }
        assertThat(stats).containsKeys("requests_total", "links_refused_total");
        return stats;
    }

    private static Socket connect() throws IOException {
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

    private static void write(OutputStream out, Frame frame) throws IOException {
        ByteBuf buf = FrameCodec.encode(frame, UnpooledByteBufAllocator.DEFAULT);
        out.write(ByteBufUtil.getBytes(buf));
        out.flush();
    }

    private static Frame.Request sessionCreate(int id) throws IOException {
        return new Frame.Request(id, RequestEnvelope.of(1, "", InetAddress.getLoopbackAddress(), 1234,
                SESSION_CREATE.getBytes(StandardCharsets.UTF_8)));
    }

    /** Reads until the server closes the link; returns the ERROR it sent first, if any. */
    private static Frame.Error errorThenClose(DataInputStream in) throws IOException {
        Frame.Error error = null;
        try {
            while (true) {
                Frame frame = read(in);
                if (frame instanceof Frame.Error e) {
                    error = e;
                }
            }
        } catch (EOFException | SocketException closed) {
            return error;
        }
    }

    @Test
    void aWrongSecretIsRefusedAndItsRequestNeverReachesEjabberd() throws Exception {
        Map<String, Long> before = stats();
        try (Socket socket = connect()) {
            DataInputStream in = new DataInputStream(socket.getInputStream());
            Frame.Hello hello = (Frame.Hello) read(in);
            byte[] clientNonce = HandshakeProof.newNonce();
            HandshakeProof wrong = new HandshakeProof("not-the-secret-not-the-secret-not-the".getBytes(StandardCharsets.UTF_8));
            write(socket.getOutputStream(), new Frame.Auth(1, clientNonce,
                    wrong.authMac(1, hello.serverNonce(), clientNonce, "intruder"), "intruder"));
            try {
                write(socket.getOutputStream(), sessionCreate(1));
            } catch (SocketException alreadyClosed) {
                // the server may close before this arrives
            }
            Frame.Error error = errorThenClose(in);
            assertThat(error.code()).isEqualTo(Frame.Error.AUTH_FAILED);
        }
        Map<String, Long> after = stats();
        assertThat(after.get("requests_total")).isEqualTo(before.get("requests_total"));
        assertThat(after.get("links_refused_total")).isGreaterThan(before.get("links_refused_total"));
        assertThat(ejabberd.log()).doesNotContain(PrivateEjabberd.SECRET);
    }

    @Test
    void aRequestBeforeTheHandshakeIsRefused() throws Exception {
        Map<String, Long> before = stats();
        try (Socket socket = connect()) {
            DataInputStream in = new DataInputStream(socket.getInputStream());
            read(in); // HELLO
            write(socket.getOutputStream(), sessionCreate(1));
            Frame.Error error = errorThenClose(in);
            assertThat(error.code()).isEqualTo(Frame.Error.PROTOCOL_ERROR);
        }
        assertThat(stats().get("requests_total")).isEqualTo(before.get("requests_total"));
    }

    @Test
    void garbageBytesCloseTheLink() throws Exception {
        Map<String, Long> before = stats();
        try (Socket socket = connect()) {
            DataInputStream in = new DataInputStream(socket.getInputStream());
            read(in); // HELLO
            socket.getOutputStream().write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().flush();
            Frame.Error error = errorThenClose(in);
            assertThat(error).isNotNull();
        }
        Map<String, Long> after = stats();
        assertThat(after.get("requests_total")).isEqualTo(before.get("requests_total"));
        assertThat(after.get("links_refused_total")).isGreaterThan(before.get("links_refused_total"));
    }

    @Test
    void anOversizeFrameIsRefusedWithoutBeingRead() throws Exception {
        Map<String, Long> before = stats();
        try (Socket socket = connect()) {
            DataInputStream in = new DataInputStream(socket.getInputStream());
            read(in); // HELLO
            OutputStream out = socket.getOutputStream();
            out.write(Unpooled.buffer().writeInt(64 * 1024 * 1024).writeByte(0x02).array(), 0, 5);
            out.flush();
            Frame.Error error = errorThenClose(in);
            assertThat(error.code()).isEqualTo(Frame.Error.FRAME_TOO_LARGE);
        }
        assertThat(stats().get("requests_total")).isEqualTo(before.get("requests_total"));
    }

    @Test
    void theRightSecretGetsALinkAndARequestReachesEjabberd() throws Exception {
        Map<String, Long> before = stats();
        try (Socket socket = connect()) {
            DataInputStream in = new DataInputStream(socket.getInputStream());
            Frame.Hello hello = (Frame.Hello) read(in);
            byte[] clientNonce = HandshakeProof.newNonce();
            HandshakeProof proof = new HandshakeProof(PrivateEjabberd.SECRET.getBytes(StandardCharsets.UTF_8));
            write(socket.getOutputStream(), new Frame.Auth(1, clientNonce,
                    proof.authMac(1, hello.serverNonce(), clientNonce, "test"), "test"));
            Frame.Welcome welcome = (Frame.Welcome) read(in);
            assertThat(welcome.mac()).isEqualTo(proof.welcomeMac(1, clientNonce, hello.serverNonce()));
            write(socket.getOutputStream(), sessionCreate(5));
            Frame.Response response = (Frame.Response) read(in);
            assertThat(response.id()).isEqualTo(5);
            assertThat(response.status()).isEqualTo(200);
            assertThat(new String(response.body(), StandardCharsets.UTF_8)).contains("sid=");
        }
        assertThat(stats().get("requests_total")).isEqualTo(before.get("requests_total") + 1);
    }
}
