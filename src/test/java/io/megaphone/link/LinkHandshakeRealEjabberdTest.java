// SPDX-License-Identifier: Apache-2.0
package io.megaphone.link;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.it.PrivateEjabberd;
import io.netty.buffer.Unpooled;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The handshake of a real mod_megaphone configured with two secrets (a rotation: the new one first, the old one
 * still accepted) and at most 3 connections pending authentication. ECMs proving either secret get links (a rolling
 * rotation never fails a link), one proving neither tries and is refused each time; past 3 silent pre-auth
 * connections a new one is closed before HELLO, and each silent one is closed at the handshake deadline.
 */
class LinkHandshakeRealEjabberdTest {

    private static final String NEW = "new-secret-" + UUID.randomUUID();
    private static final String OLD = "old-secret-" + UUID.randomUUID();
    private static PrivateEjabberd ejabberd;
    private final List<LinkPool> pools = new ArrayList<>();

    @BeforeAll
    static void start() throws Exception {
        ejabberd = PrivateEjabberd.start(Map.of("MEGAPHONE_SECRET", NEW + "\n" + OLD, "EJ_MAX_PENDING_LINKS", "3"));
    }

    @AfterAll
    static void stop() {
        ejabberd.close();
    }

    @AfterEach
    void closePools() {
        pools.forEach(LinkPool::close);
    }

    private LinkPool pool(String... secrets) {
        List<byte[]> keys = new ArrayList<>();
        for (String secret : secrets) {
            keys.add(secret.getBytes(StandardCharsets.UTF_8));
        }
        LinkSettings settings = new LinkSettings(new HandshakeProof(keys), "rotation-ecm", Duration.ofSeconds(15),
                Duration.ofSeconds(2), 1 << 20);
        LinkPool pool = new LinkPool(List.of(new InetSocketAddress("127.0.0.1", ejabberd.linkPort())), 1, settings,
                Duration.ofSeconds(30), Duration.ofMillis(50), Duration.ofMillis(500), 1);
        pools.add(pool);
        pool.start();
        return pool;
    }

    @Test
    void duringARotationEcmsProvingTheOldOrTheNewSecretGetLinksAndOthersDoNot() throws Exception {
        long refusedBefore = stat("links_refused_total");
        long acceptedBefore = stat("links_accepted_total");
        LinkPool stillOld = pool(OLD);
        LinkPool rotated = pool(NEW, OLD);
        LinkPool neither = pool("neither-secret-" + UUID.randomUUID());

        await().atMost(Duration.ofSeconds(10)).until(() -> stillOld.readyLinks() == 1 && rotated.readyLinks() == 1);
        // The wrong one did try, and was refused, more than once (it retries): counted on both sides.
        LinkStats wrong = neither.links().get(0).stats();
        await().atMost(Duration.ofSeconds(10)).until(() -> stat("links_refused_total") >= refusedBefore + 2
                && wrong.sent(AUTH) >= 2);
        assertThat(wrong.received(WELCOME)).as("WELCOMEs the wrong secret got").isZero();
        assertThat(neither.readyLinks()).isZero();
        assertThat(stat("links_accepted_total")).as("links authenticated: the old and the rotated ECM's")
                .isEqualTo(acceptedBefore + 2);
    }

    /** {@link LinkStats#TYPES} indexes. */
    private static final int AUTH = 1;
    private static final int WELCOME = 2;

    @Test
    void preAuthConnectionsAreBoundedInNumberAndInTime() throws Exception {
        long refusedBefore = stat("links_refused_pending_total");
        List<Socket> silent = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Socket socket = connect();
            assertThat(read(socket)).isInstanceOf(Frame.Hello.class); // then says nothing
            silent.add(socket);
        }

        try (Socket fourth = connect()) {
            assertThat(closedWithoutAFrame(fourth)).as("the 4th pending connection is closed before HELLO").isTrue();
        }
        assertThat(stat("links_refused_pending_total")).isEqualTo(refusedBefore + 1);

        // The handshake deadline (5 s) closes the silent ones, which frees the room for a real ECM.
        for (Socket socket : silent) {
            socket.setSoTimeout(10_000);
            Frame error = read(socket);
            assertThat(error).isInstanceOfSatisfying(Frame.Error.class,
                    e -> assertThat(e.code()).isEqualTo(Frame.Error.HANDSHAKE_TIMEOUT));
            socket.close();
        }
        LinkPool pool = pool(NEW);
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 1);
    }

    private static Socket connect() throws IOException {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), ejabberd.linkPort());
        socket.setSoTimeout(5_000);
        return socket;
    }

    private static Frame read(Socket socket) throws IOException {
        DataInputStream in = new DataInputStream(socket.getInputStream());
        byte[] frame = new byte[in.readInt()];
        in.readFully(frame);
        return FrameCodec.decode(Unpooled.wrappedBuffer(frame));
    }

    private static boolean closedWithoutAFrame(Socket socket) throws IOException {
        try {
            return socket.getInputStream().read() == -1;
        } catch (SocketException reset) {
            return true;
        }
    }

    private static long stat(String name) throws Exception {
        for (String line : ejabberd.ctl("megaphone_stats").split("\n")) {
            String[] fields = line.strip().split("\\s+");
            if (fields.length == 2 && fields[0].equals(name)) {
                return Long.parseLong(fields[1]);
            }
        }
        throw new AssertionError(name + " not in megaphone_stats");
    }
}
