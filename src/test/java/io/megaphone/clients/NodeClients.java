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

    /**
     * Starts a client script that prints JSON lines while it runs and waits for a line on its stdin (the test looks at
     * ejabberd meanwhile); its last line is its result.
     */
    static Running start(String script, String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of("node", DIR.resolve(script).toString()));
        command.addAll(List.of(args));
        try {
            return new Running(script, new ProcessBuilder(command).directory(DIR.toFile()).start());
        } catch (IOException e) {
            throw new AssertionError("cannot run `node` from PATH (scripts/install-deps.sh installs Node.js): "
                    + e.getMessage(), e);
        }
    }

    /** A client script started by {@link #start}. */
    static final class Running implements AutoCloseable {
        private final String script;
        private final Process process;
        private final java.util.concurrent.BlockingQueue<String> lines = new java.util.concurrent.LinkedBlockingQueue<>();
        private final List<String> all = new java.util.concurrent.CopyOnWriteArrayList<>();
        private final CompletableFuture<String> err;
        private final CompletableFuture<Void> out;

        private Running(String script, Process process) {
            this.script = script;
            this.process = process;
            this.err = read(process.getErrorStream());
            this.out = CompletableFuture.runAsync(() -> {
                try (var reader = new java.io.BufferedReader(new java.io.InputStreamReader(process.getInputStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line; (line = reader.readLine()) != null; ) {
                        all.add(line);
                        lines.add(line);
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }, READERS);
        }

        /** The next JSON line whose {@code phase} is {@code phase}; fails when the script ends or time runs out. */
        JsonNode awaitPhase(String phase, long timeoutSeconds) throws Exception {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);
            while (System.nanoTime() < deadline) {
                String line = lines.poll(200, TimeUnit.MILLISECONDS);
                if (line != null) {
                    JsonNode node = JSON.readTree(line);
                    if (phase.equals(node.path("phase").asString())) {
                        return node;
                    }
                    if (node.has("ok")) {
                        throw new AssertionError(script + " ended before " + phase + ": " + pretty(node)
                                + "\nstderr:\n" + err.getNow(""));
                    }
                } else if (!process.isAlive() && lines.isEmpty() && out.isDone()) {
                    break;
                }
            }
            throw new AssertionError(script + " printed no " + phase + " line\nstdout:\n" + String.join("\n", all)
                    + "\nstderr:\n" + err.getNow(""));
        }

        /** Writes a line on the script's stdin: it goes on. */
        void proceed() throws IOException {
            process.getOutputStream().write('\n');
            process.getOutputStream().close();
        }

        /** Waits for the script to end; its result is its last line. */
        Run finish(long timeoutSeconds) throws Exception {
            if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                close();
                throw new AssertionError(script + " did not finish within " + timeoutSeconds + " s\nstdout:\n"
                        + String.join("\n", all) + "\nstderr:\n" + err.getNow(""));
            }
            out.get(5, TimeUnit.SECONDS);
            String stderr = err.get(5, TimeUnit.SECONDS);
            String last = all.isEmpty() ? "" : all.get(all.size() - 1);
            try {
                return new Run(process.exitValue(), JSON.readTree(last), String.join("\n", all), stderr);
            } catch (JacksonException e) {
                throw new AssertionError(script + " printed no JSON result (exit " + process.exitValue()
                        + ")\nstdout:\n" + String.join("\n", all) + "\nstderr:\n" + stderr, e);
            }
        }

        @Override
        public void close() {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
        }
    }

    private static CompletableFuture<String> read(java.io.InputStream stream) {
        return CompletableFuture.supplyAsync(() -> {
            try (stream) {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, READERS);
    }

    /**
     * A thread for each stream a script's output is read from, as long as it blocks. Not the common pool: on 2 cores
     * it has one worker, which JDK 25 gives CompletableFuture's async tasks (17 starts a thread each), and a blocked
     * stderr read there would keep the script's stdout from ever being read.
     */
    private static final java.util.concurrent.Executor READERS = task -> {
        Thread reader = new Thread(task, "node-client-output");
        reader.setDaemon(true);
        reader.start();
    };

    static String pretty(JsonNode node) {
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(node);
        } catch (JacksonException e) {
            return node.toString();
        }
    }

    /** {@code value} (maps, lists, strings, numbers) as JSON, e.g. a script's argument. */
    static String json(Object value) {
        return JSON.writeValueAsString(value);
    }

    static Path screenshotDir() throws IOException {
        return Files.createDirectories(Path.of("target/client-screenshots").toAbsolutePath());
    }
}
