// SPDX-License-Identifier: Apache-2.0
package io.megaphone.drills;

import io.megaphone.it.EcmProcess;
import io.megaphone.it.PrivateEjabberd;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import tools.jackson.databind.json.JsonMapper;

/**
 * What every drill shares: the scale (system property {@code drill.scale}: {@code small}, the default, is the
 * short subset the normal test run executes; {@code full} is what {@code bash scripts/drills.sh} runs), the
 * results file (one JSON line per drill in target/drills/results.jsonl) and a few operations on a private
 * ejabberd done from outside, as an operator would (find its beam.smp, kill it, read mod_megaphone's counters).
 */
final class Drill {

    static final boolean FULL = "full".equalsIgnoreCase(System.getProperty("drill.scale", "small"));
    static final String SCALE = FULL ? "full" : "small";
    static final Path RESULTS = Path.of("target", "drills", "results.jsonl");
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private Drill() {
    }

    /**
     * Starts the real ECM as its own OS process ({@link EcmProcess}: -Xmx256m, G1, bound on every address, WARN
     * logging but INFO for io.megaphone) linked to {@code ejabberd}, and waits (at most 60 s) until it is ready,
     * so a drill can SIGKILL it, force a GC in it with jcmd and read its heap from /actuator/prometheus.
     */
    static EcmProcess ecm(PrivateEjabberd ejabberd, String... extraArgs) throws Exception {
        return EcmProcess.builder().logPrefix("drill-ecm").jvmOptions("-XX:+UseG1GC").wildcardBind()
                .linkedTo(ejabberd).args("--logging.level.root=WARN", "--logging.level.io.megaphone=INFO")
                .args(extraArgs).start();
    }

    /** {@code full} at full scale, {@code small} otherwise. */
    static int scaled(int small, int full) {
        return FULL ? full : small;
    }

    /** Appends one line of figures for {@code drill} to target/drills/results.jsonl and prints it. */
    static synchronized void record(String drill, Map<String, ?> figures) throws IOException {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("drill", drill);
        line.put("scale", SCALE);
        line.put("at", Instant.now().toString());
        line.put("run", System.getProperty("drill.run", ""));
        line.putAll(figures);
        String text = JSON.writeValueAsString(line);
        Files.createDirectories(RESULTS.getParent());
        Files.writeString(RESULTS, text + "\n", StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
        System.out.println("[drill] " + text);
    }

    /** Runs a command, returns its output (stdout + stderr); fails on a non-zero exit or after the timeout. */
    static String sh(int timeoutSeconds, String... command) throws IOException, InterruptedException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] out = process.getInputStream().readAllBytes();
        if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new IllegalStateException(String.join(" ", command) + " timed out");
        }
        String text = new String(out, StandardCharsets.UTF_8);
        if (process.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", command) + " exited " + process.exitValue() + ": " + text);
        }
        return text;
    }

    private static final Pattern PID = Pattern.compile("pid=(\\d+)");

    /** The PID of the process listening on 127.0.0.1:{@code port} (for ejabberd: its beam.smp), from ss. */
    static long listenerPid(int port) throws IOException, InterruptedException {
        String out = sh(10, "ss", "-Hltnp", "sport = :" + port);
        Matcher m = PID.matcher(out);
        if (!m.find()) {
            throw new IllegalStateException("nothing listens on port " + port + ": " + out);
        }
        return Long.parseLong(m.group(1));
    }

    /**
     * Kills, from outside, every established TCP connection to 127.0.0.1:{@code port} (as root, with the kernel's
     * SOCK_DESTROY: {@code ss -K}); both ends see the connection die at once. Returns how many were killed.
     */
    static int killConnectionsTo(int port) throws IOException, InterruptedException {
        String out = sh(10, "ss", "-HK", "state", "established", "dst", "127.0.0.1", "dport", "=", ":" + port);
        return (int) out.lines().filter(l -> !l.isBlank()).count();
    }

    /** mod_megaphone's counters ({@code ejabberdctl megaphone_stats}). */
    static Map<String, Long> megaphoneStats(PrivateEjabberd ejabberd) throws Exception {
        Map<String, Long> stats = new HashMap<>();
        for (String line : ejabberd.ctl("megaphone_stats").split("\n")) {
            String[] fields = line.strip().split("\\s+");
            if (fields.length == 2 && fields[1].matches("\\d+")) {
                stats.put(fields[0], Long.parseLong(fields[1]));
            }
        }
        return stats;
    }

    /** Registers {@code prefix1..prefixN} with {@code password} in one ejabberdctl call (XEP-0227 import). */
    static void registerUsers(PrivateEjabberd ejabberd, String prefix, int count, String password) throws Exception {
        Path shared = Files.createTempDirectory("megaphone-drill-",
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        StringBuilder pie = new StringBuilder("<?xml version='1.0' encoding='UTF-8'?>"
                + "<server-data xmlns='urn:xmpp:pie:0'><host jid='" + PrivateEjabberd.DOMAIN + "'>");
        for (int i = 1; i <= count; i++) {
            pie.append("<user name='").append(prefix).append(i).append("' password='").append(password).append("'/>");
        }
        Path users = Files.writeString(shared.resolve("users.xml"), pie.append("</host></server-data>"));
        Files.setPosixFilePermissions(users, PosixFilePermissions.fromString("rw-r--r--"));
        try {
            ejabberd.ctl("import_piefxis", users.toString());
        } finally {
            Files.delete(users);
            Files.delete(shared);
        }
    }

    /** A user-name prefix unique to this run. */
    static String uniquePrefix(String what) {
        return what + Long.toString(System.nanoTime() % 1_000_000_000L, 36) + "u";
    }
}
