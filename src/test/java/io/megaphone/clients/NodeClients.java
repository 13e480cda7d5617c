// SPDX-License-Identifier: Apache-2.0
package io.megaphone.clients;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.json.JsonMapper;

/**
 * Runs the real web clients of {@code clients/} (Node scripts) against the ECM under test. Nothing is skipped: when
 * node or {@code clients/node_modules} is missing the test fails and says how to get them ({@code scripts/test.sh}
 * runs {@code npm ci --prefix clients} before Maven).
 */
final class NodeClients {

    static final Path DIR = Path.of("clients").toAbsolutePath();
    private static final ObjectMapper JSON = JsonMapper.builder().build();

    private NodeClients() {
    }

    /** What a client script printed (one JSON object on stdout) and its exit code. */
    record Run(int exitCode, JsonNode result, String stdout, String stderr) {
    }

    static void requireInstalled(String... packages) {
        for (String pkg : packages) {
            assertThat(DIR.resolve("node_modules").resolve(pkg).resolve("package.json"))
                    .as("clients/node_modules/%s is missing: run `npm ci --prefix clients` "
                            + "(scripts/test.sh does it before Maven)", pkg)
                    .exists();
        }
    }

    static Run run(long timeoutSeconds, String script, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("node", DIR.resolve(script).toString()));
        command.addAll(List.of(args));
        Process process;
        try {
            process = new ProcessBuilder(command).directory(DIR.toFile()).start();
        } catch (IOException e) {
            throw new AssertionError("cannot run `node` from PATH (scripts/install-deps.sh installs Node.js): "
                    + e.getMessage(), e);
        }
        process.getOutputStream().close();
        CompletableFuture<String> out = read(process.getInputStream());
        CompletableFuture<String> err = read(process.getErrorStream());
        if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
            throw new AssertionError(script + " did not finish within " + timeoutSeconds + " s\nstdout:\n"
                    + out.getNow("") + "\nstderr:\n" + err.getNow(""));
        }
        String stdout = out.get(5, TimeUnit.SECONDS);
        String stderr = err.get(5, TimeUnit.SECONDS);
        JsonNode result;
        try {
            result = JSON.readTree(stdout);
        } catch (JacksonException e) {
            throw new AssertionError(script + " printed no JSON result (exit " + process.exitValue() + ")\nstdout:\n"
                    + stdout + "\nstderr:\n" + stderr, e);
        }
        return new Run(process.exitValue(), result, stdout, stderr);
    }

    private static CompletableFuture<String> read(java.io.InputStream stream) {
        return CompletableFuture.supplyAsync(() -> {
            try (stream) {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    static String pretty(JsonNode node) {
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(node);
        } catch (JacksonException e) {
            return node.toString();
        }
    }

    static Path screenshotDir() throws IOException {
        return Files.createDirectories(Path.of("target/client-screenshots").toAbsolutePath());
    }
}
