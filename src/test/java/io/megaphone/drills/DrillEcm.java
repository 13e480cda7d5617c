package io.megaphone.drills;

import io.megaphone.it.PrivateEjabberd;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The real ECM as its own OS process (the test classpath, io.megaphone.MegaphoneApplication), so a drill can
 * SIGKILL it, force a GC in it with jcmd and read its heap from /actuator/prometheus, like an operator.
 */
final class DrillEcm implements AutoCloseable {

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    final int port;
    final int managementPort;
    private final Process process;
    final Path log;

    private DrillEcm(int port, int managementPort, Process process, Path log) {
        this.port = port;
        this.managementPort = managementPort;
        this.process = process;
        this.log = log;
    }

    /** Starts an ECM linked to {@code ejabberd} and waits (at most 60 s) until it is ready. */
    static DrillEcm start(PrivateEjabberd ejabberd, String... extraArgs) throws Exception {
        for (int attempt = 1; ; attempt++) {
            int port = freePort();
            int managementPort = freePort();
            List<String> command = new ArrayList<>(List.of(
                    Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m", "-XX:+UseG1GC",
                    "-cp", System.getProperty("java.class.path"), "io.megaphone.MegaphoneApplication",
                    "--server.port=" + port, "--management.server.port=" + managementPort,
                    "--megaphone.link.nodes=127.0.0.1:" + ejabberd.linkPort(),
                    "--megaphone.link.secret=" + PrivateEjabberd.SECRET,
                    "--logging.level.root=WARN", "--logging.level.io.megaphone=INFO"));
            command.addAll(List.of(extraArgs));
            Path log = Files.createTempFile("drill-ecm-" + port + "-", ".log");
            Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            DrillEcm ecm = new DrillEcm(port, managementPort, process, log);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!ecm.ready() && process.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(200);
            }
            if (ecm.ready()) {
                return ecm;
            }
            process.destroyForcibly();
            String text = Files.readString(log);
            // a free port picked here may be taken by another process of this shared machine before the ECM binds it
            if (attempt == 5 || !(text.contains("already in use") || text.contains("cannot bind"))) {
                throw new IllegalStateException("ECM did not become ready:\n" + text);
            }
        }
    }

    /**
     * A port free on every address, picked below the kernel's ephemeral range (32768 and up by default): a port
     * from that range can be taken by any outgoing connection of this busy, shared machine before the ECM binds it.
     */
    static int freePort() throws IOException {
        java.util.concurrent.ThreadLocalRandom random = java.util.concurrent.ThreadLocalRandom.current();
        for (int i = 0; i < 200; i++) {
            int port = 20_000 + random.nextInt(12_000);
            try (ServerSocket socket = new ServerSocket()) {
                socket.setReuseAddress(false);
                socket.bind(new java.net.InetSocketAddress(port));
                return port;
            } catch (IOException taken) {
                // try another
            }
        }
        throw new IOException("no free port found between 20000 and 32000");
    }

    String boshUrl() {
        return "http://127.0.0.1:" + port + "/http-bind";
    }

    long pid() {
        return process.pid();
    }

    boolean alive() {
        return process.isAlive();
    }

    boolean ready() {
        try {
            return get("/actuator/health/readiness").statusCode() == 200;
        } catch (Exception e) {
            return false;
        }
    }

    HttpResponse<String> get(String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort + path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
    }

    String prometheus() throws Exception {
        return get("/actuator/prometheus").body();
    }

    /** Sum of the samples of {@code name} whose labels contain every one of {@code labels}. */
    static double sum(String scrape, String name, String... labels) {
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

    /** Forces a full GC in the ECM (jcmd GC.run), then returns its used heap in bytes from /actuator/prometheus. */
    long heapAfterGc() throws Exception {
        String jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd").toString();
        for (int i = 0; i < 2; i++) {
            Drill.sh(30, jcmd, Long.toString(pid()), "GC.run");
            Thread.sleep(300);
        }
        return (long) sum(prometheus(), "jvm_memory_used_bytes", "area=\"heap\"");
    }

    /** SIGKILL. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    String logText() throws IOException {
        return Files.readString(log);
    }

    @Override
    public void close() throws InterruptedException {
        kill();
    }
}
