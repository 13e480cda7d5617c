// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Metric values move with real traffic through the real ejabberd, as a Prometheus scrape of both sides shows them:
 * the ECM's /actuator/prometheus and mod_megaphone's /megaphone/metrics on ejabberd's HTTP listener.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=2",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class MetricsTest extends RealEcmTest {

    @LocalManagementPort
    int managementPort;

    private String scrape() throws Exception {
        var response = RealStack.get("http://127.0.0.1:" + managementPort + "/actuator/prometheus");
        assertThat(response.statusCode()).isEqualTo(200);
        return response.body();
    }

    private static String scrapeEjabberd() throws Exception {
        var response = RealStack.get(SharedEjabberd.get().metricsUrl());
        assertThat(response.statusCode()).as(response.body()).isEqualTo(200);
        assertThat(response.headers().firstValue("Content-Type"))
                .hasValue("text/plain; version=0.0.4; charset=utf-8");
        return response.body();
    }

    @Test
    void ejabberdSideCountersSessionsAndProcessMemoryFollowRealBoshTraffic() throws Exception {
        awaitLinks(2);
        String before = scrapeEjabberd();
        double called = RealStack.sample(before, "megaphone_ejabberd_requests_total", "outcome=\"ejabberd\"");
        double answered = RealStack.sample(before, "megaphone_ejabberd_responses_total", "outcome=\"answered\"");
        assertThat(RealStack.sample(before, "megaphone_ejabberd_links")).isGreaterThanOrEqualTo(2);

        String alice = SharedEjabberd.newUser("alice");
        BoshTestClient client = new BoshTestClient(boshUrl(), "localhost").login(alice, SharedEjabberd.PASSWORD, 10);
        CompletableFuture<BoshTestClient.Answer> held = client.poll();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() >= 1);
        // The sessions and their memory are sampled (metrics_cache_time 1 s in private-ejabberd.sh).
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            String during = scrapeEjabberd();
            assertThat(RealStack.sample(during, "megaphone_ejabberd_sessions", "kind=\"bosh\"")).isGreaterThanOrEqualTo(1);
            assertThat(RealStack.sample(during, "megaphone_ejabberd_sessions", "kind=\"c2s\"")).isGreaterThanOrEqualTo(1);
            assertThat(RealStack.sample(during, "megaphone_ejabberd_process_memory_bytes", "kind=\"bosh\""))
                    .isGreaterThan(1000);
            assertThat(RealStack.sample(during, "megaphone_ejabberd_process_memory_bytes", "kind=\"c2s\""))
                    .isGreaterThan(1000);
            assertThat(RealStack.sample(during, "megaphone_ejabberd_workers")).isGreaterThanOrEqualTo(1);
            assertThat(RealStack.sample(during, "megaphone_ejabberd_requests_inflight")).isGreaterThanOrEqualTo(1);
        });
        client.terminate();
        held.get(10, TimeUnit.SECONDS);

        String after = scrapeEjabberd();
        // login: session creation, auth, restart, bind, session, presence, roster... then the poll and terminate
        assertThat(RealStack.sample(after, "megaphone_ejabberd_requests_total", "outcome=\"ejabberd\""))
                .isGreaterThanOrEqualTo(called + 6);
        assertThat(RealStack.sample(after, "megaphone_ejabberd_responses_total", "outcome=\"answered\""))
                .isGreaterThanOrEqualTo(answered + 6);
        assertThat(after).doesNotContain(alice).doesNotContain(client.sid());
        assertWellFormedExposition(after);
    }

    @Test
    void theEjabberdMetricsHandlerAnswersOnlyGetAndHeadAndAlwaysPlainText() throws Exception {
        HttpClient http = HttpClient.newHttpClient();
        URI uri = URI.create(SharedEjabberd.get().metricsUrl());

        HttpResponse<String> head = http.send(HttpRequest.newBuilder(uri).method("HEAD", HttpRequest.BodyPublishers.noBody()).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(head.statusCode()).isEqualTo(200);
        assertThat(head.body()).isEmpty();

        HttpResponse<String> post = http.send(HttpRequest.newBuilder(uri)
                .POST(HttpRequest.BodyPublishers.ofString("x")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(post.statusCode()).isEqualTo(405);
        assertThat(post.headers().firstValue("Allow")).hasValue("GET, HEAD");
        assertThat(post.headers().firstValue("Content-Type")).hasValueSatisfying(ct -> assertThat(ct)
                .startsWith("text/plain"));
        assertThat(post.body()).doesNotContain("<").doesNotContain("megaphone_ejabberd");

        HttpResponse<String> below = http.send(HttpRequest.newBuilder(URI.create(uri + "/x")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(below.statusCode()).isEqualTo(404);
        assertThat(below.body()).doesNotContain("<");
    }

    /** Every sample line belongs to a family announced by HELP and TYPE before it, and its value is a number. */
    private static void assertWellFormedExposition(String text) {
        Pattern sample = Pattern.compile("(megaphone_ejabberd_[a-z_]+)(\\{[a-z_]+=\"[^\"\\\\\\n]*\"(,[a-z_]+=\"[^\"\\\\\\n]*\")*})? "
                + "(-?[0-9]+(\\.[0-9]+)?(e-?[0-9]+)?)");
        Set<String> helped = new TreeSet<>();
        Set<String> typed = new TreeSet<>();
        for (String line : text.lines().toList()) {
            if (line.startsWith("# HELP ")) {
                helped.add(line.split(" ")[2]);
            } else if (line.startsWith("# TYPE ")) {
                assertThat(line).matches("# TYPE megaphone_ejabberd_[a-z_]+ (counter|gauge)");
                typed.add(line.split(" ")[2]);
            } else {
                Matcher m = sample.matcher(line);
                assertThat(m.matches()).as("a sample line: %s", line).isTrue();
                assertThat(helped).contains(m.group(1));
                assertThat(typed).contains(m.group(1));
            }
        }
        assertThat(typed).allMatch(n -> !text.contains("# TYPE " + n + " counter") || n.endsWith("_total"));
    }

    @Test
    void heldGaugeOutcomeCountersAndLinkFramesFollowTraffic() throws Exception {
        await().atMost(Duration.ofSeconds(10)).until(() -> pool.readyLinks() == 2);
        String url = "http://127.0.0.1:" + port + "/http-bind";
        String before = scrape();
        double answeredBefore = RealStack.sample(before, "megaphone_edge_requests_total", "outcome=\"answered\"");
        double badBefore = RealStack.sample(before, "megaphone_edge_requests_total", "outcome=\"bad_request\"");

        String alice = SharedEjabberd.newUser("alice");
        String bob = SharedEjabberd.newUser("bob");
        BoshTestClient aliceClient = new BoshTestClient(url, "localhost").login(alice, SharedEjabberd.PASSWORD, 10);
        BoshTestClient bobClient = new BoshTestClient(url, "localhost").login(bob, SharedEjabberd.PASSWORD, 10);
        CompletableFuture<BoshTestClient.Answer> held = bobClient.poll();
        await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() >= 1);

        String during = scrape();
        assertThat(RealStack.sample(during, "megaphone_edge_held_requests")).isGreaterThanOrEqualTo(1);
        assertThat(RealStack.sample(during, "megaphone_link_up", "link=\"127.0.0.1:")).isEqualTo(1);

        aliceClient.sendChat(bob + "@localhost", "metrics");
        assertThat(held.get(10, TimeUnit.SECONDS).body()).contains("metrics");
        aliceClient.post("<not-bosh/>");
        aliceClient.terminate();
        bobClient.terminate();

        String after = scrape();
        assertThat(RealStack.sample(after, "megaphone_edge_requests_total", "outcome=\"answered\""))
                .isGreaterThanOrEqualTo(answeredBefore + 12);
        assertThat(RealStack.sample(after, "megaphone_edge_requests_total", "outcome=\"bad_request\""))
                .isEqualTo(badBefore + 1);
        assertThat(RealStack.sample(after, "megaphone_edge_session_creations_total"))
                .isGreaterThanOrEqualTo(2);
        assertThat(RealStack.sample(after, "megaphone_bosh_terminates_total", "condition=\"none\""))
                .isGreaterThanOrEqualTo(2);
        double requestsOut = after.lines()
                .filter(l -> l.startsWith("megaphone_link_frames_total{") && l.contains("direction=\"out\"")
                        && l.contains("type=\"request\""))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).sum();
        assertThat(requestsOut).isGreaterThanOrEqualTo(12);
        assertThat(after).contains("megaphone_edge_request_duration_seconds_bucket");
        assertThat(after).doesNotContain(alice).doesNotContain(bobClient.sid());
    }

    @Test
    void everyMetricTheGrafanaDashboardQueriesIsInARealScrapeOfTheEcmOrOfEjabberdAfterTraffic() throws Exception {
        awaitLinks(2);
        String alice = SharedEjabberd.newUser("alice");
        BoshTestClient client = new BoshTestClient(boshUrl(), "localhost").login(alice, SharedEjabberd.PASSWORD, 10);
        client.terminate();
        System.gc(); // the ECM runs in this JVM: jvm_gc_pause_seconds exists from its first GC on
        String scrape = scrape() + scrapeEjabberd();

        JsonNode dashboard = JsonMapper.builder().build().readTree(Path.of("docs/grafana/megaphone-dashboard.json")
                .toFile());
        Set<String> queried = new TreeSet<>();
        Pattern metric = Pattern.compile("\\b((?:megaphone|jvm|process|system)_[a-z0-9_]+)");
        for (JsonNode expr : dashboard.findValues("expr")) {
            Matcher names = metric.matcher(expr.asString());
            while (names.find()) {
                queried.add(names.group(1));
            }
        }
        for (JsonNode query : dashboard.findValues("query")) {
            if (query.isString()) {
                Matcher names = metric.matcher(query.asString());
                while (names.find()) {
                    queried.add(names.group(1));
                }
            }
        }
        assertThat(queried).as("the dashboard queries megaphone's meters").anyMatch(n -> n.startsWith("megaphone_"))
                .anyMatch(n -> n.startsWith("megaphone_ejabberd_")).hasSizeGreaterThan(10);
        for (String name : queried) {
            assertThat(scrape.lines().anyMatch(line -> line.startsWith(name + "{") || line.startsWith(name + " ")))
                    .as("%s, queried by the dashboard, is in the scrape", name).isTrue();
        }
    }
}
