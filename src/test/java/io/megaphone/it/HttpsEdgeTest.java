// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * HTTPS on the BOSH port through Boot's own {@code server.ssl} (a PEM certificate the test makes with openssl): a
 * chat goes through https, the certificate is the one configured, and plain http on that port gets no BOSH answer.
 * Actuator stays plain http on the management port.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = {
    "management.server.port=0", "megaphone.link.links-per-node=1",
    RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class HttpsEdgeTest extends RealEcmTest {

    private static Path pki;

    private static synchronized Path pki() {
        if (pki == null) {
            try {
                Path dir = Files.createTempDirectory("megaphone-https-");
                Process openssl = new ProcessBuilder("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", "bosh.key", "-out", "bosh.pem").directory(dir.toFile()).redirectErrorStream(true)
                        .start();
                String output = new String(openssl.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                if (!openssl.waitFor(60, TimeUnit.SECONDS) || openssl.exitValue() != 0) {
                    throw new IllegalStateException("openssl failed:\n" + output);
                }
                pki = dir;
            } catch (IOException | InterruptedException e) {
                throw new IllegalStateException("openssl is needed to make the test certificate: " + e, e);
            }
        }
        return pki;
    }

    @DynamicPropertySource
    static void https(DynamicPropertyRegistry registry) {
        registry.add("server.ssl.certificate", () -> pki().resolve("bosh.pem").toString());
        registry.add("server.ssl.certificate-private-key", () -> pki().resolve("bosh.key").toString());
    }

    private static HttpClient trustingTheTestCertificate() throws Exception {
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        try (InputStream pem = Files.newInputStream(pki().resolve("bosh.pem"))) {
            trust.setCertificateEntry("bosh", CertificateFactory.getInstance("X.509").generateCertificate(pem));
        }
        TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        factory.init(trust);
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(null, factory.getTrustManagers(), null);
        return HttpClient.newBuilder().sslContext(tls).version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5)).build();
    }

    @Test
    void aChatGoesThroughHttpsOnTheBoshPort() throws Exception {
        awaitLinks(1);
        HttpClient https = trustingTheTestCertificate();
        String url = "https://localhost:" + port + "/http-bind";
        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = new BoshTestClient(url, "localhost").withHttpClient(https)
                .login(alice, SharedEjabberd.PASSWORD, 10);
        BoshTestClient bobClient = new BoshTestClient(url, "localhost").withHttpClient(https)
                .login(bob, SharedEjabberd.PASSWORD, 10);
        bobClient.clear();
        CompletableFuture<BoshTestClient.Answer> held = bobClient.poll();
        aliceClient.sendChat(bob + "@localhost", "over https");
        assertThat(held.get(10, TimeUnit.SECONDS).body()).contains("over https");
        aliceClient.terminate();
        bobClient.terminate();
    }

    @Test
    void theDefaultTrustStoreRefusesTheSelfMadeCertificateAndPlainHttpGetsNoBoshAnswer() {
        HttpClient plain = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        HttpRequest https = HttpRequest.newBuilder(URI.create("https://localhost:" + port + "/http-bind"))
                .timeout(Duration.ofSeconds(10)).build();
        assertThatThrownBy(() -> plain.send(https, HttpResponse.BodyHandlers.ofString()))
                .isInstanceOf(javax.net.ssl.SSLHandshakeException.class);
        HttpRequest http = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/http-bind"))
                .timeout(Duration.ofSeconds(10)).POST(HttpRequest.BodyPublishers.ofString(
                        RealStack.SESSION_CREATE.formatted(1000))).build();
        try {
            HttpResponse<String> answer = plain.send(http, HttpResponse.BodyHandlers.ofString());
            assertThat(answer.statusCode()).as("plain http on the https port").isEqualTo(400);
            assertThat(answer.body()).doesNotContain("sid=");
        } catch (IOException refused) {
            // Reactor Netty closes a non-TLS connection: also no BOSH answer
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }
}
