// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.megaphone.link.HandshakeProof;
import io.megaphone.link.LinkPool;
import io.megaphone.link.LinkSettings;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * TLS on the link, through real parts: certificates made at test time with {@code openssl} (a throwaway CA and a
 * server certificate for localhost / 127.0.0.1), a private ejabberd whose mod_megaphone runs {@code tls: true}
 * (scripts/private-ejabberd.sh, EJ_LINK_TLS_*), and the real ECM with {@code megaphone.link.tls.*} trusting that
 * CA. A BOSH chat goes through the TLS links; the link port speaks no plain megaphone; an ECM that trusts
 * another CA never gets a link.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                "megaphone.link.tls.enabled=true", "megaphone.link.tls.server-name=localhost"})
@DirtiesContext
class TlsLinkTest {

    /** HELLO's first bytes in clear: length 0x27, type 1, magic "MGPH". */
    private static final byte[] HELLO_PREFIX = {0, 0, 0, 0x27, 1, 'M', 'G', 'P', 'H'};
    private static final String PASSWORD = "tls-pw";

    private static Path pki;
    private static PrivateEjabberd ejabberd;

    @LocalServerPort
    int port;

    @Autowired
    LinkPool pool;

    /** The certificates and the TLS ejabberd, made once, before the ECM's context needs them. */
    private static synchronized PrivateEjabberd ejabberd() {
        if (ejabberd == null) {
            try {
                pki = Files.createTempDirectory("megaphone-tls-");
                openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Megaphone test CA",
                        "-keyout", "ca.key", "-out", "ca.pem");
                openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Another CA",
                        "-keyout", "other-ca.key", "-out", "other-ca.pem");
                openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                        "-keyout", "server.key", "-out", "server.csr");
                Files.writeString(pki.resolve("server.ext"),
                        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
                openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                        "-days", "2", "-extfile", "server.ext", "-out", "server.pem");
                ejabberd = PrivateEjabberd.start(Map.of(
                        "EJ_LINK_TLS_CERTFILE", pki.resolve("server.pem").toString(),
                        "EJ_LINK_TLS_KEYFILE", pki.resolve("server.key").toString()));
            } catch (Exception e) {
                throw new IllegalStateException("cannot start the TLS ejabberd: " + e.getMessage(), e);
            }
        }
        return ejabberd;
    }

    private static void openssl(String... args) throws IOException, InterruptedException {
        String[] command = new String[args.length + 1];
        command[0] = "openssl";
        System.arraycopy(args, 0, command, 1, args.length);
        Process process;
        try {
            process = new ProcessBuilder(command).directory(pki.toFile()).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new IOException("openssl is needed to make the test certificates (apt-get install openssl): " + e,
                    e);
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", command) + " failed:\n" + output);
        }
    }

    @DynamicPropertySource
    static void linkToTheTlsEjabberd(DynamicPropertyRegistry registry) {
        PrivateEjabberd tlsEjabberd = ejabberd();
        registry.add("megaphone.link.nodes", () -> "127.0.0.1:" + tlsEjabberd.linkPort());
        registry.add("megaphone.link.secret", () -> PrivateEjabberd.SECRET);
        registry.add("megaphone.link.tls.trust-certificates", () -> pki.resolve("ca.pem").toString());
    }

    @AfterAll
    static void stop() {
        if (ejabberd != null) {
            ejabberd.close();
        }
    }

    private Map<String, Long> stats() throws Exception {
        Map<String, Long> stats = new HashMap<>();
        for (String line : ejabberd.ctl("megaphone_stats").split("\n")) {
            String[] fields = line.strip().split("\\s+");
            if (fields.length == 2 && fields[1].matches("\\d+")) {
                stats.put(fields[0], Long.parseLong(fields[1]));
            }
        }
        return stats;
    }

    @Test
    void aBoshChatGoesThroughTheTlsLinks() throws Exception {
        await().atMost(Duration.ofSeconds(15)).until(() -> pool.readyLinks() == 2);
        assertThat(stats()).containsEntry("links_active", 2L);
        assertThat(ejabberd.log()).contains("listening for links on").contains("(host localhost, TLS)");

        BoshTestClient.Answer created = new BoshTestClient("http://127.0.0.1:" + port + "/http-bind",
                PrivateEjabberd.DOMAIN).post("<body content='text/xml; charset=utf-8' hold='1' rid='1000'"
                        + " to='localhost' ver='1.6' wait='10' xmlns='http://jabber.org/protocol/httpbind'"
                        + " xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>");
        assertThat(BoshTestClient.parse(created.body()).getAttribute("secure"))
                .as("the creation answer says the hop to ejabberd is secure").isEqualTo("true");
        ejabberd.register("tls-alice", PASSWORD);
        ejabberd.register("tls-bob", PASSWORD);
        String url = "http://127.0.0.1:" + port + "/http-bind";
        BoshTestClient alice = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login("tls-alice", PASSWORD, 30);
        BoshTestClient bob = new BoshTestClient(url, PrivateEjabberd.DOMAIN).login("tls-bob", PASSWORD, 30);
        bob.clear();

        CompletableFuture<BoshTestClient.Answer> held = bob.poll();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() >= 1);
        alice.sendChat("tls-bob@localhost", "hello bob, inside TLS");

        BoshTestClient.Answer answer = held.get(10, TimeUnit.SECONDS);
        assertThat(answer.status()).isEqualTo(200);
        bob.take(answer);
        assertThat(bob.chatBodies()).containsExactly("hello bob, inside TLS");
        assertThat(BoshTestClient.parse(alice.terminate().body()).getAttribute("type")).isEqualTo("terminate");
        assertThat(BoshTestClient.parse(bob.terminate().body()).getAttribute("type")).isEqualTo("terminate");
        assertThat(stats().get("requests_total")).isGreaterThanOrEqualTo(6);
    }

    @Test
    void theLinkPortSendsNoMegaphoneFrameInClear() throws Exception {
        long refusedBefore = stats().get("links_refused_total");
        byte[] first = new byte[HELLO_PREFIX.length];
        int read = 0;
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), ejabberd().linkPort())) {
            socket.setSoTimeout(15_000);
            InputStream in = socket.getInputStream();
            // A plain client sends nothing and waits for HELLO, as a plain ECM would.
            for (int n; read < first.length && (n = in.read(first, read, first.length - read)) > 0; ) {
                read += n;
            }
        } catch (SocketException | SocketTimeoutException closedOrSilent) {
            // reset or nothing at all: no HELLO in clear either
        }
        assertThat(Arrays.copyOf(first, read)).as("the first bytes a plain TCP client reads")
                .isNotEqualTo(HELLO_PREFIX);
        await().atMost(Duration.ofSeconds(10))
                .until(() -> stats().get("links_refused_total") > refusedBefore);
    }

    @Test
    void anEcmThatTrustsAnotherCaNeverGetsALink() throws Exception {
        neverGetsALink(pki.resolve("other-ca.pem"), null);
    }

    @Test
    void anEcmThatExpectsAnotherServerNameNeverGetsALink() throws Exception {
        neverGetsALink(pki.resolve("ca.pem"), "ejabberd.example.org");
    }

    /** A second ECM (a link pool as the ECM builds it) with this trust and server name: no link, ever. */
    private void neverGetsALink(Path trust, String serverName) throws Exception {
        long acceptedBefore = stats().get("links_accepted_total");
        long refusedBefore = stats().get("links_refused_total");
        SslContext context = SslContextBuilder.forClient().sslProvider(SslProvider.JDK)
                .protocols("TLSv1.3", "TLSv1.2").endpointIdentificationAlgorithm("HTTPS")
                .trustManager(trust.toFile()).build();
        LinkSettings settings = new LinkSettings(new HandshakeProof(PrivateEjabberd.SECRET.getBytes(
                StandardCharsets.UTF_8)), "wrong-tls-ecm", Duration.ofSeconds(15), Duration.ofSeconds(5), 1 << 20,
                context, serverName);
        try (LinkPool other = new LinkPool(
                List.of(InetSocketAddress.createUnresolved("127.0.0.1", ejabberd.linkPort())), 1, settings,
                Duration.ofSeconds(30), Duration.ofMillis(100), Duration.ofMillis(500), 1)) {
            other.start();
            await().atMost(Duration.ofSeconds(10)).until(() -> stats().get("links_refused_total") >= refusedBefore + 2);
            assertThat(other.readyLinks()).isZero();
            Thread.sleep(1000);
            assertThat(other.readyLinks()).isZero();
        }
        assertThat(stats().get("links_accepted_total")).as("no link authenticated").isEqualTo(acceptedBefore);
        assertThat(pool.readyLinks()).as("the ECM that trusts the right CA keeps its links").isEqualTo(2);
    }
}
