// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import static io.megaphone.helm.HelmChart.at;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.Yaml;

/**
 * The chart's alert rules, as rendered (ci/prometheusrule-values.yaml), run through Prometheus's own rule checker and
 * rule tester, {@code promtool} (Debian's prometheus package; scripts/install-deps.sh installs it). The synthetic
 * series and expected alerts are in src/test/resources/alerts/alerts-test.yaml. Annotations are left out of the
 * rules promtool sees (HelmChartTest checks the runbook URLs): the tests are about when each alert fires.
 */
class AlertRulesTest {

    private static final Path TESTS = Path.of("src/test/resources/alerts/alerts-test.yaml");

    private static List<Map<String, Object>> groups;

    @BeforeAll
    static void render() {
        Map<String, Object> rule = HelmChart.template(HelmChart.CHART.resolve("ci/prometheusrule-values.yaml"))
                .one("PrometheusRule");
        groups = at(rule, "spec", "groups");
    }

    @Test
    void promtoolChecksTheRulesAndEveryAlertFiresWhenItShouldAndStaysQuietOtherwise(@TempDir Path dir)
            throws IOException, InterruptedException {
        List<Map<String, Object>> stripped = new ArrayList<>();
        for (Map<String, Object> group : groups) {
            List<Map<String, Object>> rules = new ArrayList<>();
            for (Map<String, Object> rule : (List<Map<String, Object>>) group.get("rules")) {
                Map<String, Object> copy = new LinkedHashMap<>(rule);
                copy.remove("annotations");
                rules.add(copy);
            }
            stripped.add(Map.of("name", group.get("name"), "rules", rules));
        }
        DumperOptions options = new DumperOptions();
        options.setDefaultFlowStyle(DumperOptions.FlowStyle.BLOCK);
        Files.writeString(dir.resolve("rules.yaml"), new Yaml(options).dump(Map.of("groups", stripped)));
        Files.copy(TESTS, dir.resolve("alerts-test.yaml"));

        assertPromtool(dir, "check", "rules", "rules.yaml");
        assertPromtool(dir, "test", "rules", "alerts-test.yaml");
    }

    @Test
    void everyAlertHasACaseWhereItFiresAndOneWhereItStaysQuiet() {
        Set<String> alerts = new LinkedHashSet<>();
        for (Map<String, Object> group : groups) {
            for (Map<String, Object> rule : (List<Map<String, Object>>) group.get("rules")) {
                alerts.add((String) rule.get("alert"));
            }
        }
        Set<String> fires = new LinkedHashSet<>();
        Set<String> quiet = new LinkedHashSet<>();
        Map<String, Object> tests = HelmChart.load(TESTS);
        for (Map<String, Object> test : (List<Map<String, Object>>) tests.get("tests")) {
            for (Map<String, Object> alertTest : (List<Map<String, Object>>) test.get("alert_rule_test")) {
                List<Object> expected = (List<Object>) alertTest.get("exp_alerts");
                (expected == null || expected.isEmpty() ? quiet : fires).add((String) alertTest.get("alertname"));
            }
        }

        assertThat(alerts).hasSize(15);
        assertThat(fires).as("alerts tested firing").containsExactlyInAnyOrderElementsOf(alerts);
        assertThat(quiet).as("alerts tested quiet").containsExactlyInAnyOrderElementsOf(alerts);
    }

    private static void assertPromtool(Path dir, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("promtool"));
        command.addAll(List.of(args));
        Process process;
        try {
            process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new AssertionError("promtool not found: install Debian's prometheus package (scripts/install-deps.sh)",
                    e);
        }
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).as("promtool finished").isTrue();
        assertThat(process.exitValue()).as("%s:%n%s", String.join(" ", command), output).isZero();
    }
}
