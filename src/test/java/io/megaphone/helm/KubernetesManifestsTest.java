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

/**
 * Every rendered variant of the chart (the defaults and each {@code ci/*-values.yaml}) is checked as Kubernetes
 * objects, not as text: each object against the Kubernetes API's OpenAPI schema of its apiVersion and kind (and
 * prometheus-operator's CRDs), with kubernetes-models from the npm registry (src/test/resources/k8s-validate,
 * installed once under target/k8s-validate). An object whose kind has no schema there fails too.
 */
class KubernetesManifestsTest {

    private static final Path SOURCE = Path.of("src/test/resources/k8s-validate");
    private static final Path INSTALL_DIR = Path.of("target/k8s-validate");
    private static final JsonMapper JSON = JsonMapper.builder().build();

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

    static Stream<Arguments> valueSets() {
        List<Arguments> sets = new ArrayList<>();
        sets.add(Arguments.of("defaults", null));
        for (Path file : HelmChart.ciValuesFiles()) {
            sets.add(Arguments.of(file.getFileName().toString(), file));
        }
        return sets.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyRenderedObjectIsValidAgainstTheKubernetesSchemas(String name, Path valuesFile, @TempDir Path tempDir)
            throws Exception {
        Rendered rendered = HelmChart.template(valuesFile);
        assertThat(rendered.documents()).isNotEmpty();

        Result result = validate(rendered.documents(), tempDir);

        assertThat(result.output()).as("kubernetes-models on %s", name)
                .doesNotContain("invalid ")
                .contains("ok apps/v1 Deployment ");
        assertThat(result.output().lines().filter(l -> l.startsWith("ok "))).hasSize(rendered.documents().size());
        assertThat(result.exitCode()).isZero();
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
