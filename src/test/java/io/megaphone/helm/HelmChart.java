// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/** The chart under helm/megaphone: lint it, render it, and read the rendered manifests as plain maps. */
final class HelmChart {

    static final Path CHART = Path.of("helm/megaphone");
    static final String RELEASE = "megaphone";
    static final String NAMESPACE = "xmpp";

    private HelmChart() {
    }

    /** The ci/*-values.yaml files, one per feature, sorted by name. */
    static List<Path> ciValuesFiles() {
        try (Stream<Path> files = Files.list(CHART.resolve("ci"))) {
            return files.filter(f -> f.getFileName().toString().endsWith("-values.yaml")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The one value the chart has no default for: where the link secret comes from (link.existingSecret, link.secret
     * or link.generateSecret). "The defaults" below are the chart's defaults plus this.
     */
    static final String DEFAULT_EXISTING_SECRET = "megaphone-link";

    /** helm template with the chart's defaults, or with one values file over them. */
    static Rendered template(Path valuesFile) {
        TemplateCommand command = new Helm(CHART).template().withName(RELEASE).withNamespace(NAMESPACE);
        if (valuesFile != null) {
            command = command.withValuesFile(valuesFile);
        } else {
            command = command.set("link.existingSecret", DEFAULT_EXISTING_SECRET);
        }
        return new Rendered(command.call());
    }

    /** helm template with only the chart's own values.yaml: no link secret given. */
    static Rendered templateBare() {
        return new Rendered(new Helm(CHART).template().withName(RELEASE).withNamespace(NAMESPACE).call());
    }

    /**
     * helm lint --strict, with one values file over the defaults (null: the defaults and DEFAULT_EXISTING_SECRET). helm-java's lint has no --values, so the chart is
     * copied to a temporary folder whose values.yaml is the defaults with the file merged over them (the way Helm
     * merges: maps key by key, anything else replaced).
     */
    static LintResult lint(Path valuesFile, Path tempDir) throws IOException {
        Path copy = tempDir.resolve("megaphone");
        try (Stream<Path> files = Files.walk(CHART)) {
            for (Path source : files.toList()) {
                Path target = copy.resolve(CHART.relativize(source).toString());
                if (Files.isDirectory(source)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(source, target);
                }
            }
        }
        Map<String, Object> override = valuesFile != null ? load(valuesFile)
                : Map.of("link", Map.of("existingSecret", DEFAULT_EXISTING_SECRET));
        Map<String, Object> merged = merge(load(CHART.resolve("values.yaml")), override);
        DumperOptions options = new DumperOptions();
        options.setDefaultFlowStyle(DumperOptions.FlowStyle.BLOCK);
        Files.writeString(copy.resolve("values.yaml"), new Yaml(options).dump(merged));
        return new Helm(copy).lint().strict().call();
    }

    static Map<String, Object> load(Path yamlFile) {
        try {
            Map<String, Object> map = yaml().load(Files.readString(yamlFile));
            return map == null ? new LinkedHashMap<>() : map;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Deep merge as Helm merges values: maps key by key, any other value replaced by the override. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> merge(Map<String, Object> base, Map<String, Object> override) {
        Map<String, Object> result = new LinkedHashMap<>(base);
        override.forEach((key, value) -> {
            Object current = result.get(key);
            if (current instanceof Map<?, ?> currentMap && value instanceof Map<?, ?> valueMap) {
                result.put(key, merge((Map<String, Object>) currentMap, (Map<String, Object>) valueMap));
            } else {
                result.put(key, value);
            }
        });
        return result;
    }

    static Yaml yaml() {
        return new Yaml(new SafeConstructor(new LoaderOptions()));
    }

    /** A path into nested maps and lists: {@code at(doc, "spec", "template", "spec", "containers", 0)}. */
    @SuppressWarnings("unchecked")
    static <T> T at(Object node, Object... path) {
        Object current = node;
        for (Object step : path) {
            if (current == null) {
                return null;
            }
            current = step instanceof Integer index ? ((List<Object>) current).get(index)
                    : ((Map<String, Object>) current).get((String) step);
        }
        return (T) current;
    }

    /** The manifests of one helm template run. */
    record Rendered(String text, List<Map<String, Object>> documents) {

        Rendered(String text) {
            this(text, parse(text));
        }

        @SuppressWarnings("unchecked")
        private static List<Map<String, Object>> parse(String text) {
            List<Map<String, Object>> documents = new ArrayList<>();
            for (Object document : yaml().loadAll(text)) {
                if (document != null) {
                    documents.add((Map<String, Object>) document);
                }
            }
            return documents;
        }

        List<Map<String, Object>> all(String kind) {
            return documents.stream().filter(d -> kind.equals(d.get("kind"))).toList();
        }

        Map<String, Object> one(String kind) {
            List<Map<String, Object>> found = all(kind);
            if (found.size() != 1) {
                throw new AssertionError("expected one " + kind + ", found " + found.size() + " in:\n" + text);
            }
            return found.get(0);
        }

        Map<String, Object> deployment() {
            return one("Deployment");
        }

        Map<String, Object> podSpec() {
            return at(deployment(), "spec", "template", "spec");
        }

        Map<String, Object> container() {
            return at(podSpec(), "containers", 0);
        }

        /** The container's env as name to value (valueFrom entries map to null). */
        Map<String, String> env() {
            Map<String, String> env = new LinkedHashMap<>();
            List<Map<String, Object>> entries = at(container(), "env");
            for (Map<String, Object> entry : entries) {
                env.put((String) entry.get("name"), (String) entry.get("value"));
            }
            return env;
        }

        Map<String, Object> volume(String name) {
            List<Map<String, Object>> volumes = at(podSpec(), "volumes");
            return volumes.stream().filter(v -> Objects.equals(name, v.get("name"))).findFirst()
                    .orElseThrow(() -> new AssertionError("no volume " + name + " in " + volumes));
        }

        Map<String, Object> volumeMount(String name) {
            List<Map<String, Object>> mounts = at(container(), "volumeMounts");
            return mounts.stream().filter(v -> Objects.equals(name, v.get("name"))).findFirst()
                    .orElseThrow(() -> new AssertionError("no volumeMount " + name + " in " + mounts));
        }

        /** The ConfigMap's application-k8s.yaml, parsed. */
        Map<String, Object> applicationConfig() {
            Map<String, Object> configMap = all("ConfigMap").stream()
                    .filter(c -> at(c, "data", "application-k8s.yaml") != null).findFirst()
                    .orElseThrow(() -> new AssertionError("no ConfigMap with application-k8s.yaml"));
            return yaml().load((String) at(configMap, "data", "application-k8s.yaml"));
        }
    }
}
