// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import static io.megaphone.helm.HelmChart.at;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Dockerfiles (the ECM's and ejabberd/Dockerfile), linted with dockerfilelint and checked for what the ECM
 * image must have: the layered jar on a Java 25 JRE with compact object headers, bases chosen by build arguments,
 * a numeric non-root user, the two ports, container-aware JVM flags, tini mapping the drained SIGTERM's exit to 0.
 * dockerfilelint is installed once under target/dockerfilelint from the npm registry. scripts/container-test.sh
 * builds and runs both images.
 */
class DockerfileLintTest {

    private static final String LINTER = "dockerfilelint@1.8.0";
    private static final Path INSTALL_DIR = Path.of("target/dockerfilelint");
    private static final Path BIN = INSTALL_DIR.resolve("node_modules/.bin/dockerfilelint");
    private static final Path DOCKERFILE = Path.of("Dockerfile");
    private static final Path EJABBERD_DOCKERFILE = Path.of("ejabberd/Dockerfile");

    private static String dockerfile;

    @BeforeAll
    static void readDockerfile() throws IOException {
        dockerfile = Files.readString(DOCKERFILE);
    }

    @Test
    void dockerfilelintFindsNoIssue() throws Exception {
        installLinter();

        // -c: the repository's .dockerfilelintrc, for both files.
        Result result = run(Duration.ofMinutes(2), BIN.toAbsolutePath().toString(), "-j", "-c",
                Path.of("").toAbsolutePath().toString(),
                DOCKERFILE.toAbsolutePath().toString(), EJABBERD_DOCKERFILE.toAbsolutePath().toString());
        Map<String, Object> report = HelmChart.yaml().load(result.stdout());

        assertThat((Integer) at(report, "totalIssues"))
                .as("dockerfilelint found issues (exit %d):%n%s%s", result.exitCode(), result.stdout(), result.stderr())
                .isZero();
        assertThat(result.exitCode()).isZero();
    }

    @Test
    void theBaseImagesAreBuildArgumentsWhoseDefaultsAreTaggedPublicImages() throws IOException {
        assertThat(dockerfile).containsPattern("(?m)^ARG BUILD_IMAGE=eclipse-temurin:25-jdk$")
                .containsPattern("(?m)^ARG RUNTIME_IMAGE=eclipse-temurin:25-jre$")
                .containsPattern("(?m)^FROM \\$\\{BUILD_IMAGE} AS build$")
                .containsPattern("(?m)^FROM \\$\\{RUNTIME_IMAGE}$");
        assertThat(Files.readString(EJABBERD_DOCKERFILE)).containsPattern("(?m)^ARG BASE_IMAGE=debian:bookworm-slim$");
    }

    @Test
    void theImageRunsTheLayeredJarOnAJava25JreAsANumericNonRootUser() {
        assertThat(dockerfile).contains("openjdk-25-jdk-headless").contains("openjdk-25-jre-headless")
                .doesNotContain("openjdk-17")
                .contains("java -XX:+UseCompactObjectHeaders -version") // the build fails on a base older than 25
                .contains("java -Djarmode=tools -jar /tmp/app.jar extract --layers --launcher")
                .contains("COPY --from=build /extracted/dependencies/ ./")
                .contains("COPY --from=build /extracted/application/ ./")
                .contains("org.springframework.boot.loader.launch.JarLauncher")
                .containsPattern("(?m)^USER 10001(:10001)?$")
                .containsPattern("(?m)^EXPOSE 5280 9090$");
        assertThat(dockerfile.lastIndexOf("\nUSER ")).as("USER comes after every RUN of the last stage")
                .isGreaterThan(dockerfile.lastIndexOf("\nRUN "));
    }

    @Test
    void theJvmSizesItselfFromTheContainerAndTiniTurnsADrainedSigtermIntoExitZero() {
        assertThat(dockerfile).contains("-XX:MaxRAMPercentage=$JAVA_HEAP_PERCENT")
                .contains("-XX:MaxDirectMemorySize=$JAVA_MAX_DIRECT_MEMORY")
                .contains("${JAVA_ACTIVE_PROCESSORS:+-XX:ActiveProcessorCount=$JAVA_ACTIVE_PROCESSORS}")
                .contains("JAVA_HEAP_PERCENT=60")
                .contains("JAVA_GC_OPTS=\"-XX:+UseG1GC\"")
                .contains("-XX:+UseCompactObjectHeaders --enable-native-access=ALL-UNNAMED $JAVA_GC_OPTS $JAVA_OPTS")
                .contains("ENTRYPOINT [\"tini\", \"-e\", \"143\", \"--\"")
                .contains("exec java");
    }

    @Test
    void theBuildContextHoldsOnlyWhatTheBuildNeeds() throws IOException {
        List<String> lines = Files.readAllLines(Path.of(".dockerignore"));

        assertThat(lines).contains("*", "!mvnw", "!.mvn/", "!pom.xml", "!src/", "!ejabberd/mod_megaphone/",
                "!ejabberd/container/", "!docs/protocol-vectors.txt", "src/test/", "**/target/", "**/ebin/");
    }

    private static void installLinter() throws Exception {
        if (Files.isExecutable(BIN)) {
            return;
        }
        Files.createDirectories(INSTALL_DIR);
        Result install = run(Duration.ofMinutes(5), "npm", "install", "--prefix", INSTALL_DIR.toAbsolutePath().toString(),
                "--no-audit", "--no-fund", "--no-save", "--loglevel=error", LINTER);
        assertThat(Files.isExecutable(BIN))
                .as("npm install %s failed (exit %d; needs Node.js/npm and the npm registry):%n%s", LINTER,
                        install.exitCode(), install.stdout() + install.stderr())
                .isTrue();
    }

    record Result(int exitCode, String stdout, String stderr) {
    }

    private static Result run(Duration timeout, String... command) throws Exception {
        Files.createDirectories(INSTALL_DIR);
        Path stdout = Files.createTempFile(INSTALL_DIR, "out", ".txt");
        Path stderr = Files.createTempFile(INSTALL_DIR, "err", ".txt");
        Process process = new ProcessBuilder(command).redirectOutput(stdout.toFile()).redirectError(stderr.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        if (!process.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + ": no exit within " + timeout);
        }
        try {
            return new Result(process.exitValue(), Files.readString(stdout), Files.readString(stderr));
        } finally {
            Files.deleteIfExists(stdout);
            Files.deleteIfExists(stderr);
        }
    }
}
