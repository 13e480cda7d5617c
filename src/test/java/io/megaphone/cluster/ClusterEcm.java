package io.megaphone.cluster;

import io.megaphone.it.PrivateEjabberd;
import java.io.IOException;
import java.net.InetAddress;
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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The ECM as its own OS process (the test JVM's classpath), linked to every node of an {@link EjabberdCluster}
 * through DNS discovery: {@code --megaphone.link.discovery.dns-name=ejabberd-cluster}, resolved by Java's hosts-file
 * name service ({@code -Djdk.net.hosts.file}) to both nodes' addresses. Lean JVM flags: the machine is shared.
 */
final class ClusterEcm implements AutoCloseable {

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private static final Pattern LINKS = Pattern.compile("\"ready\":(\\d+),\"configured\":(\\d+)");

    final String name;
    final int port;
    final int managementPort;
    final Path log;
    private final Process process;

    private ClusterEcm(String name, int port, int managementPort, Process process, Path log) {
        this.name = name;
        this.port = port;
        this.managementPort = managementPort;
        this.process = process;
        this.log = log;
    }

    /**
     * Starts an ECM linked to every node of {@code cluster}; waits until it has {@code linksPerNode} to each. Tries
     * new ports if the free ones it picked were taken meanwhile (the machine is shared).
     */
    static ClusterEcm start(String name, EjabberdCluster cluster, int linksPerNode) throws Exception {
        for (int attempt = 1; ; attempt++) {
            try {
                return startOnce(name, cluster, linksPerNode);
            } catch (IllegalStateException e) {
                if (attempt == 3 || !e.getMessage().contains("already in use")) {
                    throw e;
                }
            }
        }
    }

    private static ClusterEcm startOnce(String name, EjabberdCluster cluster, int linksPerNode) throws Exception {
        int port = freePort();
        int managementPort = freePort();
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djdk.net.hosts.file=" + cluster.hostsFile(),
                "-cp", System.getProperty("java.class.path"), "io.megaphone.MegaphoneApplication",
                // Loopback only: a wildcard bind fails while any socket of the machine (e.g. another engineer's
                // load test, thousands in TIME_WAIT) holds the same local port on any address.
                "--server.address=127.0.0.1", "--management.server.address=127.0.0.1",
                "--server.port=" + port, "--management.server.port=" + managementPort,
                "--megaphone.link.discovery.dns-name=" + EjabberdCluster.DNS_NAME,
                "--megaphone.link.discovery.port=" + cluster.linkPort(),
                "--megaphone.link.discovery.refresh-interval=1s",
                "--megaphone.link.links-per-node=" + linksPerNode,
                "--megaphone.link.name=" + name,
                "--megaphone.link.secret=" + PrivateEjabberd.SECRET));
        Path log = Files.createTempFile("ecm-" + name + "-", ".log");
        Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        ClusterEcm ecm = new ClusterEcm(name, port, managementPort, process, log);
        Runtime.getRuntime().addShutdownHook(new Thread(process::destroyForcibly));
        int wanted = linksPerNode * EjabberdCluster.IPS.size();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (ecm.readyLinks() < wanted) {
            if (!process.isAlive() || System.nanoTime() > deadline) {
                process.destroyForcibly();
                throw new IllegalStateException("ECM " + name + " did not get " + wanted + " ready links:\n"
                        + Files.readString(log));
            }
            Thread.sleep(250);
        }
        System.out.println("[ecm " + name + "] port " + port + ", " + wanted + " links ready, log " + log);
        return ecm;
    }

    String boshUrl() {
        return "http://127.0.0.1:" + port + "/http-bind";
    }

    /** Ready links, from /actuator/health (-1 when the ECM does not answer). */
    int readyLinks() {
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

    /** SIGKILL: no drain, no GOAWAY; its sockets are closed by the kernel. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    String logText() throws IOException {
        return Files.readString(log);
    }

    @Override
    public void close() {
        process.destroyForcibly();
    }

    private static final java.util.Set<Integer> HANDED_OUT = new java.util.HashSet<>();

    /** A free port, never one this JVM handed out before (ECMs start in parallel; a closed port can come again). */
    private static synchronized int freePort() throws IOException {
        while (true) {
            try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                if (HANDED_OUT.add(socket.getLocalPort())) {
                    return socket.getLocalPort();
                }
            }
        }
    }
}
