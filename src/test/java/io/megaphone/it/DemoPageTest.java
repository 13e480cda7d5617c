// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The demo page, served by the edge's own routes ({@code DemoPage}) from {@code classpath:/static/demo/}, on a
 * real ECM process: it is served, and a flood of random paths gets short plain 404s while the heap stays flat (nothing is cached per name).
 */
class DemoPageTest {

    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    private static HttpResponse<String> get(String url) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(20)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void theDemoPageIsServedAndAFloodOfRandomPathsLeavesTheHeapFlat() throws Exception {
        try (EcmProcess ecm = EcmProcess.start(SharedEjabberd.get())) {
            String base = "http://127.0.0.1:" + ecm.port;
            HttpResponse<String> index = get(base + "/demo/");
            assertThat(index.statusCode()).isEqualTo(200);
            assertThat(index.headers().firstValue("content-type").orElse("")).startsWith("text/html");
            assertThat(index.body()).contains("<script");
            assertThat(get(base + "/demo/index.html").body()).isEqualTo(index.body());
            assertThat(index.body()).as("the transports offered").contains("id=\"transport-bosh\"")
                    .contains("id=\"transport-websocket\"");
            HttpResponse<String> script = get(base + "/demo/demo.js");
            assertThat(script.statusCode()).isEqualTo(200);
            assertThat(script.body()).contains("new WebSocket(url, 'xmpp')"); // BrowserClientTest chats over it

            flood(base, 1_000, 1); // warm-up: classes, JIT, buffers
            long before = ecm.heapAfterGc();
            List<String> statuses = flood(base, 8_000, 2);
            long after = ecm.heapAfterGc();
            assertThat(statuses).containsOnly("404 text/plain");
            // Remembering each name (the old DemoFiles cache, or a class-path lookup per name, which the JDK's class
            // loader caches) keeps 4,000 names of 1 KB here: over 8 MB.
            assertThat(after - before).as("heap growth after 8,000 random paths (before: %d B)", before)
                    .isLessThan(2L << 20);
        }
    }

    /** GETs {@code count} random paths, half under /demo/, from 8 threads; the distinct "status type" seen. */
    private static List<String> flood(String base, int count, long seed) throws Exception {
        ExecutorService threads = Executors.newFixedThreadPool(8);
        try {
            List<Future<String>> answers = new ArrayList<>();
            Random random = new Random(seed);
            for (int i = 0; i < count; i++) {
                String name = Long.toHexString(random.nextLong()) + "x".repeat(1_000) + Long.toHexString(random.nextLong());
                String path = (i % 2 == 0 ? "/demo/" : "/") + name;
                answers.add(threads.submit(() -> {
                    HttpResponse<String> answer = get(base + path);
                    return answer.statusCode() + " " + answer.headers().firstValue("content-type").orElse("")
                            .replaceAll(";.*", "");
                }));
            }
            List<String> seen = new ArrayList<>();
            for (Future<String> answer : answers) {
                String status = answer.get(60, TimeUnit.SECONDS);
                if (!seen.contains(status)) {
                    seen.add(status);
                }
            }
            return seen;
        } finally {
            threads.shutdownNow();
        }
    }
}
