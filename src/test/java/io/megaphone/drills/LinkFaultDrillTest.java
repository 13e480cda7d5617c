// SPDX-License-Identifier: Apache-2.0
package io.megaphone.drills;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.it.EcmProcess;
import io.megaphone.it.PrivateEjabberd;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Link and server faults while users chat through two ECM processes, every message counted end to end:
 * (a) the links' TCP connections killed from outside, repeatedly ({@code ss -K});
 * (c) ejabberd's VM stopped ({@code kill -STOP}) for 4 heartbeats of 1 s, then continued: a link that stalls
 * without closing;
 * (d) one ECM killed with SIGKILL: clients re-send the same rid through the other one;
 * (b) ejabberd killed with {@code kill -9} and restarted: its sessions are gone, each client must get a BOSH
 * terminate (or retryable 5xx while it is down), never a hang, and chat again after logging in anew.
 * Expected everywhere ejabberd kept the session: every message received exactly once.
 */
@Tag("drill")
class LinkFaultDrillTest {

    private static final String PASSWORD = "drill-pw";
    private static PrivateEjabberd ejabberd;
    private static final List<EcmProcess> ecms = new ArrayList<>();

    @BeforeAll
    static void start() throws Exception {
        long start = System.nanoTime();
        ejabberd = PrivateEjabberd.start();
        List<java.util.concurrent.CompletableFuture<EcmProcess>> starting = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            starting.add(java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                try {
                    return Drill.ecm(ejabberd, "--megaphone.link.heartbeat=1s",
                            "--megaphone.link.links-per-node=2",
                            "--megaphone.edge.admission.sessions-burst-per-client=1000",
                            "--megaphone.edge.admission.sessions-per-second-per-client=1000");
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }));
        }
        for (var ecm : starting) {
            ecms.add(ecm.get(90, TimeUnit.SECONDS));
        }
        System.out.println("[drill] ejabberd and 2 ECMs up in " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)
                + " ms");
    }

    @AfterAll
    static void stop() throws Exception {
        for (EcmProcess ecm : ecms) {
            ecm.close();
        }
        if (ejabberd != null) {
            ejabberd.close();
        }
    }

    private static double ecmSum(String name, String... labels) {
        double total = 0;
        for (EcmProcess ecm : ecms) {
            if (ecm.alive()) {
                try {
                    total += EcmProcess.sum(ecm.prometheus(), name, labels);
                } catch (Exception e) {
                    // a dead ECM has no metrics
                }
            }
        }
        return total;
    }

    private static Map<String, Object> phaseFigures(ChatLoad.PhaseResult r, long faultMillis, Map<String, Object> extra) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("phase", r.phase());
        m.putAll(r.figures());
        m.put("fault_ms", faultMillis);
        m.putAll(extra);
        return m;
    }

    @Test
    void faultsLoseNoMessageWhereEjabberdKeptTheSession() throws Exception {
        int pairs = Drill.scaled(10, 100);
        long interval = Drill.scaled(500, 1000);
        int chatSeconds = Drill.scaled(3, 10);
        String prefix = Drill.uniquePrefix("fault");
        Drill.registerUsers(ejabberd, prefix, 2 * pairs, PASSWORD);
        List<String> urls = ecms.stream().map(EcmProcess::boshUrl).toList();
        List<Map<String, Object>> phases = new ArrayList<>();
        long drillStart = System.nanoTime();
        ChatLoad load = new ChatLoad(urls, prefix, PASSWORD, pairs, interval);
        try {
            long loginStart = System.nanoTime();
            load.start();
            long loginMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - loginStart);

            // baseline
            load.startSending("baseline");
            Thread.sleep(chatSeconds * 1000L);
            phases.add(phaseFigures(load.quiesce("baseline", 30), 0, Map.of("login_ms", loginMillis)));

            // (a) links killed from outside, repeatedly
            double resendsBefore = ecmSum("megaphone_link_resends_total");
            load.startSending("links_killed");
            int drops = Drill.scaled(3, 10);
            int killed = 0;
            Thread.sleep(1000);
            for (int i = 0; i < drops; i++) {
                killed += Drill.killConnectionsTo(ejabberd.linkPort());
                Thread.sleep(Math.max(700, chatSeconds * 1000L / drops));
            }
            ChatLoad.PhaseResult a = load.quiesce("links_killed", 40);
            phases.add(phaseFigures(a, 0, Map.of("link_kills", drops, "tcp_connections_killed", killed,
                    "ecm_resends", ecmSum("megaphone_link_resends_total") - resendsBefore)));

            // (c) a link that stalls without closing: ejabberd's VM stopped for 4 heartbeats
            long beam = Drill.listenerPid(ejabberd.linkPort());
            resendsBefore = ecmSum("megaphone_link_resends_total");
            double connectsBefore = ecmSum("megaphone_link_connects_total");
            load.startSending("link_stalled");
            Thread.sleep(1500);
            long stallStart = System.nanoTime();
            Drill.sh(10, "kill", "-STOP", Long.toString(beam));
            Thread.sleep(4000);
            Drill.sh(10, "kill", "-CONT", Long.toString(beam));
            long stallMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - stallStart);
            Thread.sleep(chatSeconds * 1000L);
            ChatLoad.PhaseResult c = load.quiesce("link_stalled", 40);
            phases.add(phaseFigures(c, stallMillis, Map.of(
                    "ecm_resends", ecmSum("megaphone_link_resends_total") - resendsBefore,
                    "ecm_link_connects", ecmSum("megaphone_link_connects_total") - connectsBefore)));

            // (d) one ECM killed with SIGKILL
            load.startSending("ecm_killed");
            Thread.sleep(1500);
            long killStart = System.nanoTime();
            ecms.get(0).kill();
            Thread.sleep(chatSeconds * 1000L);
            ChatLoad.PhaseResult d = load.quiesce("ecm_killed", 40);
            phases.add(phaseFigures(d, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - killStart), Map.of()));

            // (b) ejabberd killed with kill -9 and restarted: its sessions are gone
            long terminatedBefore = load.terminatedUsers();
            beam = Drill.listenerPid(ejabberd.linkPort());
            long kill9 = System.nanoTime();
            Drill.sh(10, "kill", "-9", Long.toString(beam));
            Thread.sleep(2000);
            ejabberd.restart();
            long restartedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - kill9);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(ChatLoad.WAIT + 30);
            while (load.terminatedUsers() < load.users() && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            long allTerminatedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - kill9);
            int terminated = load.terminatedUsers();
            Map<String, Long> firstOutcomes = load.outcomeCounts();
            long longestMillis = load.longestRequestMillis.get();
            List<String> firstFailures = new ArrayList<>(load.failures);
            long terminates = load.pairs.stream().flatMap(p -> java.util.stream.Stream.of(p.sender, p.receiver))
                    .filter(u -> u.terminated && u.terminateBody != null && u.terminateBody.contains("terminate"))
                    .count();
            load.close();

            ChatLoad after = load.again(interval);
            long reloginStart = System.nanoTime();
            after.start();
            after.startSending("after_restart");
            Thread.sleep(chatSeconds * 1000L);
            ChatLoad.PhaseResult b = after.quiesce("after_restart", 40);
            long recoverMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - kill9);
            Map<String, Object> bFigures = new LinkedHashMap<>();
            bFigures.put("users_terminated", terminated - terminatedBefore);
            bFigures.put("users_got_bosh_terminate", terminates);
            bFigures.put("ejabberd_back_ms", restartedMillis);
            bFigures.put("all_clients_told_ms", allTerminatedMillis);
            bFigures.put("relogin_ms", TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - reloginStart));
            bFigures.put("recovered_ms", recoverMillis);
            phases.add(phaseFigures(b, restartedMillis, bFigures));

            Map<String, Long> outcomes = new java.util.TreeMap<>(firstOutcomes);
            after.outcomeCounts().forEach((k, v) -> outcomes.merge(k, v, Long::sum));
            Map<String, Object> total = new LinkedHashMap<>();
            total.put("users", load.users());
            total.put("ecms", 2);
            total.put("requests_tried", load.attempts.sum() + after.attempts.sum());
            total.put("outcomes", outcomes);
            total.put("client_resends", load.resends.sum() + after.resends.sum());
            total.put("longest_request_ms", Math.max(longestMillis, after.longestRequestMillis.get()));
            total.put("messages_sent", phases.stream().mapToInt(p -> (Integer) p.get("messages_sent")).sum());
            total.put("messages_received", phases.stream().mapToInt(p -> (Integer) p.get("messages_received")).sum());
            total.put("lost", phases.stream().mapToInt(p -> (Integer) p.get("lost")).sum());
            total.put("duplicates", phases.stream().mapToInt(p -> (Integer) p.get("duplicates")).sum());
            total.put("failures", firstFailures.size() + after.failures.size());
            total.put("duration_ms", TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - drillStart));
            total.put("phases", phases);
            Drill.record("link_and_server_faults", total);

            List<String> allFailures = new ArrayList<>(firstFailures);
            allFailures.addAll(after.failures);
            after.logout();
            after.close();

            for (ChatLoad.PhaseResult r : List.of(a, c, d, b)) {
                assertThat(r.lost()).as("%s: lost messages %s", r.phase(), r.lostIds()).isZero();
                assertThat(r.duplicates()).as("%s: duplicates", r.phase()).isZero();
                assertThat(r.lostWithSession()).as("%s: sessions ended", r.phase()).isZero();
                assertThat(r.sent()).as("%s: messages sent", r.phase()).isPositive();
            }
            assertThat(terminated - terminatedBefore).as("every session lost with ejabberd ends for its client")
                    .isEqualTo(load.users());
            assertThat(terminates).as("with a BOSH terminate").isEqualTo(load.users());
            assertThat(outcomes).doesNotContainKey("timeout");
            assertThat(allFailures).as("client failures").isEmpty();
        } finally {
            load.close();
        }
    }
}
