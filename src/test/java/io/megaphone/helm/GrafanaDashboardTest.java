// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import static io.megaphone.helm.HelmChart.at;
import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.metrics.MegaphoneMeters;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The Grafana dashboard: one file in two places, valid JSON, and queries over meters that exist. */
class GrafanaDashboardTest {

    private static final Path DOCS_COPY = Path.of("docs/grafana/megaphone-dashboard.json");
    private static final Path CHART_COPY = HelmChart.CHART.resolve("files/megaphone-dashboard.json");
    private static final Path EJABBERD_HANDLER = Path.of("ejabberd/mod_megaphone/src/mod_megaphone_prometheus.erl");
    private static final String EJABBERD_PREFIX = "megaphone_ejabberd_";
    private static final Pattern MEGAPHONE_METRIC = Pattern.compile("\\bmegaphone_[a-z_]+");

    @Test
    void theChartShipsTheSameDashboardAsDocs() throws IOException {
        assertThat(Files.readString(CHART_COPY)).as("%s must be a copy of %s", CHART_COPY, DOCS_COPY)
                .isEqualTo(Files.readString(DOCS_COPY));
    }

    @Test
    void everyPanelQueriesTheDatasourceVariable() throws IOException {
        Map<String, Object> dashboard = dashboard();
        List<Map<String, Object>> variables = at(dashboard, "templating", "list");

        assertThat(variables).anySatisfy(v -> {
            assertThat(v.get("name")).isEqualTo("DS_PROMETHEUS");
            assertThat(v.get("type")).isEqualTo("datasource");
        });
        assertThat(panels(dashboard)).isNotEmpty().allSatisfy(panel -> {
            assertThat((String) at(panel, "datasource", "uid")).isEqualTo("${DS_PROMETHEUS}");
            assertThat((List<Object>) at(panel, "targets")).isNotEmpty();
        });
    }

    @Test
    void panelsCoverHeldRequestsOutcomesLatencyLinksAdmissionTerminatesAndHeapPerHeldRequest() throws IOException {
        List<String> exprs = expressions(dashboard());

        assertThat(exprs).anyMatch(e -> e.contains("megaphone_edge_held_requests"))
                .anyMatch(e -> e.contains("sum by (outcome) (rate(megaphone_edge_requests_total"))
                .anyMatch(e -> e.contains("histogram_quantile(0.99") && e.contains("megaphone_edge_request_duration_seconds_bucket"))
                .anyMatch(e -> e.contains("megaphone_link_up"))
                .anyMatch(e -> e.contains("megaphone_link_inflight"))
                .anyMatch(e -> e.contains("megaphone_link_rtt_seconds"))
                .anyMatch(e -> e.contains("megaphone_link_connects_total"))
                .anyMatch(e -> e.contains("megaphone_link_frames_total"))
                .anyMatch(e -> e.contains("megaphone_admission_rejected_total"))
                .anyMatch(e -> e.contains("megaphone_bosh_terminates_total"))
                .anyMatch(e -> e.contains("jvm_memory_used_bytes{area=\"heap\"") && !e.contains("/"))
                .anyMatch(e -> e.contains("jvm_memory_used_bytes{area=\"heap\"") && e.contains("/")
                        && e.contains("megaphone_edge_held_requests"));
    }

    @Test
    void panelsCoverWebSocketStreamsHandshakesClosesCreditStallsAndBytes() throws IOException {
        Map<String, Object> dashboard = dashboard();
        List<Map<String, Object>> all = at(dashboard, "panels");
        assertThat(all).anyMatch(p -> "row".equals(p.get("type")) && ((String) p.get("title")).contains("WebSocket"));

        assertThat(expressions(dashboard))
                .anyMatch(e -> e.contains("megaphone_edge_websocket_open_streams{"))
                .anyMatch(e -> e.contains("sum by (result) (rate(megaphone_edge_websocket_opens_total{"))
                .anyMatch(e -> e.contains("sum by (reason) (rate(megaphone_edge_websocket_closes_total{"))
                .anyMatch(e -> e.contains("sum by (direction) (rate(megaphone_edge_websocket_credit_stalls_total{"))
                .anyMatch(e -> e.contains("rate(megaphone_edge_websocket_received_bytes_total{"))
                .anyMatch(e -> e.contains("rate(megaphone_edge_websocket_sent_bytes_total{"))
                .anyMatch(e -> e.contains("megaphone_ejabberd_streams{"))
                .anyMatch(e -> e.contains("sum by (result) (rate(megaphone_ejabberd_stream_opens_total{"))
                .anyMatch(e -> e.contains("sum by (reason) (rate(megaphone_ejabberd_stream_closes_total{"));
    }

    @Test
    void noTwoPanelsOverlap() throws IOException {
        List<Map<String, Object>> all = at(dashboard(), "panels");
        for (int i = 0; i < all.size(); i++) {
            for (int j = i + 1; j < all.size(); j++) {
                Map<String, Object> a = at(all.get(i), "gridPos");
                Map<String, Object> b = at(all.get(j), "gridPos");
                boolean apart = x(a) + w(a) <= x(b) || x(b) + w(b) <= x(a) || y(a) + h(a) <= y(b) || y(b) + h(b) <= y(a);
                assertThat(apart).as("panels %s and %s overlap", all.get(i).get("title"), all.get(j).get("title"))
                        .isTrue();
            }
        }
    }

    private static int x(Map<String, Object> grid) {
        return (Integer) grid.get("x");
    }

    private static int y(Map<String, Object> grid) {
        return (Integer) grid.get("y");
    }

    private static int w(Map<String, Object> grid) {
        return (Integer) grid.get("w");
    }

    private static int h(Map<String, Object> grid) {
        return (Integer) grid.get("h");
    }

    @Test
    void onePanelShowsHeldRequestsAgainstTheLinksCapacityAndTheRefusalsWhenItIsFull() throws IOException {
        assertThat(panels(dashboard())).anySatisfy(panel -> {
            List<String> exprs = ((List<Map<String, Object>>) panel.get("targets")).stream()
                    .map(t -> (String) t.get("expr")).toList();
            assertThat(exprs).anyMatch(e -> e.contains("megaphone_edge_held_requests{"))
                    .anyMatch(e -> e.contains("megaphone_link_capacity_requests{"))
                    .anyMatch(e -> e.contains("megaphone_admission_rejected_total{") && e.contains("reason=\"link_capacity\""));
        });
    }

    @Test
    void theEjabberdRowCoversLinksInflightWorkersOutcomesResendsRefusalsSessionsAndProcessMemory() throws IOException {
        Map<String, Object> dashboard = dashboard();
        List<Map<String, Object>> all = at(dashboard, "panels");
        assertThat(all).anyMatch(p -> "row".equals(p.get("type")) && ((String) p.get("title")).startsWith("ejabberd"));
        List<String> exprs = expressions(dashboard);

        assertThat(exprs).anyMatch(e -> e.contains("megaphone_ejabberd_links{"))
                .anyMatch(e -> e.contains("megaphone_ejabberd_requests_inflight"))
                .anyMatch(e -> e.contains("megaphone_ejabberd_workers"))
                .anyMatch(e -> e.contains("sum by (outcome) (rate(megaphone_ejabberd_requests_total"))
                .anyMatch(e -> e.contains("sum by (outcome) (rate(megaphone_ejabberd_responses_total"))
                .anyMatch(e -> e.contains("megaphone_ejabberd_requests_total{outcome=\"deduplicated\""))
                .anyMatch(e -> e.contains("sum by (reason) (rate(megaphone_ejabberd_links_refused_total"))
                .anyMatch(e -> e.contains("megaphone_ejabberd_sessions{"))
                .anyMatch(e -> e.contains("megaphone_ejabberd_process_memory_bytes{") && !e.contains("/"))
                .anyMatch(e -> e.contains("megaphone_ejabberd_process_memory_bytes{") && e.contains("/")
                        && e.contains("megaphone_ejabberd_sessions{"));
        // The ejabberd panels select ejabberd's own scrape job, not the ECM's.
        assertThat(exprs).filteredOn(e -> e.contains("megaphone_ejabberd_"))
                .allMatch(e -> e.contains("$ejabberd_job") && !e.contains("\"$job\""));
    }

    @Test
    void everyEjabberdMetricInAQueryIsServedByModMegaphoneAndDocumented() throws IOException {
        String handler = Files.readString(EJABBERD_HANDLER);
        String metricsDoc = Files.readString(Path.of("docs/metrics.md"));
        List<String> queried = new ArrayList<>();
        for (String expr : expressions(dashboard())) {
            Matcher m = MEGAPHONE_METRIC.matcher(expr);
            while (m.find()) {
                if (m.group().startsWith(EJABBERD_PREFIX)) {
                    queried.add(m.group());
                }
            }
        }
        assertThat(queried).isNotEmpty();
        for (String metric : queried) {
            assertThat(handler).as("%s is a family of %s", metric, EJABBERD_HANDLER)
                    .contains("?PREFIX \"" + metric.substring(EJABBERD_PREFIX.length()) + "\">>");
            assertThat(metricsDoc).as("%s is documented in docs/metrics.md", metric).contains("`" + metric + "`");
        }
    }

    @Test
    void everyMegaphoneMetricInAQueryIsAMeterOfMegaphoneMeters() throws IOException {
        List<String> prefixes = new ArrayList<>(Arrays.stream(MegaphoneMeters.values())
                .map(m -> m.meterName().replace('.', '_')).toList());

        for (String expr : expressions(dashboard())) {
            Matcher m = MEGAPHONE_METRIC.matcher(expr);
            while (m.find()) {
                String metric = m.group();
                if (metric.startsWith(EJABBERD_PREFIX)) {
                    continue; // served by mod_megaphone: see the test below and MetricsTest
                }
                assertThat(prefixes).as("%s (in %s) is not a meter of MegaphoneMeters", metric, expr)
                        .anyMatch(prefix -> metric.equals(prefix) || metric.startsWith(prefix + "_"));
            }
        }
    }

    private static Map<String, Object> dashboard() throws IOException {
        // JSON is YAML: SnakeYAML reads it without another library.
        return HelmChart.yaml().load(Files.readString(DOCS_COPY));
    }

    private static List<Map<String, Object>> panels(Map<String, Object> dashboard) {
        List<Map<String, Object>> panels = at(dashboard, "panels");
        return panels.stream().filter(p -> !"row".equals(p.get("type"))).toList();
    }

    private static List<String> expressions(Map<String, Object> dashboard) {
        List<String> exprs = new ArrayList<>();
        for (Map<String, Object> panel : panels(dashboard)) {
            List<Map<String, Object>> targets = at(panel, "targets");
            targets.forEach(t -> exprs.add((String) t.get("expr")));
        }
        return exprs;
    }
}
