// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.helm.HelmChart.Rendered;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import tools.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper.Builder;
import java.lang.reflect.Method;

/**
 * Every rendered variant of the chart (the defaults and each {@code ci/*-values.yaml}) is checked as Kubernetes
 * objects, not as text, by two maintained validators:
 * <ul>
 * <li>the Kubernetes API's OpenAPI schema of each object's apiVersion and kind (and prometheus-operator's CRDs):
 * types, required fields, enums, with kubernetes-models from the npm registry (src/test/resources/k8s-validate,
 * installed once under target/k8s-validate);</li>
 * <li>strict parsing into fabric8's Kubernetes model classes: a field the API does not know (a misspelt or
 * misindented key, which the schemas let through) is an error, and so is a string where the API wants a number.</li>
 * </ul>
 * An object whose kind neither knows fails too.
 */
class KubernetesManifestsTest {

    private static final Path SOURCE = Path.of("src/test/resources/k8s-validate");
    private static final Path INSTALL_DIR = Path.of("target/k8s-validate");
    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** fabric8's Jackson 2 binding, without coercing "80" into 80. */
    private static final ObjectMapper STRICT = ((Builder) com.fasterxml.jackson.databind.json.JsonMapper.builder()
            .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)).build();

    private static final Map<String, Class<?>> MODELS = Map.ofEntries(
            Map.entry("v1/ConfigMap", io.fabric8.kubernetes.api.model.ConfigMap.class),
            Map.entry("v1/Secret", io.fabric8.kubernetes.api.model.Secret.class),
            Map.entry("v1/Service", io.fabric8.kubernetes.api.model.Service.class),
            Map.entry("v1/ServiceAccount", io.fabric8.kubernetes.api.model.ServiceAccount.class),
            Map.entry("apps/v1/Deployment", io.fabric8.kubernetes.api.model.apps.Deployment.class),
            Map.entry("apps/v1/StatefulSet", io.fabric8.kubernetes.api.model.apps.StatefulSet.class),
            Map.entry("policy/v1/PodDisruptionBudget", io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget.class),
            Map.entry("autoscaling/v2/HorizontalPodAutoscaler",
                    io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler.class),
            Map.entry("networking.k8s.io/v1/NetworkPolicy", io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy.class),
            Map.entry("networking.k8s.io/v1/Ingress", io.fabric8.kubernetes.api.model.networking.v1.Ingress.class),
            Map.entry("monitoring.coreos.com/v1/ServiceMonitor",
                    io.fabric8.openshift.api.model.monitoring.v1.ServiceMonitor.class),
            Map.entry("monitoring.coreos.com/v1/PrometheusRule",
                    io.fabric8.openshift.api.model.monitoring.v1.PrometheusRule.class));

    @BeforeAll
    static void installValidator() throws Exception {
        Files.createDirectories(INSTALL_DIR);
        for (String file : List.of("package.json", "validate.mjs")) {
            Files.copy(SOURCE.resolve(file), INSTALL_DIR.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        }
        if (Files.isDirectory(INSTALL_DIR.resolve("node_modules/kubernetes-models"))
                && Files.isDirectory(INSTALL_DIR.resolve("node_modules/@kubernetes-models/prometheus-operator"))) {
            return;
        }
        Result install = run(INSTALL_DIR, Duration.ofMinutes(5), "npm", "install", "--no-audit", "--no-fund",
                "--no-save", "--loglevel=error");
        assertThat(install.exitCode())
                .as("npm install in %s failed (needs Node.js/npm and the npm registry):%n%s", INSTALL_DIR, install.output())
                .isZero();
    }

    /** Both charts: the ECM's (a Deployment) and ejabberd's (a StatefulSet), each with its defaults and ci files. */
    static Stream<Arguments> valueSets() {
        List<Arguments> sets = new ArrayList<>();
        sets.add(Arguments.of("megaphone defaults", "megaphone", null));
        for (Path file : HelmChart.ciValuesFiles()) {
            sets.add(Arguments.of("megaphone " + file.getFileName(), "megaphone", file));
        }
        sets.add(Arguments.of("megaphone-ejabberd defaults", "megaphone-ejabberd", null));
        for (Path file : EjabberdChart.ciValuesFiles()) {
            sets.add(Arguments.of("megaphone-ejabberd " + file.getFileName(), "megaphone-ejabberd", file));
        }
        return sets.stream();
    }

    private static Rendered render(String chart, Path valuesFile) {
        return chart.equals("megaphone") ? HelmChart.template(valuesFile) : EjabberdChart.template(valuesFile);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyRenderedObjectIsValidAgainstTheKubernetesSchemas(String name, String chart, Path valuesFile,
            @TempDir Path tempDir) throws Exception {
        Rendered rendered = render(chart, valuesFile);
        assertThat(rendered.documents()).isNotEmpty();

        Result result = validate(rendered.documents(), tempDir);

        assertThat(result.output()).as("kubernetes-models on %s", name)
                .doesNotContain("invalid ")
                .contains(chart.equals("megaphone") ? "ok apps/v1 Deployment " : "ok apps/v1 StatefulSet ");
        assertThat(result.output().lines().filter(l -> l.startsWith("ok "))).hasSize(rendered.documents().size());
        assertThat(result.exitCode()).isZero();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyRenderedObjectParsesStrictlyIntoTheKubernetesModel(String name, String chart, Path valuesFile) {
        Rendered rendered = render(chart, valuesFile);

        List<String> problems = new ArrayList<>();
        for (Map<String, Object> object : rendered.documents()) {
            problems.addAll(strictProblems(object));
        }

        assertThat(problems).as("fields the Kubernetes API does not know, in %s", name).isEmpty();
    }

    @Test
    void strictParsingFindsAMisindentedKeyAQuotedNumberAndAnUnknownKind() {
        Map<String, Object> deployment = HelmChart.template(null).deployment();
        @SuppressWarnings("unchecked")
        Map<String, Object> port = (Map<String, Object>) HelmChart.<List<Object>>at(deployment, "spec", "template",
                "spec", "containers", 0, "ports").get(0);
        port.put("readinessProbe", Map.of("periodSeconds", 5));

        assertThat(strictProblems(deployment)).singleElement().asString()
                .contains("spec.template.spec.containers[0].ports[0]").contains("readinessProbe");

        port.remove("readinessProbe");
        port.put("containerPort", "5280");
        assertThat(strictProblems(deployment)).singleElement().asString().contains("Deployment megaphone");

        assertThat(strictProblems(Map.of("apiVersion", "example.org/v1", "kind", "Widget")))
                .singleElement().asString().contains("no model for example.org/v1 Widget");
    }

    /** What strict parsing into fabric8's model finds wrong with one object: unknown fields, wrong types, kind. */
    private static List<String> strictProblems(Map<String, Object> object) {
        String key = object.get("apiVersion") + "/" + object.get("kind");
        String name = object.get("kind") + " " + HelmChart.at(object, "metadata", "name");
        Class<?> model = MODELS.get(key);
        if (model == null) {
            return List.of("no model for " + object.get("apiVersion") + " " + object.get("kind"));
        }
        Object parsed;
        try {
            parsed = STRICT.convertValue(object, model);
        } catch (IllegalArgumentException e) {
            return List.of(name + ": " + e.getMessage());
        }
        List<String> problems = new ArrayList<>();
        unknownFields(parsed, name + " ", problems);
        return problems;
    }

    /**
     * Walks a parsed fabric8 object: every model class keeps the fields it does not know in
     * {@code getAdditionalProperties()}; each non-empty one is a problem, named by its path.
     */
    private static void unknownFields(Object node, String path, List<String> problems) {
        if (node instanceof List<?> list) {
            for (int i = 0; i < list.size(); i++) {
                unknownFields(list.get(i), path + "[" + i + "]", problems);
            }
            return;
        }
        if (node instanceof Map<?, ?> map) {
            map.forEach((k, v) -> unknownFields(v, path + "." + k, problems));
            return;
        }
        if (node == null || !node.getClass().getName().startsWith("io.fabric8.")) {
            return;
        }
        for (Method getter : node.getClass().getMethods()) {
            String method = getter.getName();
            if (getter.getParameterCount() != 0 || !method.startsWith("get") || method.equals("getClass")) {
                continue;
            }
            Class<?> type = getter.getReturnType();
            boolean model = type.getName().startsWith("io.fabric8.") || List.class.isAssignableFrom(type)
                    || Map.class.isAssignableFrom(type);
            if (!model) {
                continue;
            }
            Object value;
            try {
                value = getter.invoke(node);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(getter.toString(), e);
            }
            if (method.equals("getAdditionalProperties")) {
                if (value instanceof Map<?, ?> extra && !extra.isEmpty()) {
                    problems.add(path.strip() + ": unknown " + extra.keySet());
                }
            } else {
                String field = Character.toLowerCase(method.charAt(3)) + method.substring(4);
                unknownFields(value, path.endsWith(" ") ? path + field : path + "." + field, problems);
            }
        }
    }

    @Test
    void theValidatorRejectsAMistypedObjectAndAKindWithoutSchema(@TempDir Path tempDir) throws Exception {
        Rendered rendered = HelmChart.template(null);
        Map<String, Object> service = rendered.all("Service").stream()
                .filter(s -> "megaphone".equals(HelmChart.at(s, "metadata", "name"))).findFirst().orElseThrow();
        @SuppressWarnings("unchecked")
        Map<String, Object> port = (Map<String, Object>) HelmChart.<List<Object>>at(service, "spec", "ports").get(0);
        port.put("port", "5280");
        Map<String, Object> unknown = Map.of("apiVersion", "example.org/v1", "kind", "Widget", "metadata", Map.of("name", "w"));

        Result result = validate(List.of(service, unknown), tempDir);

        assertThat(result.output()).contains("invalid v1 Service megaphone: data/spec/ports/0/port must be integer")
                .contains("invalid example.org/v1 Widget w: no schema");
        assertThat(result.exitCode()).isEqualTo(1);
    }

    private static Result validate(List<Map<String, Object>> objects, Path tempDir) throws Exception {
        Path json = tempDir.resolve("objects.json");
        Files.writeString(json, JSON.writeValueAsString(objects));
        return run(INSTALL_DIR, Duration.ofMinutes(2), "node", "validate.mjs", json.toAbsolutePath().toString());
    }

    record Result(int exitCode, String output) {
    }

    private static Result run(Path dir, Duration timeout, String... command) throws Exception {
        Path output = Files.createTempFile("k8s-validate", ".txt");
        try {
            Process process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                    .redirectOutput(output.toFile()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .start();
            if (!process.waitFor(timeout.toSeconds(), TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new AssertionError(String.join(" ", command) + ": no exit within " + timeout);
            }
            return new Result(process.exitValue(), Files.readString(output));
        } finally {
            Files.deleteIfExists(output);
        }
    }
}
