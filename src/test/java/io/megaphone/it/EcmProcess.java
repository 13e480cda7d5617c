// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The ECM as its own operating-system process (the test JVM's classpath, io.megaphone.MegaphoneApplication), so
 * tests can send it SIGTERM or SIGKILL like an orchestrator would, force a GC in it with jcmd and read its
 * actuator endpoints like an operator. The one launcher of the integration tests, the cluster test and the drills:
 * {@link #start(PrivateEjabberd, String...)} for the plain case, {@link #builder()} for extra program arguments,
 * extra JVM options, another heap size, a wildcard bind or waiting for a number of ready links.
 *
 * <p>The ECM runs on the test JVM's own JDK, with compact object headers where that JDK has them as a product flag
 * (Java 25 and later), as the image runs it (Dockerfile); {@link #jvmOptionsOf(Runtime.Version)} says which.
 *
 * <p>Ports come from {@link PrivateEjabberd#freePort()} (20000-32000, below the kernel's range for outgoing
 * connections), never one this JVM handed out before (ECMs start in parallel; a closed port can come again). A
 * start whose port was taken meanwhile by another process of this shared machine is retried on new ports.
 */
public final class EcmProcess implements AutoCloseable {

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private static final Pattern LINKS = Pattern.compile("\"ready\":(\\d+),\"configured\":(\\d+)");
    private static final Set<Integer> HANDED_OUT = new HashSet<>();
    private static final int ATTEMPTS = 5;

    /** The name given to the builder, else the server port. */
    public final String name;
    public final int port;
    public final int managementPort;
    public final Path log;
    private final Process process;

    private EcmProcess(String name, int port, int managementPort, Process process, Path log) {
        this.name = name;
        this.port = port;
        this.managementPort = managementPort;
        this.process = process;
        this.log = log;
    }

    /** Starts an ECM (loopback only, -Xmx256m) linked to {@code ejabberd} and waits until it is ready. */
    public static EcmProcess start(PrivateEjabberd ejabberd, String... extraArgs) throws Exception {
        return builder().linkedTo(ejabberd).args(extraArgs).start();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** How to start an ECM; every setting has the default of {@link #start(PrivateEjabberd, String...)}. */
    public static final class Builder {

        private String name;
        private String logPrefix = "ecm";
        private String maxHeap = "256m";
        private final List<String> jvmOptions = new ArrayList<>();
        private final List<String> args = new ArrayList<>();
        private PrivateEjabberd ejabberd;
        private boolean loopbackOnly = true;
        private int readyLinks;
        private boolean anyLinks;

        private Builder() {
        }

        /** A name for messages and the log file ({@code <logPrefix>-<name>-*.log}); the port by default. */
        public Builder name(String name) {
            this.name = name;
            return this;
        }

        /** The start of the log file's name, {@code ecm} by default. */
        public Builder logPrefix(String logPrefix) {
            this.logPrefix = logPrefix;
            return this;
        }

        /** {@code -Xmx}, {@code 256m} by default. */
        public Builder maxHeap(String maxHeap) {
            this.maxHeap = maxHeap;
            return this;
        }

        /** JVM options after {@code -Xmx} and {@link #jvmOptionsOf(Runtime.Version)}, which they can override. */
        public Builder jvmOptions(String... options) {
            jvmOptions.addAll(List.of(options));
            return this;
        }

        /** Program arguments after the ports, addresses, link nodes and secret. */
        public Builder args(String... extraArgs) {
            args.addAll(List.of(extraArgs));
            return this;
        }

        /** {@code --megaphone.link.nodes=127.0.0.1:<its link port>}; without it, give the link nodes or discovery. */
        public Builder linkedTo(PrivateEjabberd ejabberd) {
            this.ejabberd = ejabberd;
            return this;
        }

        /**
         * Binds the server and management ports on every address (no {@code --server.address}) instead of
         * 127.0.0.1 only; the ports are then picked free on every address.
         */
        public Builder wildcardBind() {
            this.loopbackOnly = false;
            return this;
        }

        /** Waits (at most 90 s) until {@code /actuator/health} shows this many ready links, instead of readiness. */
        public Builder waitForReadyLinks(int readyLinks) {
            this.readyLinks = readyLinks;
            return this;
        }

        /** Waits only until {@code /actuator/health} answers, ready links or not, instead of readiness. */
        public Builder waitForHealthOnly() {
            this.anyLinks = true;
            return this;
        }

        /** Starts the ECM and waits until it is ready; tries new ports if the ones picked were taken meanwhile. */
        public EcmProcess start() throws Exception {
            for (int attempt = 1; ; attempt++) {
                try {
                    return startOnce();
                } catch (IllegalStateException e) {
                    String message = String.valueOf(e.getMessage());
                    if (attempt == ATTEMPTS
                            || !(message.contains("already in use") || message.contains("cannot bind"))) {
                        throw e;
                    }
                }
            }
        }

        private EcmProcess startOnce() throws Exception {
            int port = freePort(loopbackOnly);
            int managementPort = freePort(loopbackOnly);
            List<String> command = new ArrayList<>();
            command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            command.add("-Xmx" + maxHeap);
            command.addAll(jvmOptionsOf(Runtime.version()));
            command.addAll(jvmOptions);
            command.addAll(List.of("-cp", System.getProperty("java.class.path"), "io.megaphone.MegaphoneApplication",
                    "--server.port=" + port, "--management.server.port=" + managementPort));
            if (loopbackOnly) {
                // a wildcard bind fails while any socket of the machine holds the same local port on any address
                command.addAll(List.of("--server.address=127.0.0.1", "--management.server.address=127.0.0.1"));
            }
            if (ejabberd != null) {
                command.add("--megaphone.link.nodes=127.0.0.1:" + ejabberd.linkPort());
            }
            command.add("--megaphone.link.secret=" + PrivateEjabberd.SECRET);
            command.addAll(args);
            String label = name != null ? name : Integer.toString(port);
            Path log = Files.createTempFile(logPrefix + "-" + label + "-", ".log");
            Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile())
                    .start();
            Runtime.getRuntime().addShutdownHook(new Thread(process::destroyForcibly));
            EcmProcess ecm = new EcmProcess(label, port, managementPort, process, log);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(readyLinks > 0 ? 90 : 60);
            while (anyLinks ? ecm.readyLinks() < 0 : readyLinks > 0 ? ecm.readyLinks() < readyLinks : !ecm.ready()) {
                if (!process.isAlive() || System.nanoTime() > deadline) {
                    ecm.kill();
                    throw new IllegalStateException("ECM " + label + " did not become ready"
                            + (readyLinks > 0 ? " with " + readyLinks + " ready links" : "") + ":\n"
                            + Files.readString(log));
                }
                Thread.sleep(readyLinks > 0 ? 250 : 200);
            }
            return ecm;
        }
    }

    /**
     * The JVM options every ECM gets on a JDK of this version, as in the image: from Java 25 on
     * {@code -XX:+UseCompactObjectHeaders} (Java 24 has it as an experimental flag, earlier ones not at all) and
     * native access for Netty's epoll library without a warning; none before.
     */
    static List<String> jvmOptionsOf(Runtime.Version version) {
        return version.feature() >= 25
                ? List.of("-XX:+UseCompactObjectHeaders", "--enable-native-access=ALL-UNNAMED")
                : List.of();
    }

    private static synchronized int freePort(boolean loopbackOnly) throws IOException {
        for (int attempt = 0; attempt < 200; attempt++) {
            int port = PrivateEjabberd.freePort();
            if (!HANDED_OUT.contains(port) && (loopbackOnly || freeOnEveryAddress(port))) {
                HANDED_OUT.add(port);
                return port;
            }
        }
        throw new IOException("no free port in 20000-32000 after 200 tries");
    }

    private static boolean freeOnEveryAddress(int port) {
        try (ServerSocket socket = new ServerSocket()) {
            socket.setReuseAddress(false);
            socket.bind(new InetSocketAddress(port));
            return true;
        } catch (IOException taken) {
            return false;
        }
    }

    public String boshUrl() {
        return "http://127.0.0.1:" + port + "/http-bind";
    }

    public long pid() {
        return process.pid();
    }

    public boolean alive() {
        return process.isAlive();
    }

    /** Readiness is UP. */
    public boolean ready() {
        try {
            return get("/actuator/health/readiness").statusCode() == 200;
        } catch (Exception e) {
            return false;
        }
    }

    /** Ready links, from /actuator/health (-1 when the ECM does not answer). */
    public int readyLinks() {
        try {
            HttpResponse<String> health = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                    + managementPort + "/actuator/health")).timeout(Duration.ofSeconds(2)).build(),
                    HttpResponse.BodyHandlers.ofString());
            Matcher links = LINKS.matcher(health.body());
            return links.find() ? Integer.parseInt(links.group(1)) : -1;
        } catch (Exception e) {
            return -1;
        }
    }

    /** GET on the management port. */
    public HttpResponse<String> get(String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort + path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** A scrape of /actuator/prometheus. */
    public String prometheus() throws Exception {
        return get("/actuator/prometheus").body();
    }

    /** Sum of the samples of {@code name} whose labels contain every one of {@code labels}. */
    public static double sum(String scrape, String name, String... labels) {
        double total = 0;
        for (String line : scrape.lines().toList()) {
            if (!(line.startsWith(name + "{") || line.startsWith(name + " "))) {
                continue;
            }
            boolean all = true;
            for (String label : labels) {
                all &= line.contains(label);
            }
            if (all) {
                total += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return total;
    }

    /** Forces a full GC in the ECM (jcmd GC.run, twice), then returns its used heap in bytes from prometheus. */
    public long heapAfterGc() throws Exception {
        for (int i = 0; i < 2; i++) {
            gcRun();
            Thread.sleep(300);
        }
        return (long) sum(prometheus(), "jvm_memory_used_bytes", "area=\"heap\"");
    }

    /** {@code jcmd <pid> GC.run}; fails if jcmd does not succeed within 30 s. */
    public void gcRun() throws IOException, InterruptedException {
        jcmd("GC.run");
    }

    /** {@code jcmd <pid> COMMAND...} (the test JVM's jcmd), its output; fails if it does not succeed within 30 s. */
    public String jcmd(String... jcmdCommand) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "jcmd")
                .toString(), Long.toString(pid())));
        command.addAll(List.of(jcmdCommand));
        Process jcmd = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] out = jcmd.getInputStream().readAllBytes();
        if (!jcmd.waitFor(30, TimeUnit.SECONDS)) {
            jcmd.destroyForcibly();
            throw new IllegalStateException(String.join(" ", command) + " timed out");
        }
        if (jcmd.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", command) + " exited " + jcmd.exitValue() + ": "
                    + new String(out, StandardCharsets.UTF_8));
        }
        return new String(out, StandardCharsets.UTF_8);
    }

    /** SIGTERM, as Kubernetes sends it. */
    public void terminate() {
        process.destroy();
    }

    /** SIGKILL: no drain, no GOAWAY; its sockets are closed by the kernel. Waits (at most 10 s) for the exit. */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    public boolean waitForExit(long seconds) throws InterruptedException {
        return process.waitFor(seconds, TimeUnit.SECONDS);
    }

    public int exitValue() {
        return process.exitValue();
    }

    public String logText() throws IOException {
        return Files.readString(log);
    }

    /** SIGKILL, and waits (at most 10 s) for the exit. */
    @Override
    public void close() throws InterruptedException {
        kill();
    }
}
