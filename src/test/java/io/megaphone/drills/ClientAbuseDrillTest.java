// SPDX-License-Identifier: Apache-2.0
package io.megaphone.drills;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.it.EcmProcess;
import io.megaphone.it.PrivateEjabberd;
import io.megaphone.it.SharedEjabberd;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Client abuse: thousands of generated bad requests against a real ECM process (request-read and idle timeouts set
 * low, 2 s and 3 s), while users chat through the same ECM. Each bad request must get its documented answer
 * (docs/operations.md, MalformedInputTest): 400 with a BOSH terminate, 404, 405, 408, 413, 415 or a closed
 * connection; never a 5xx, never HTML, never a hang. Afterwards the ECM's heap (after a forced GC) is back near its
 * baseline and no chat message was lost.
 */
@Tag("drill")
class ClientAbuseDrillTest {

    private static final String NS = "http://jabber.org/protocol/httpbind";

    /** A kind of bad request, its share of the mix, how it is sent and the outcomes documented for it. */
    record Kind(String name, int weight, RawHttp.Mode mode, Set<String> expected) {
    }

    private static final Set<String> BAD_REQUEST = Set.of("400");
    private static final Set<String> TIMED_OUT = Set.of("408", "closed");
    private static final List<Kind> KINDS = List.of(
            new Kind("truncated_xml", 10, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("wrong_root", 8, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("wrong_namespace", 8, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("no_namespace", 5, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("not_xml", 8, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("entity_bomb", 5, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("bad_rid", 5, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("invalid_utf8", 8, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("empty_body", 4, RawHttp.Mode.NORMAL, BAD_REQUEST),
            new Kind("wrong_content_type", 8, RawHttp.Mode.NORMAL, Set.of("415")),
            new Kind("oversized_body", 4, RawHttp.Mode.NORMAL, Set.of("413", "closed")),
            new Kind("wrong_method", 5, RawHttp.Mode.NORMAL, Set.of("405")),
            new Kind("unknown_path", 5, RawHttp.Mode.NORMAL, Set.of("404")),
            new Kind("huge_attribute", 2, RawHttp.Mode.NORMAL, Set.of("200", "400", "403", "404", "413")),
            new Kind("deep_nesting", 2, RawHttp.Mode.NORMAL, Set.of("200", "400", "403", "404")),
            new Kind("unknown_session", 3, RawHttp.Mode.NORMAL, Set.of("200")),
            new Kind("slowloris_headers", 1, RawHttp.Mode.SLOW_HEADERS, TIMED_OUT),
            new Kind("slowloris_body", 1, RawHttp.Mode.SLOW_BODY, TIMED_OUT),
            new Kind("short_body", 1, RawHttp.Mode.SHORT_BODY, TIMED_OUT),
            new Kind("never_sends", 1, RawHttp.Mode.SILENT, TIMED_OUT));

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] build(Kind kind, Random random) {
        String sessionCreate = "<body rid='" + (1 + random.nextInt(1_000_000)) + "' to='localhost' wait='10' hold='1'"
                + " ver='1.6' xmlns='" + NS + "' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>";
        String xml = "text/xml; charset=utf-8";
        return switch (kind.name()) {
            case "truncated_xml" -> RawHttp.request("POST", "/http-bind", xml,
                    utf8(sessionCreate.substring(0, 1 + random.nextInt(sessionCreate.length() - 3))));
            case "wrong_root" -> RawHttp.request("POST", "/http-bind", xml,
                    utf8(sessionCreate.replace("<body", "<stream").replace("/>", "></stream>")));
            case "wrong_namespace" -> RawHttp.request("POST", "/http-bind", xml, utf8(sessionCreate.replace(NS,
                    random.nextBoolean() ? "jabber:client" : "http://jabber.org/protocol/httpbind2")));
            case "no_namespace" -> RawHttp.request("POST", "/bosh", xml, utf8("<body rid='1' to='localhost'/>"));
            case "not_xml" -> {
                byte[] junk = new byte[1 + random.nextInt(2000)];
                for (int i = 0; i < junk.length; i++) {
                    junk[i] = (byte) (32 + random.nextInt(95));
                }
                junk[0] = 'x';
                yield RawHttp.request("POST", "/http-bind", xml, junk);
            }
            case "entity_bomb" -> RawHttp.request("POST", "/http-bind", xml, utf8("<!DOCTYPE b [<!ENTITY a 'aaaa'>"
                    + "<!ENTITY b '&a;&a;&a;&a;&a;&a;'>]><body rid='1' xmlns='" + NS + "'>&b;</body>"));
            case "bad_rid" -> RawHttp.request("POST", "/http-bind", xml, utf8(sessionCreate.replaceFirst(
                    "rid='\\d+'", random.nextBoolean() ? "rid='x1'" : "rid='99999999999999999999'")));
            case "invalid_utf8" -> {
                byte[] body = utf8(sessionCreate.replace("to='localhost'", "to='XXlocalhost'"));
                int at = new String(body, StandardCharsets.ISO_8859_1).indexOf("XX");
                body[at] = (byte) 0xC3;
                body[at + 1] = (byte) (random.nextBoolean() ? 0x28 : 0xFF);
                yield RawHttp.request("POST", "/http-bind", xml, body);
            }
            case "empty_body" -> RawHttp.request("POST", "/http-bind", xml, new byte[0]);
            case "wrong_content_type" -> RawHttp.request("POST", "/http-bind", List.of("application/json",
                    "text/html", "multipart/form-data; boundary=x", "text/xml; charset=iso-8859-1",
                    "application/x-www-form-urlencoded").get(random.nextInt(5)), utf8(sessionCreate));
            case "oversized_body" -> RawHttp.request("POST", "/http-bind", xml,
                    utf8("<body rid='1' xmlns='" + NS + "'>" + "x".repeat(300_000) + "</body>"));
            case "wrong_method" -> RawHttp.request(List.of("PUT", "DELETE", "PATCH").get(random.nextInt(3)),
                    "/http-bind", xml, utf8(sessionCreate));
            case "unknown_path" -> RawHttp.request("POST", "/http-bind-" + random.nextInt(1000), xml,
                    utf8(sessionCreate));
            case "huge_attribute" -> RawHttp.request("POST", "/http-bind", xml, utf8("<body rid='8' sid='no-such-sid'"
                    + " huge='" + "A".repeat(50_000) + "' xmlns='" + NS + "'/>"));
            case "deep_nesting" -> RawHttp.request("POST", "/http-bind", xml, utf8("<body rid='7' sid='no-such-sid'"
                    + " xmlns='" + NS + "'>" + "<a>".repeat(5_000) + "</body>"));
            case "unknown_session" -> RawHttp.request("POST", "/http-bind", xml, utf8("<body rid='"
                    + (1 + random.nextInt(1_000_000)) + "' sid='drill" + random.nextInt() + "' xmlns='" + NS + "'/>"));
            case "slowloris_headers", "slowloris_body", "short_body", "never_sends" ->
                    RawHttp.request("POST", "/http-bind", xml, utf8(sessionCreate));
            default -> throw new IllegalArgumentException(kind.name());
        };
    }

    /** No HTML, no stack trace, short; the ECM's own 400s are a BOSH terminate (ejabberd's own 400s pass as is). */
    private static boolean wellFormed(Kind kind, RawHttp.Outcome o) {
        String all = o.head() + "\n" + o.body();
        boolean forwarded = kind.expected().contains("200");
        return !all.toLowerCase().contains("<html") && !all.contains("Exception") && o.body().length() < 4096
                && (forwarded || !o.status().equals("400") || o.body().contains("condition='bad-request'")
                || o.body().contains("condition=\"bad-request\""));
    }

    @Test
    void badRequestsGetTheirDocumentedAnswerAndTheChatCarriesOn() throws Exception {
        PrivateEjabberd ejabberd = SharedEjabberd.get();
        int total = Drill.scaled(1_000, 10_000);
        int threads = Drill.scaled(16, 48);
        try (EcmProcess ecm = Drill.ecm(ejabberd, "--megaphone.edge.request-read-timeout=2s",
                "--megaphone.edge.idle-timeout=3s", "--megaphone.link.links-per-node=2",
                "--megaphone.edge.admission.sessions-burst-per-client=100000",
                "--megaphone.edge.admission.sessions-per-second-per-client=100000")) {
            String prefix = Drill.uniquePrefix("abuse");
            int pairs = Drill.scaled(2, 5);
            Drill.registerUsers(ejabberd, prefix, 2 * pairs, SharedEjabberd.PASSWORD);
            ChatLoad chat = new ChatLoad(List.of(ecm.boshUrl()), prefix, SharedEjabberd.PASSWORD, pairs, 500);
            try {
                chat.start();
                // warm up every code path once, then take the heap baseline
                Random warm = new Random(1);
                for (Kind kind : KINDS) {
                    if (kind.mode() == RawHttp.Mode.NORMAL) {
                        RawHttp.exchange(null, ecm.port, build(kind, warm), kind.mode(), 15_000);
                    }
                }
                long heapBefore = ecm.heapAfterGc();
                chat.startSending("abuse");

                int weights = KINDS.stream().mapToInt(Kind::weight).sum();
                Map<String, Map<String, LongAdder>> byKind = new ConcurrentHashMap<>();
                Map<String, LongAdder> byStatus = new ConcurrentHashMap<>();
                List<String> unexpected = java.util.Collections.synchronizedList(new ArrayList<>());
                LongAdder slowestMillis = new LongAdder();
                ExecutorService pool = Executors.newFixedThreadPool(threads);
                long start = System.nanoTime();
                List<Future<?>> done = new ArrayList<>();
                for (int i = 0; i < total; i++) {
                    int seed = i;
                    done.add(pool.submit(() -> {
                        Random random = new Random(seed);
                        int pick = random.nextInt(weights);
                        Kind kind = KINDS.get(0);
                        for (Kind k : KINDS) {
                            if (pick < k.weight()) {
                                kind = k;
                                break;
                            }
                            pick -= k.weight();
                        }
                        RawHttp.Outcome o = RawHttp.exchange(null, ecm.port, build(kind, random), kind.mode(), 15_000);
                        byKind.computeIfAbsent(kind.name(), k -> new ConcurrentHashMap<>())
                                .computeIfAbsent(o.status(), k -> new LongAdder()).increment();
                        byStatus.computeIfAbsent(o.status(), k -> new LongAdder()).increment();
                        if (!kind.expected().contains(o.status()) || !wellFormed(kind, o)) {
                            if (unexpected.size() < 20) {
                                unexpected.add(kind.name() + " -> " + o.status() + " " + o.head().replace("\r\n", " | ")
                                        + " " + o.body().substring(0, Math.min(300, o.body().length())));
                            } else {
                                unexpected.add(kind.name());
                            }
                        }
                    }));
                }
                for (Future<?> f : done) {
                    f.get(10, TimeUnit.MINUTES);
                }
                pool.shutdown();
                long abuseMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                ChatLoad.PhaseResult chatResult = chat.quiesce("abuse", 30);
                long heapAfter = ecm.heapAfterGc();

                Map<String, Object> kinds = new TreeMap<>();
                byKind.forEach((k, m) -> {
                    Map<String, Long> counts = new TreeMap<>();
                    m.forEach((s, n) -> counts.put(s, n.sum()));
                    kinds.put(k, counts);
                });
                Map<String, Long> statuses = new TreeMap<>();
                byStatus.forEach((s, n) -> statuses.put(s, n.sum()));
                Map<String, Object> figures = new LinkedHashMap<>();
                figures.put("bad_requests", total);
                figures.put("concurrency", threads);
                figures.put("duration_ms", abuseMillis);
                figures.put("outcomes", statuses);
                figures.put("outcomes_by_kind", kinds);
                figures.put("unexpected", unexpected.size());
                figures.put("heap_baseline_bytes", heapBefore);
                figures.put("heap_after_bytes", heapAfter);
                figures.put("chat_users", chat.users());
                figures.put("chat", chatResult.figures());
                figures.put("chat_outcomes", chat.outcomeCounts());
                figures.put("chat_failures", chat.failures.size());
                Drill.record("client_abuse", figures);

                assertThat(unexpected).as("bad requests with an undocumented answer").isEmpty();
                assertThat(statuses.keySet()).noneMatch(s -> s.startsWith("5"));
                assertThat(statuses).doesNotContainKey("hang");
                assertThat(heapAfter).as("heap after the barrage (baseline %d)", heapBefore)
                        .isLessThan(heapBefore + Math.max(16L << 20, heapBefore / 4));
                assertThat(chatResult.lost()).isZero();
                assertThat(chatResult.duplicates()).isZero();
                assertThat(chatResult.sent()).isPositive();
                assertThat(chat.outcomeCounts().keySet()).as("the chatting users' answers").containsOnly("200");
                assertThat(chat.failures).isEmpty();
                chat.logout();
            } finally {
                chat.close();
            }
        }
    }
}
