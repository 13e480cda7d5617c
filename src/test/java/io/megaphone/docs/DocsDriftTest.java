// SPDX-License-Identifier: Apache-2.0
package io.megaphone.docs;

import static org.assertj.core.api.Assertions.assertThat;

import io.megaphone.config.MegaphoneProperties;
import java.io.IOException;
import java.io.Reader;
import java.lang.reflect.Constructor;
import java.lang.reflect.Parameter;
import java.lang.reflect.RecordComponent;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * The property names and defaults that the docs quote (README.md, docs/*.md, helm/*&#47;README.md) exist and agree
 * with the code: every {@code megaphone.*} name is a property of {@link MegaphoneProperties} (or a group of them),
 * a table with a "default" column gives each property row the default that {@code @DefaultValue} or
 * application.yaml sets, each chart README's "Value" column shows values.yaml's scalar, and a link to a doc's
 * section ({@code docs/x.md#anchor}) finds a heading with that anchor. An environment variable the docs name
 * ({@code MEGAPHONE_*}, {@code EJABBERD_*}, {@code EJ_*}, {@code JAVA_*}) is read by a script, an image or the ECM, or
 * is the form in which Spring Boot binds a property.
 */
class DocsDriftTest {

    /** A {@code megaphone.x.y} name not inside a longer word, a Java package, a file name or a label key. */
    private static final Pattern PROPERTY =
            Pattern.compile("(?<![\\w./-])megaphone(?:\\.[a-z][a-z0-9-]*)+(?![\\w/-])");
    private static final Pattern NON_PROPERTY = Pattern.compile("megaphone\\.(yml|yaml|spec|secret|xmpp\\..*)");
    private static final Pattern BACKTICKED = Pattern.compile("`([^`]+)`");
    private static final Pattern PLAIN_VALUE = Pattern.compile("^[0-9][0-9,]*(?:\\.[0-9]+)?(?: ?[a-zA-Z]+)?");
    private static final Pattern SECTION_LINK = Pattern.compile("\\]\\(([^)#\\s]*\\.md|)#([^)\\s]+)\\)");
    private static final Pattern ENVIRONMENT = Pattern.compile("\\b(?:MEGAPHONE|EJABBERD|EJ|JAVA)_[A-Z0-9_]*[A-Z0-9]\\b");
    private static final Pattern PLACEHOLDER = Pattern.compile("^\\$\\{[A-Z0-9_]+:(.*)}$");

    /** Every property and group name, with the default a reader should see (null: none). */
    private static final Map<String, String> PROPERTIES = properties();

    @Test
    void everyMegaphonePropertyNamedInTheDocsExists() throws IOException {
        List<String> unknown = new ArrayList<>();
        for (Path doc : docs()) {
            List<String> lines = Files.readAllLines(doc);
            for (int i = 0; i < lines.size(); i++) {
                Matcher m = PROPERTY.matcher(lines.get(i));
                while (m.find()) {
                    String name = m.group();
                    if (!NON_PROPERTY.matcher(name).matches() && !PROPERTIES.containsKey(name)) {
                        unknown.add(doc + ":" + (i + 1) + ": " + name);
                    }
                }
            }
        }
        assertThat(unknown).as("megaphone.* names in the docs that no property has (MegaphoneProperties, "
                + "application*.yaml)").isEmpty();
    }

    @Test
    void everyDefaultInADocTableIsTheCodesDefault() throws IOException {
        List<String> wrong = new ArrayList<>();
        int compared = 0;
        for (Path doc : docs()) {
            List<String> lines = Files.readAllLines(doc);
            int defaultColumn = -1;
            for (int i = 0; i < lines.size(); i++) {
                String line = lines.get(i);
                if (!line.startsWith("|")) {
                    defaultColumn = -1;
                    continue;
                }
                List<String> cells = cells(line);
                if (defaultColumn < 0) {
                    defaultColumn = headerColumn(cells);
                    continue;
                }
                if (defaultColumn >= cells.size()) {
                    continue;
                }
                List<String> names = names(cells.get(0));
                String[] defaults = cells.get(defaultColumn).split(" / ");
                for (int k = 0; k < names.size() && k < defaults.length; k++) {
                    String documented = documentedValue(defaults[k]);
                    if (documented == null || !PROPERTIES.containsKey(names.get(k))) {
                        continue;
                    }
                    compared++;
                    String actual = PROPERTIES.get(names.get(k));
                    if (!normalize(documented).equals(actual == null ? "—" : normalize(actual))) {
                        wrong.add("%s:%d: %s: documented default %s, the code's %s"
                                .formatted(doc, i + 1, names.get(k), documented, actual == null ? "none" : actual));
                    }
                }
            }
        }
        assertThat(compared).as("documented defaults compared").isGreaterThan(10);
        assertThat(wrong).as("defaults in doc tables that differ from @DefaultValue / application.yaml").isEmpty();
    }

    @Test
    void everyChartReadmeValueIsValuesYamls() throws IOException {
        List<String> wrong = new ArrayList<>();
        int compared = 0;
        for (String chart : List.of("helm/megaphone", "helm/megaphone-ejabberd")) {
            Map<String, Object> values = yaml(Path.of(chart, "values.yaml"));
            boolean inParameters = false;
            for (String line : Files.readAllLines(Path.of(chart, "README.md"))) {
                if (line.startsWith("## ")) {
                    inParameters = line.equals("## Parameters");
                }
                List<String> cells = line.startsWith("| `") ? cells(line) : List.of();
                if (!inParameters || cells.size() != 3) {
                    continue;
                }
                Object value = valueAt(values, cells.get(0).replace("`", ""));
                if (value instanceof Map || value instanceof List) {
                    continue;
                }
                compared++;
                String expected = "`" + (value == null || "".equals(value) ? "\"\"" : value) + "`";
                if (!cells.get(2).equals(expected)) {
                    wrong.add("%s/README.md: %s: %s, values.yaml: %s".formatted(chart, cells.get(0), cells.get(2),
                            expected));
                }
            }
        }
        assertThat(compared).as("chart README values compared").isGreaterThan(50);
        assertThat(wrong).as("chart README Value cells that differ from values.yaml "
                + "(python3 scripts/helm-readme.py rewrites them)").isEmpty();
    }

    @Test
    void everyLinkToADocSectionFindsItsHeading() throws IOException {
        List<String> broken = new ArrayList<>();
        for (Path doc : docs()) {
            Matcher m = SECTION_LINK.matcher(Files.readString(doc));
            while (m.find()) {
                Path target = m.group(1).isEmpty() ? doc : doc.resolveSibling(m.group(1)).normalize();
                List<String> slugs = Files.readAllLines(target).stream().filter(l -> l.startsWith("#"))
                        .map(l -> l.replaceFirst("^#+\\s*", "").toLowerCase(Locale.ROOT)
                                .replaceAll("[^\\p{L}\\p{N} _-]", "").replace(' ', '-'))
                        .toList();
                if (!slugs.contains(m.group(2))) {
                    broken.add(doc + ": " + m.group() + " (headings of " + target + ": " + slugs + ")");
                }
            }
        }
        assertThat(broken).as("links to a section (#anchor) of a doc that has no such heading").isEmpty();
    }

    @Test
    void everyEnvironmentVariableNamedInTheDocsIsRead() throws IOException {
        StringBuilder sources = new StringBuilder();
        for (String root : List.of("src/main", "scripts", "bench", "ejabberd", "helm", "loadgen/src", ".github", ".ci",
                "Dockerfile")) {
            try (Stream<Path> files = Files.walk(Path.of(root))) {
                for (Path file : files.filter(Files::isRegularFile)
                        .filter(f -> !f.toString().endsWith(".md") && !f.toString().matches(".*\\.(beam|png|tgz|gz|xz)$"))
                        .toList()) {
                    sources.append(new String(Files.readAllBytes(file), java.nio.charset.StandardCharsets.ISO_8859_1));
                }
            }
        }
        Set<String> springForms = new TreeSet<>();
        PROPERTIES.keySet().forEach(name -> {
            String upper = name.toUpperCase(Locale.ROOT).replace('.', '_');
            springForms.add(upper.replace("-", ""));
            springForms.add(upper.replace('-', '_'));
        });
        List<String> unknown = new ArrayList<>();
        for (Path doc : docs()) {
            Matcher m = ENVIRONMENT.matcher(Files.readString(doc));
            while (m.find()) {
                String variable = m.group();
                if (!springForms.contains(variable) && !sources.toString().contains(variable)) {
                    unknown.add(doc + ": " + variable);
                }
            }
        }
        assertThat(unknown).as("environment variables in the docs that no script, image or property reads").isEmpty();
    }

    private static List<Path> docs() throws IOException {
        List<Path> docs = new ArrayList<>(List.of(Path.of("README.md"), Path.of("helm/megaphone/README.md"),
                Path.of("helm/megaphone-ejabberd/README.md")));
        try (Stream<Path> files = Files.list(Path.of("docs"))) {
            files.filter(p -> p.toString().endsWith(".md")).sorted().forEach(docs::add);
        }
        return docs;
    }

    private static List<String> cells(String row) {
        String inner = row.strip();
        inner = inner.substring(1, inner.endsWith("|") ? inner.length() - 1 : inner.length());
        return Arrays.stream(inner.split("(?<!\\\\)\\|", -1)).map(String::strip).toList();
    }

    /** The index of a header's "default" column (also "default here"), or -1. */
    private static int headerColumn(List<String> header) {
        for (int c = 1; c < header.size(); c++) {
            if (header.get(c).toLowerCase(Locale.ROOT).startsWith("default")) {
                return c;
            }
        }
        return -1;
    }

    /** The property names of a first cell: {@code `a.b.c`}, or {@code `a.b.c` / `.d`} for a.b.c and a.b.d. */
    private static List<String> names(String cell) {
        List<String> names = new ArrayList<>();
        Matcher m = BACKTICKED.matcher(cell);
        while (m.find()) {
            String name = m.group(1);
            if (name.startsWith(".") && !names.isEmpty()) {
                String first = names.get(0);
                name = first.substring(0, first.lastIndexOf('.')) + name;
            }
            names.add(name);
        }
        return names;
    }

    /** What a default cell (or one part of it) states: a backticked value, a plain number, "—", or null (prose). */
    private static String documentedValue(String cell) {
        String text = cell.strip();
        if (text.startsWith("`")) {
            Matcher m = BACKTICKED.matcher(text);
            return m.find() ? m.group(1) : null;
        }
        if (text.equals("—") || text.equals("-")) {
            return "—";
        }
        Matcher m = PLAIN_VALUE.matcher(text);
        return m.find() ? m.group() : null;
    }

    /** "310 s" and "310s", "262,144" and "262144", "[/a, /b]" and "/a, /b" compare equal. */
    private static String normalize(String value) {
        String v = value.strip().replaceAll("(?<=\\d),(?=\\d{3})", "").replaceAll("(?<=\\d) (?=[a-zA-Z])", "");
        if (v.startsWith("[") && v.endsWith("]")) {
            v = v.substring(1, v.length() - 1);
        }
        v = v.replace("\"", "").replaceAll("\\s*,\\s*", ", ");
        return v.isEmpty() ? "—" : v;
    }

    private static Map<String, String> properties() {
        Map<String, String> properties = new LinkedHashMap<>();
        walk("megaphone", MegaphoneProperties.class, properties);
        try {
            Map<String, String> base = new LinkedHashMap<>();
            flatten("", yaml(Path.of("src/main/resources/application.yaml")), base);
            properties.putAll(base);
            try (Stream<Path> files = Files.list(Path.of("src/main/resources"))) {
                for (Path profile : files.filter(p -> p.getFileName().toString().matches("application-.+\\.yaml"))
                        .toList()) {
                    Map<String, String> names = new LinkedHashMap<>();
                    flatten("", yaml(profile), names);
                    names.keySet().forEach(name -> properties.putIfAbsent(name, null));
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return properties;
    }

    /** Each component of a properties record, kebab-cased, with its {@code @DefaultValue}; records are groups. */
    private static void walk(String prefix, Class<?> record, Map<String, String> properties) {
        RecordComponent[] components = record.getRecordComponents();
        Constructor<?> canonical;
        try {
            canonical = record.getDeclaredConstructor(
                    Arrays.stream(components).map(RecordComponent::getType).toArray(Class<?>[]::new));
        } catch (NoSuchMethodException e) {
            throw new IllegalStateException(e);
        }
        Parameter[] parameters = canonical.getParameters();
        for (int i = 0; i < components.length; i++) {
            String name = prefix + "." + components[i].getName().replaceAll("([A-Z])", "-$1").toLowerCase(Locale.ROOT);
            Class<?> type = components[i].getType();
            DefaultValue defaultValue = parameters[i].getAnnotation(DefaultValue.class);
            if (type.isRecord()) {
                properties.put(name, null);
                walk(name, type, properties);
            } else {
                properties.put(name, defaultValue == null || defaultValue.value().length == 0 ? null
                        : String.join(", ", defaultValue.value()));
            }
        }
    }

    /** application.yaml's keys, dotted, with their values ({@code ${ENV:default}} read as its default). */
    private static void flatten(String prefix, Map<?, ?> map, Map<String, String> out) {
        map.forEach((key, value) -> {
            String name = prefix.isEmpty() ? key.toString() : prefix + "." + key;
            if (value instanceof Map<?, ?> child) {
                out.putIfAbsent(name, null);
                flatten(name, child, out);
            } else if (value instanceof List<?> list) {
                out.put(name, list.stream().map(String::valueOf).collect(Collectors.joining(", ")));
            } else {
                String text = String.valueOf(value);
                Matcher m = PLACEHOLDER.matcher(text);
                out.put(name, m.matches() ? m.group(1) : text);
            }
            // A name's groups count as names too: "megaphone.edge.admission" for "megaphone.edge.admission.max-held".
            for (int dot = name.lastIndexOf('.'); dot > 0; dot = name.lastIndexOf('.', dot - 1)) {
                out.putIfAbsent(name.substring(0, dot), null);
            }
        });
    }

    private static Object valueAt(Map<String, Object> values, String path) {
        Object node = values;
        for (String key : path.split("\\.")) {
            node = node instanceof Map<?, ?> map ? map.get(key) : null;
        }
        return node;
    }

    private static Map<String, Object> yaml(Path file) throws IOException {
        try (Reader reader = Files.newBufferedReader(file)) {
            Map<String, Object> map = new Yaml(new SafeConstructor(new LoaderOptions())).load(reader);
            return map == null ? Map.of() : map;
        }
    }
}
