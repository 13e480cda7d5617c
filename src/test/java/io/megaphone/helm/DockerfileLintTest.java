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
 * The Dockerfile, linted with dockerfilelint (npm; no Docker engine runs here) and checked for what the image
 * must have: the layered jar on a Java 25 JRE, a numeric non-root user, the two ports, container-aware JVM flags.
 * dockerfilelint is installed once under target/dockerfilelint from the npm registry.
 */
class DockerfileLintTest {

    private static final String LINTER = "dockerfilelint@1.8.0";
    private static final Path INSTALL_DIR = Path.of("target/dockerfilelint");
    private static final Path BIN = INSTALL_DIR.resolve("node_modules/.bin/dockerfilelint");
    private static final Path DOCKERFILE = Path.of("Dockerfile");

    private static String dockerfile;

    @BeforeAll
    static void readDockerfile() throws IOException {
        dockerfile = Files.readString(DOCKERFILE);
    }

    @Test
    void dockerfilelintFindsNoIssue() throws Exception {
        installLinter();

        Result result = run(Duration.ofMinutes(2), BIN.toAbsolutePath().toString(), "-j", DOCKERFILE.toAbsolutePath().toString());
        Map<String, Object> report = HelmChart.yaml().load(result.stdout());

        assertThat((Integer) at(report, "totalIssues"))
                .as("dockerfilelint found issues (exit %d):%n%s%s", result.exitCode(), result.stdout(), result.stderr())
                .isZero();
        assertThat(result.exitCode()).isZero();
    }

    @Test
    void theImageRunsTheLayeredJarOnAJava25JreAsANumericNonRootUser() {
        assertThat(dockerfile).contains("FROM eclipse-temurin:25-jre")
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
    void theJvmSizesItsHeapFromTheContainerAndUsesCompactHeaders() {
        assertThat(dockerfile).contains("-XX:MaxRAMPercentage=75")
                .contains("-XX:+UseCompactObjectHeaders")
                .contains("JAVA_GC_OPTS=\"-XX:+UseG1GC\"")
                .contains("exec java");
    }

    @Test
    void theBuildContextHoldsOnlyWhatTheBuildNeeds() throws IOException {
        List<String> lines = Files.readAllLines(Path.of(".dockerignore"));

        assertThat(lines).contains("*", "!mvnw", "!.mvn/", "!pom.xml", "!src/", "**/target/");
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
