package io.megaphone.it;

import java.io.File;
import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The ECM as its own operating-system process (the test JVM's classpath, io.megaphone.MegaphoneApplication), so
 * tests can send it SIGTERM or kill it like an orchestrator would.
 */
final class EcmProcess implements AutoCloseable {

    final int port;
    final int managementPort;
    private final Process process;
    final Path log;

    private EcmProcess(int port, int managementPort, Process process, Path log) {
        this.port = port;
        this.managementPort = managementPort;
        this.process = process;
        this.log = log;
    }

    /**
     * Starts an ECM linked to {@code ejabberd} and waits until it is ready; tries new ports if the free ports it
     * picked were taken meanwhile by another process of this shared machine.
     */
    static EcmProcess start(PrivateEjabberd ejabberd, String... extraArgs) throws Exception {
        for (int attempt = 1; ; attempt++) {
            try {
                return startOnce(ejabberd, extraArgs);
            } catch (IllegalStateException e) {
                if (attempt == 3 || !e.getMessage().contains("already in use")) {
                    throw e;
                }
            }
        }
    }

    private static EcmProcess startOnce(PrivateEjabberd ejabberd, String... extraArgs) throws Exception {
        int port = PrivateEjabberd.freePort();
        int managementPort = PrivateEjabberd.freePort();
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m",
                "-cp", System.getProperty("java.class.path"), "io.megaphone.MegaphoneApplication",
                "--server.port=" + port, "--management.server.port=" + managementPort,
                "--server.address=127.0.0.1", "--management.server.address=127.0.0.1",
                "--megaphone.link.nodes=127.0.0.1:" + ejabberd.linkPort(),
                "--megaphone.link.secret=" + PrivateEjabberd.SECRET));
        command.addAll(List.of(extraArgs));
        Path log = Files.createTempFile("ecm-" + port + "-", ".log");
        Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        EcmProcess ecm = new EcmProcess(port, managementPort, process, log);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!ecm.ready()) {
            if (!process.isAlive() || System.nanoTime() > deadline) {
                throw new IllegalStateException("ECM did not become ready:\n" + Files.readString(log));
            }
            Thread.sleep(200);
        }
        return ecm;
    }

    String boshUrl() {
        return "http://127.0.0.1:" + port + "/http-bind";
    }

    boolean ready() {
        try {
            HttpResponse<String> response = RealStack.get("http://127.0.0.1:" + managementPort
                    + "/actuator/health/readiness");
            return response.statusCode() == 200;
        } catch (Exception e) {
            return false;
        }
    }

    /** SIGTERM, as Kubernetes sends it. */
    void terminate() {
        process.destroy();
    }

    /** SIGKILL. */
    void kill() {
        process.destroyForcibly();
    }

    boolean waitForExit(long seconds) throws InterruptedException {
        return process.waitFor(seconds, TimeUnit.SECONDS);
    }

    int exitValue() {
        return process.exitValue();
    }

    String logText() throws IOException {
        return Files.readString(log);
    }

    @Override
    public void close() {
        process.destroyForcibly();
    }

    static String classpathSeparator() {
        return File.pathSeparator;
    }
}
