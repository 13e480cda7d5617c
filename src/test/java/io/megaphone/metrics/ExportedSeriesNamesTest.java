// SPDX-License-Identifier: Apache-2.0
package io.megaphone.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.MegaphoneApplication;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * The Prometheus series names the ECM exports, pinned: the dashboard, the chart's alerts and docs/metrics.md use them,
 * so a renamed series (say, a base unit passed to a builder that adds it to the name) must be a deliberate change.
 * The ECM runs with one link to a closed port: every meter is registered, none needs ejabberd.
 */
class ExportedSeriesNamesTest {

    /** Every megaphone_* series name of a scrape, without labels. */
    private static final Set<String> PINNED = new TreeSet<>(Set.of(
            "megaphone_admission_rejected_total",
            "megaphone_bosh_terminates_total",
            "megaphone_edge_connections_active",
            "megaphone_edge_connections_closed_total",
            "megaphone_edge_connections_opened_total",
            "megaphone_edge_held_requests",
            "megaphone_edge_received_bytes_total",
            "megaphone_edge_request_duration_seconds_bucket",
            "megaphone_edge_request_duration_seconds_count",
            "megaphone_edge_request_duration_seconds_max",
            "megaphone_edge_request_duration_seconds_sum",
            "megaphone_edge_requests_total",
            "megaphone_edge_sent_bytes_total",
            "megaphone_edge_session_creations_total",
            "megaphone_edge_session_ends_total",
            "megaphone_edge_websocket_closes_total",
            "megaphone_edge_websocket_credit_stalls_total",
            "megaphone_edge_websocket_open_streams",
            "megaphone_edge_websocket_opens_total",
            "megaphone_edge_websocket_received_bytes_total",
            "megaphone_edge_websocket_sent_bytes_total",
            "megaphone_link_capacity_requests",
            "megaphone_link_connects_total",
            "megaphone_link_frames_total",
            "megaphone_link_inflight",
            "megaphone_link_resends_total",
            "megaphone_link_rtt_seconds_bucket",
            "megaphone_link_rtt_seconds_count",
            "megaphone_link_rtt_seconds_max",
            "megaphone_link_rtt_seconds_sum",
            "megaphone_link_stalls_total",
            "megaphone_link_up"));

    private static ConfigurableApplicationContext ecm;
    private static Set<String> exported;

    @BeforeAll
    static void scrape() throws Exception {
        int closedPort;
        try (ServerSocket socket = new ServerSocket(0)) {
            closedPort = socket.getLocalPort();
        }
        ecm = new SpringApplicationBuilder(MegaphoneApplication.class).run("--server.port=0",
                "--management.server.port=0", "--megaphone.link.secret=series-test-secret-series-test-secret",
                "--megaphone.link.nodes=127.0.0.1:" + closedPort, "--megaphone.link.links-per-node=1");
        String port = ecm.getEnvironment().getProperty("local.management.port");
        HttpResponse<String> response = HttpClient.newHttpClient().send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/actuator/prometheus")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(200);
        exported = response.body().lines().filter(l -> l.startsWith("megaphone_"))
                .map(l -> l.split("[{ ]", 2)[0]).collect(Collectors.toCollection(TreeSet::new));
    }

    @AfterAll
    static void stop() {
        if (ecm != null) {
            ecm.close();
        }
    }

    @Test
    void theExportedSeriesNamesAreThePinnedOnes() {
        assertThat(exported).containsExactlyElementsOf(PINNED);
    }

    /** A declared base unit is the one in the exported name: passing it to a builder renames nothing. */
    @Test
    void everyDeclaredBaseUnitIsAlreadyInTheExportedName() {
        for (MegaphoneMeters meter : MegaphoneMeters.values()) {
            String name = meter.meterName().replace('.', '_');
            String unit = meter.baseUnit();
            String family = unit == null || name.endsWith("_" + unit) ? name : name + "_" + unit;
            assertThat(exported).as("%s (base unit %s) is exported as %s*", meter, unit, family)
                    .anyMatch(series -> Arrays.asList(family, family + "_total", family + "_bucket").contains(series));
        }
    }
}
