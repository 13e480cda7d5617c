// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A real ejabberd (the Debian package) with this repo's mod_megaphone, started privately on free loopback ports
 * through scripts/private-ejabberd.sh, and always stopped afterwards. There is no skipping: when ejabberd is
 * missing, starting fails and so do the tests (the README's test command installs it).
 */
public final class PrivateEjabberd implements AutoCloseable {

    public static final String SECRET = "it-secret-" + Long.toHexString(System.nanoTime()) + "-" + java.util.UUID.randomUUID();
    public static final String DOMAIN = "localhost";
    private static final Path SCRIPT = Path.of("scripts/private-ejabberd.sh").toAbsolutePath();
    private static final Pattern STARTED = Pattern.compile("ejabberd (\\S+) started: .*");

    private final Path dir;
    private final int linkPort;
    private final int httpPort;
    private final String version;
    private final Map<String, String> env;
    private volatile boolean stopped;

    private PrivateEjabberd(Path dir, Map<String, String> env, int linkPort, int httpPort, String version) {
        this.dir = dir;
        this.env = env;
        this.linkPort = linkPort;
        this.httpPort = httpPort;
        this.version = version;
    }

    /** Starts a private ejabberd; the link secret is {@link #SECRET}. */
    public static PrivateEjabberd start(Map<String, String> extraEnv) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("megaphone-ejabberd-");
        int linkPort = freePort();
        int httpPort = freePort();
        Map<String, String> env = new java.util.HashMap<>(Map.of(
                "EJ_LINK_PORT", Integer.toString(linkPort),
                "EJ_HTTP_PORT", Integer.toString(httpPort),
                "EJ_C2S_PORT", Integer.toString(freePort()),
                "EJ_DIST_PORT", Integer.toString(freePort()),
                "EJ_DOMAIN", DOMAIN,
                "MEGAPHONE_SECRET", SECRET));
        env.putAll(extraEnv);
        ProcessBuilder builder = new ProcessBuilder("bash", SCRIPT.toString(), "start", dir.toString());
        builder.environment().putAll(env);
        String output = run(builder, 180);
        Matcher started = output.lines().map(STARTED::matcher).filter(Matcher::matches).findFirst().orElseThrow(
                () -> new IllegalStateException("private ejabberd did not start:\n" + output));
        PrivateEjabberd ejabberd = new PrivateEjabberd(dir, env, linkPort, httpPort, started.group(1));
        Runtime.getRuntime().addShutdownHook(new Thread(ejabberd::close));
        System.out.println("[real ejabberd] " + started.group(0));
        return ejabberd;
    }

    public static PrivateEjabberd start() throws IOException, InterruptedException {
        return start(Map.of());
    }

    public String version() {
        return version;
    }

    public int linkPort() {
        return linkPort;
    }

    /** ejabberd's own BOSH endpoint, for comparisons. */
    public String directBoshUrl() {
        return "http://127.0.0.1:" + httpPort + "/http-bind";
    }

    /** mod_megaphone's Prometheus metrics (mod_megaphone_prometheus on ejabberd's HTTP listener). */
    public String metricsUrl() {
        return "http://127.0.0.1:" + httpPort + "/megaphone/metrics";
    }

    public void register(String user, String password) throws IOException, InterruptedException {
        script("register", user, password);
    }

    /** Runs an ejabberdctl command against this instance and returns what it printed. */
    public String ctl(String... args) throws IOException, InterruptedException {
        List<String> all = new ArrayList<>(List.of("ctl"));
        all.addAll(List.of(args));
        return script(all.toArray(String[]::new));
    }

    /**
     * Joins this instance to the ejabberd cluster of {@code otherNode} (scripts/private-ejabberd.sh join:
     * {@code ejabberdctl join_cluster}, then waits until this node serves again) and returns list_cluster.
     */
    public String join(String otherNode) throws IOException, InterruptedException {
        return script("join", otherNode);
    }

    /**
     * Evaluates an Erlang expression on this running node (scripts/private-ejabberd.sh eval) and returns its value as
     * {@code ~p} prints it, e.g. {@code eval("code:which(ejabberd_bosh)")}.
     */
    public String eval(String expression) throws IOException, InterruptedException {
        return script("eval", expression).strip();
    }

    /** ejabberd's {@code erlang:memory(total)}, in bytes. */
    public long memoryTotal() throws IOException, InterruptedException {
        String printed = eval("erlang:memory(total)");
        return Long.parseLong(printed.substring(printed.lastIndexOf('\n') + 1).strip());
    }

    public String log() throws IOException {
        Path log = dir.resolve("logs/ejabberd.log");
        return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
    }

    private String script(String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("bash", SCRIPT.toString()));
        command.add(args[0]);
        command.add(dir.toString());
        command.addAll(List.of(args).subList(1, args.length));
        return run(new ProcessBuilder(command), 60);
    }

    /** Runs a command to its end; its output (stdout and stderr), or an exception with it when it failed. */
    static String run(ProcessBuilder builder, int timeoutSeconds) throws IOException, InterruptedException {
        builder.redirectErrorStream(true);
        Process process = builder.start();
        byte[] out = process.getInputStream().readAllBytes();
        if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new IllegalStateException(builder.command() + " timed out");
        }
        String text = new String(out, StandardCharsets.UTF_8);
        if (process.exitValue() != 0) {
            throw new IllegalStateException(builder.command() + " exited " + process.exitValue() + ":\n" + text);
        }
        return text;
    }

    /**
     * A free loopback port below the kernel's range for outgoing connections (32768+ here), so that no outgoing
     * connection of this busy machine takes it between this check and the bind.
     */
    static int freePort() throws IOException {
        java.util.concurrent.ThreadLocalRandom random = java.util.concurrent.ThreadLocalRandom.current();
        for (int attempt = 0; attempt < 200; attempt++) {
            int candidate = random.nextInt(20_000, 32_000);
            try (ServerSocket socket = new ServerSocket(candidate, 1, java.net.InetAddress.getLoopbackAddress())) {
                return socket.getLocalPort();
            } catch (IOException taken) {
                // try another
            }
        }
        throw new IOException("no free port in 20000-32000 after 200 tries");
    }

    /** Stops ejabberd (kills it if it will not stop); safe to call twice. */
    public void stop() {
        close();
    }

    /** Starts the same instance again after {@link #stop()}, on the same ports and data. */
    public void restart() throws IOException, InterruptedException {
        ProcessBuilder builder = new ProcessBuilder("bash", SCRIPT.toString(), "start", dir.toString());
        builder.environment().putAll(env);
        run(builder, 180);
        stopped = false;
    }

    @Override
    public synchronized void close() {
        if (stopped) {
            return;
        }
        stopped = true;
        try {
            script("stop");
        } catch (Exception e) {
            System.err.println("[real ejabberd] stop failed: " + e);
        }
    }
}
