// SPDX-License-Identifier: Apache-2.0
package io.megaphone.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;

/**
 * Every BOSH request the ECM receives ends with exactly one outcome: the {@code megaphone_edge_requests_total}
 * counters add up to the requests sent, over a mix of answered, client gone before the body was in, client gone
 * while held, a body that timed out (408), too large, bad request and rejected.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"management.server.port=0", "megaphone.link.links-per-node=1",
                "megaphone.edge.request-read-timeout=1s",
                "megaphone.edge.admission.sessions-per-second=1", "megaphone.edge.admission.sessions-burst=3",
                RealEcmTest.MANY_SESSIONS_PER_CLIENT, RealEcmTest.MANY_SESSIONS_BURST})
class OutcomeSumTest extends RealEcmTest {

    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final Pattern OUTCOME =
            Pattern.compile("^megaphone_edge_requests_total\\{.*outcome=\"([a-z_]+)\".*} ([0-9.eE+]+)$");

    @LocalManagementPort
    int managementPort;

    private Map<String, Double> outcomes() throws Exception {
        Map<String, Double> byOutcome = new TreeMap<>();
        String scrape = RealStack.get("http://127.0.0.1:" + managementPort + "/actuator/prometheus").body();
        for (String line : scrape.lines().toList()) {
            Matcher m = OUTCOME.matcher(line);
            if (m.matches()) {
                byOutcome.merge(m.group(1), Double.parseDouble(m.group(2)), Double::sum);
            }
        }
        return byOutcome;
    }

    private static double sum(Map<String, Double> outcomes) {
        return outcomes.values().stream().mapToDouble(Double::doubleValue).sum();
    }

    private static double delta(Map<String, Double> after, Map<String, Double> before, String outcome) {
        return after.getOrDefault(outcome, 0.0) - before.getOrDefault(outcome, 0.0);
    }

    private HttpResponse<String> post(String contentType, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(boshUrl())).POST(HttpRequest.BodyPublishers.ofString(body))
                .header("Content-Type", contentType).timeout(Duration.ofSeconds(20)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** Writes a request head (and part of a body) on a connection of its own. */
    private Socket partial(String head, String body) throws Exception {
        Socket socket = new Socket("127.0.0.1", port);
        OutputStream out = socket.getOutputStream();
        out.write(head.getBytes(StandardCharsets.US_ASCII));
        out.write(body.getBytes(StandardCharsets.UTF_8));
        out.flush();
        return socket;
    }

    private static String head(int contentLength) {
        return "POST /http-bind HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
                + "Content-Length: " + contentLength + "\r\n\r\n";
    }

    @Test
    void theOutcomeCountersAddUpToTheRequestsReceived() throws Exception {
        awaitLinks(1);
        Map<String, Double> before = outcomes();
        int sent = 0;

        // answered: session creations (the first 3 fit the burst), the next ones rejected by the session rate
        String sid = null;
        int rejected = 0;
        for (int i = 0; i < 6; i++) {
            HttpResponse<String> answer = post("text/xml; charset=utf-8", RealStack.SESSION_CREATE.formatted(9000 + i));
            sent++;
            if (answer.statusCode() == 503) {
                rejected++;
            } else if (sid == null) {
                Matcher m = Pattern.compile("sid='([^']+)'").matcher(answer.body());
                sid = m.find() ? m.group(1) : null;
            }
        }
        assertThat(rejected).isPositive();
        assertThat(sid).isNotNull();

        // bad request: not a BOSH body, and not a BOSH content type; too large: over the limit by its length
        assertThat(post("text/xml; charset=utf-8", "<notbosh/>").statusCode()).isEqualTo(400);
        assertThat(post("image/png", "<body/>").statusCode()).isEqualTo(415);
        sent += 2;
        try (Socket socket = partial(head(300_000), "")) { // on a connection of its own: the ECM closes it
            assertThat(new String(socket.getInputStream().readNBytes(12), StandardCharsets.US_ASCII))
                    .isEqualTo("HTTP/1.1 413");
        }
        sent++;

        // client gone before the body was in: half a body, then the connection closes
        int heldBefore = pool.inflight();
        try (Socket socket = partial(head(200), "<body rid='1' ")) {
            Thread.sleep(200); // the head is read and the handler runs before the client leaves
        }
        sent++;

        // client gone while held: an empty poll of the live session is held upstream, then the client leaves
        String poll = "<body rid='9001' sid='" + sid + "' xmlns='http://jabber.org/protocol/httpbind'/>";
        try (Socket socket = partial(head(poll.getBytes(StandardCharsets.UTF_8).length), poll)) {
            await().atMost(Duration.ofSeconds(5)).until(() -> pool.inflight() == heldBefore + 1);
        }
        sent++;

        // a body that never completes: 408 after megaphone.edge.request-read-timeout, counted as bad_request only
        try (Socket socket = partial(head(200), "<body rid='2' ")) {
            InputStream in = socket.getInputStream();
            String answer = new String(in.readNBytes(12), StandardCharsets.US_ASCII);
            assertThat(answer).isEqualTo("HTTP/1.1 408");
        }
        sent++;

        int expected = sent;
        await().atMost(Duration.ofSeconds(10)).until(() -> sum(outcomes()) - sum(before) >= expected);
        Thread.sleep(500); // a double count would come now
        Map<String, Double> after = outcomes();
        assertThat(sum(after) - sum(before)).as("outcomes %s -> %s", before, after).isEqualTo(expected);
        assertThat(delta(after, before, "client_gone")).isEqualTo(2);
        assertThat(delta(after, before, "bad_request")).isEqualTo(3);
        assertThat(delta(after, before, "too_large")).isEqualTo(1);
        assertThat(delta(after, before, "rejected")).isEqualTo(rejected);
        assertThat(delta(after, before, "answered")).isEqualTo(6 - rejected);
    }
}
