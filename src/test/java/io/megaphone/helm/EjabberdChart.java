// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import io.megaphone.helm.HelmChart.Rendered;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.Yaml;

/** The chart under helm/megaphone-ejabberd, rendered as release "ejabberd" in namespace "xmpp". */
final class EjabberdChart {

    static final Path CHART = Path.of("helm/megaphone-ejabberd");
    static final String RELEASE = "ejabberd";

    private EjabberdChart() {
    }

    /** The ci/*-values.yaml files, sorted by name. */
    static List<Path> ciValuesFiles() {
        try (Stream<Path> files = Files.list(CHART.resolve("ci"))) {
            return files.filter(f -> f.getFileName().toString().endsWith("-values.yaml")).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** helm template with the chart's defaults (null) or one values file over them. */
    static Rendered template(Path valuesFile) {
        TemplateCommand command = new Helm(CHART).template().withName(RELEASE).withNamespace(HelmChart.NAMESPACE);
        if (valuesFile != null) {
            command = command.withValuesFile(valuesFile);
        }
        return new Rendered(command.call());
    }

    /** The defaults, or the defaults with one values file merged over them. */
    static Map<String, Object> values(Path valuesFile) {
        Map<String, Object> defaults = HelmChart.load(CHART.resolve("values.yaml"));
        return valuesFile == null ? defaults : HelmChart.merge(defaults, HelmChart.load(valuesFile));
    }

    /** helm lint --strict of a copy of the chart whose values.yaml has the file merged in (as HelmChart.lint). */
    static LintResult lint(Path valuesFile, Path tempDir) throws IOException {
        Path copy = tempDir.resolve(CHART.getFileName().toString());
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
        DumperOptions options = new DumperOptions();
        options.setDefaultFlowStyle(DumperOptions.FlowStyle.BLOCK);
        Files.writeString(copy.resolve("values.yaml"), new Yaml(options).dump(values(valuesFile)));
        return new Helm(copy).lint().strict().call();
    }
}
