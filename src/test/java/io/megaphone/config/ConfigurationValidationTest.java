// SPDX-License-Identifier: Apache-2.0
package io.megaphone.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.megaphone.MegaphoneApplication;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.springframework.boot.builder.SpringApplicationBuilder;

/** A bad configuration value stops startup with a message naming the property, the value and what is expected. */
class ConfigurationValidationTest {

    private static final String LONG_SECRET = "config-test-secret-config-test-secret";

    /** Starts the ECM with these arguments and free ports; returns what the failure said. */
    private static String failedStartup(String... args) {
        return failedStartupRaw(withPorts(args));
    }

    private static String[] withPorts(String... args) {
        String[] all = new String[args.length + 2];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "--server.port=0";
        all[args.length + 1] = "--management.server.port=0";
        return all;
    }

    @Test
    void anOutOfRangeNumberNamesThePropertyTheValueAndTheRange() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--megaphone.link.links-per-node=0");
        assertThat(message).contains("Property: megaphone.link.linksPerNode").contains("Value: \"0\"")
                .contains("greater than or equal to 1");
    }

    @Test
    void aStallTimeoutNotBelowTheModulesOrderTimeoutIsRefused() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--megaphone.link.stall-timeout=300ms");
        assertThat(message).contains("Property: megaphone.link.stallTimeout").contains("PT0.3S").contains("order_timeout");
    }

    @Test
    void aMalformedNodeAddressIsRefused() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--megaphone.link.nodes=ejabberd.local");
        assertThat(message).contains("megaphone.link.nodes").contains("ejabberd.local").contains("host:port");
    }

    @Test
    void aNameServerGivenByNameIsRefused() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET,
                "--megaphone.link.dns.name-servers=ns1.example.com:53");
        assertThat(message).contains("megaphone.link.dns.name-servers: ns1.example.com:53")
                .contains("expected: ip:port");
    }

    @Test
    void aMissingSecretSaysHowToSetIt() {
        String message = failedStartup();
        assertThat(message).contains("megaphone.link.secret").contains("neither set")
                .contains("MEGAPHONE_LINK_SECRET_FILE");
    }

    @Test
    void theProdProfileRefusesASecretWrittenInConfiguration() {
        // Structured logging would stay on for the rest of the test JVM: keep the logs plain.
        String message = failedStartup("--spring.profiles.active=prod", "--megaphone.link.secret=" + LONG_SECRET,
                "--logging.structured.format.console=");
        assertThat(message).contains("megaphone.link.secret").contains("MEGAPHONE_LINK_SECRET")
                .doesNotContain("inline\"");
    }

    @Test
    void aHostNameAsTrustedProxyIsRefused() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--megaphone.edge.trusted-proxies=lb.example.com");
        assertThat(message).contains("lb.example.com").contains("expected");
    }

    @Test
    void bootsOwnForwardedHeaderHandlingIsRefused() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET,
                "--server.forward-headers-strategy=native");
        assertThat(message).contains("server.forward-headers-strategy: native").contains("expected: none")
                .contains("megaphone.edge.trusted-proxies");
    }

    @Test
    void http2OnTheBoshPortIsRefused() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--server.http2.enabled=true");
        assertThat(message).contains("server.http2.enabled: true").contains("HTTP/1.1");
    }

    @Test
    void actuatorOnTheBoshPortIsRefused() {
        String message = failedStartupRaw("--megaphone.link.secret=" + LONG_SECRET, "--server.port=0",
                "--management.server.port=");
        assertThat(message).contains("management.server.port").contains("expected: a port other than server.port");
    }

    @Test
    void tlsWithoutTrustCertificatesNamesTheProperty() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--megaphone.link.tls.enabled=true");
        assertThat(message).contains("megaphone.link.tls.trust-certificates: not set");
    }

    @Test
    void anUnreadableTlsFileNamesThePropertyAndTheFile() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--megaphone.link.tls.enabled=true",
                "--megaphone.link.tls.trust-certificates=/nonexistent/ca.pem");
        assertThat(message).contains("megaphone.link.tls.trust-certificates: /nonexistent/ca.pem cannot be read");
    }

    @Test
    void aClientCertificateWithoutItsKeyIsRefused() {
        String message = failedStartup("--megaphone.link.secret=" + LONG_SECRET, "--megaphone.link.tls.enabled=true",
                "--megaphone.link.tls.trust-certificates=/etc/hostname", "--megaphone.link.tls.certificate=/etc/hostname");
        assertThat(message).contains("megaphone.link.tls.certificate / megaphone.link.tls.private-key: only certificate");
    }

    @Test
    void aSecretShorterThan32BytesStopsStartupWithItsLengthNotItsValue() {
        String message = failedStartup("--megaphone.link.secret=short-secret-31-bytes-long-xyz!");

        assertThat(message).contains("megaphone.link.secret: a secret of 31 bytes (expected: at least 32")
                .doesNotContain("short-secret-31-bytes-long-xyz!");
    }

    @Test
    void everySecretOfARotationFileIsChecked() throws Exception {
        java.nio.file.Path file = java.nio.file.Files.createTempFile("megaphone-rotation", ".secret");
        java.nio.file.Files.writeString(file, LONG_SECRET + "\nold-and-short\n");
        String message = failedStartup("--megaphone.link.secret-file=" + file);

        assertThat(message).contains("megaphone.link.secret-file: a secret of 13 bytes (expected: at least 32");
    }

    /** Starts the ECM with exactly these arguments; returns what the failure said (exceptions and console). */
    private static String failedStartupRaw(String... args) {
        PrintStream originalOut = System.out;
        ByteArrayOutputStream console = new ByteArrayOutputStream();
        System.setOut(new PrintStream(console, true, StandardCharsets.UTF_8));
        Throwable failure;
        try {
            failure = catchThrowable(() -> new SpringApplicationBuilder(MegaphoneApplication.class).run(args).close());
        } finally {
            System.setOut(originalOut);
        }
        assertThat(failure).as("startup must fail").isNotNull();
        StringBuilder text = new StringBuilder(console.toString(StandardCharsets.UTF_8));
        for (Throwable t = failure; t != null; t = t.getCause()) {
            text.append('\n').append(t.getMessage());
        }
        return text.toString();
    }
}
