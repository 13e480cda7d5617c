// SPDX-License-Identifier: Apache-2.0
package io.megaphone.loadgen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.awaitility.Awaitility.await;

import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.SharedEjabberd;
import io.megaphone.link.LinkPool;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A short run of the project's load generator (loadgen/, built by scripts/test.sh before Maven) through the real
 * ECM on a real port, linked to a real ejabberd with mod_megaphone: 20 users log in over two source addresses,
 * chat for about 15 s, and every message sent arrives, with no error of any kind.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2"})
class LoadGeneratorSmokeTest {

    static final Path JAR = Path.of("loadgen/target/megaphone-loadgen.jar").toAbsolutePath();
    static final int USERS = 20;

    @DynamicPropertySource
    static void linkToRealEjabberd(DynamicPropertyRegistry registry) {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        registry.add("megaphone.link.nodes", () -> "127.0.0.1:" + ejabberd.linkPort());
        registry.add("megaphone.link.secret", () -> PrivateEjabberd.SECRET);
    }

    @LocalServerPort
    int port;

    @Autowired
    LinkPool pool;

    @TempDir
    Path tmp;

    @Test
    void twentyUsersLogInAndEveryMessageArrives() throws Exception {
        if (!Files.isRegularFile(JAR)) {
            fail("the load generator jar " + JAR + " is missing: build it with ./mvnw -q -f loadgen/pom.xml package"
                    + " (scripts/test.sh does this before Maven's verify)");
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);

        // One ejabberdctl call registers them all (XEP-0227 import): `register` per user costs about a second each
        // on a busy machine. ejabberd runs as its own user: the file must be readable by it.
        String prefix = "lgsmoke" + Long.toString(System.nanoTime() % 1_000_000, 36) + "u";
        Path shared = Files.createTempDirectory("megaphone-loadgen-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        StringBuilder pie = new StringBuilder("<?xml version='1.0' encoding='UTF-8'?>"
                + "<server-data xmlns='urn:xmpp:pie:0'><host jid='" + PrivateEjabberd.DOMAIN + "'>");
        for (int i = 1; i <= USERS; i++) {
            pie.append("<user name='").append(prefix).append(i).append("' password='")
                    .append(SharedEjabberd.PASSWORD).append("'/>");
        }
        Path users = Files.writeString(shared.resolve("users.xml"), pie.append("</host></server-data>"));
        Files.setPosixFilePermissions(users, PosixFilePermissions.fromString("rw-r--r--"));
        try {
            SharedEjabberd.get().ctl("import_piefxis", users.toString());
        } finally {
            Files.delete(users);
            Files.delete(shared);
        }

        Path result = tmp.resolve("result.json");
        Path log = tmp.resolve("loadgen.log");
        String java = ProcessHandle.current().info().command().orElse("java");
        Process loadgen = new ProcessBuilder(java, "-Xmx128m", "-jar", JAR.toString(),
                "--url", "http://127.0.0.1:" + port + "/http-bind", "--domain", PrivateEjabberd.DOMAIN,
                "--user-pattern", prefix + "%d", "--users", Integer.toString(USERS),
                "--password", SharedEjabberd.PASSWORD, "--ramp", "20", "--duration", "12", "--msg-rate", "20",
                "--wait", "30", "--source", "127.0.0.2,127.0.0.3", "--progress", "3", "--out", result.toString())
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!loadgen.waitFor(40, TimeUnit.SECONDS)) {
            loadgen.destroyForcibly();
            fail("the load generator did not finish in 40 s:\n" + Files.readString(log));
        }
        String output = Files.readString(log, StandardCharsets.UTF_8);
        System.out.println(output);
        assertThat(loadgen.exitValue()).as("load generator exit code; its output:\n%s", output).isZero();

        JsonNode json = JsonMapper.builder().build().readTree(result.toFile());
        assertThat(json.get("users_logged_in").asInt()).as("users logged in\n%s", json).isEqualTo(USERS);
        assertThat(json.get("users_failed").asInt()).as("users failed\n%s", json).isZero();
        assertThat(json.get("error_count").asLong()).as("errors by kind: %s", json.get("errors")).isZero();
        JsonNode messages = json.get("messages");
        assertThat(messages.get("sent").asLong()).as("messages sent\n%s", json).isGreaterThan(100);
        assertThat(messages.get("received").asLong()).as("messages received = sent\n%s", json)
                .isEqualTo(messages.get("sent").asLong());
        assertThat(messages.get("queued").asLong()).isEqualTo(messages.get("sent").asLong());
        assertThat(messages.get("duplicated").asLong()).as("messages received twice\n%s", json).isZero();
        assertThat(messages.get("unexpected").asLong()).as("messages nobody sent\n%s", json).isZero();
        assertThat(messages.get("lost").asLong()).as("messages never received\n%s", json).isZero();
        assertThat(json.get("users_terminated").asInt()).as("sessions ended cleanly").isEqualTo(USERS);
        assertThat(json.get("latency").get("delivery").get("count").asLong())
                .isEqualTo(messages.get("received").asLong());
    }
}
