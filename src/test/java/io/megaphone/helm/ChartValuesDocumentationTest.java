// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * In each chart (the ECM's and ejabberd's), every value in values.yaml has a {@code ## @param} comment, every
 * {@code @param} names a real value, and the chart README's "Parameters" tables list the same parameters in the
 * same order.
 */
class ChartValuesDocumentationTest {

    private static final Pattern PARAM = Pattern.compile("^\\s*## @param (\\S+)(?: \\[(\\w+)])? (.+)$");
    private static final Pattern README_ROW = Pattern.compile("^\\| `([^`]+)` \\|.*\\|$");

    record Param(String path, boolean wholeObject) {
    }

    @ParameterizedTest
    @ValueSource(strings = {"helm/megaphone", "helm/megaphone-ejabberd"})
    void everyValueIsDocumentedWithAnAtParamLine(Path chart) throws IOException {
        List<Param> params = params(chart);
        List<String> leaves = new ArrayList<>();
        collectLeaves("", HelmChart.load(chart.resolve("values.yaml")), leaves);

        assertThat(leaves).isNotEmpty().allSatisfy(leaf -> assertThat(params)
                .as("values.yaml: %s has no '## @param %s <description>' line", leaf, leaf)
                .anyMatch(p -> p.path().equals(leaf) || p.wholeObject() && leaf.startsWith(p.path() + ".")));
    }

    @ParameterizedTest
    @ValueSource(strings = {"helm/megaphone", "helm/megaphone-ejabberd"})
    void everyAtParamNamesAValue(Path chart) throws IOException {
        Map<String, Object> values = HelmChart.load(chart.resolve("values.yaml"));

        assertThat(params(chart)).allSatisfy(param -> {
            Object node = values;
            for (String key : param.path().split("\\.")) {
                assertThat(node).as("@param %s: no such value in values.yaml", param.path()).isInstanceOf(Map.class);
                Map<?, ?> map = (Map<?, ?>) node;
                assertThat(map.containsKey(key)).as("@param %s: no such value in values.yaml", param.path()).isTrue();
                node = map.get(key);
            }
        });
    }

    @ParameterizedTest
    @ValueSource(strings = {"helm/megaphone", "helm/megaphone-ejabberd"})
    void theReadmeTableFollowsValuesYaml(Path chart) throws IOException {
        List<String> documented = new ArrayList<>();
        boolean inParameters = false;
        for (String line : Files.readAllLines(chart.resolve("README.md"))) {
            if (line.startsWith("## ")) {
                inParameters = line.equals("## Parameters");
            }
            Matcher m = README_ROW.matcher(line);
            if (inParameters && m.matches()) {
                documented.add(m.group(1));
            }
        }

        assertThat(documented).as("README.md parameter rows, in values.yaml order")
                .containsExactlyElementsOf(params(chart).stream().map(Param::path).toList());
    }

    private static List<Param> params(Path chart) throws IOException {
        List<Param> params = new ArrayList<>();
        for (String line : Files.readAllLines(chart.resolve("values.yaml"))) {
            Matcher m = PARAM.matcher(line);
            if (m.matches()) {
                params.add(new Param(m.group(1), "object".equals(m.group(2))));
            }
        }
        return params;
    }

    /** Leaves are scalars, lists and empty maps; a non-empty map is walked into. */
    private static void collectLeaves(String prefix, Map<?, ?> map, List<String> leaves) {
        map.forEach((key, value) -> {
            String path = prefix.isEmpty() ? key.toString() : prefix + "." + key;
            if (value instanceof Map<?, ?> child && !child.isEmpty()) {
                collectLeaves(path, child, leaves);
            } else {
                leaves.add(path);
            }
        });
    }
}
