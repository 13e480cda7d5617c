// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import static io.megaphone.helm.HelmChart.at;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.marcnuri.helm.LintResult;
import io.megaphone.helm.HelmChart.Rendered;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The ejabberd chart (helm/megaphone-ejabberd), linted and rendered like the ECM chart: a StatefulSet whose pods
 * are the Erlang nodes named by a headless Service, the settings the image reads (ejabberd/container/entrypoint.sh)
 * where it reads them, and, rendered next to the ECM chart, a headless Service of the ready pods that the ECM's DNS
 * discovery finds.
 */
class EjabberdChartTest {

    private static final String HEADLESS_FQDN = "ejabberd-headless.xmpp.svc.cluster.local";
    private static final Map<String, Object> SELECTOR = Map.of(
            "app.kubernetes.io/name", "megaphone-ejabberd",
            "app.kubernetes.io/instance", EjabberdChart.RELEASE);

    static Stream<Arguments> valueSets() {
        return Stream.concat(Stream.of(Arguments.of("default values", null)),
                EjabberdChart.ciValuesFiles().stream().map(f -> Arguments.of(f.getFileName().toString(), f)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void lintsCleanInStrictMode(String name, Path valuesFile, @TempDir Path tempDir) throws IOException {
        LintResult result = EjabberdChart.lint(valuesFile, tempDir);

        assertThat(result.isFailed()).as("helm lint --strict failed: %s", result.getMessages()).isFalse();
        assertThat(result.getMessages()).noneMatch(m -> m.contains("[ERROR]") || m.contains("[WARNING]"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyPodIsANodeNamedByTheHeadlessServiceAndJoinsPodZero(String name, Path valuesFile) {
        Rendered rendered = EjabberdChart.template(valuesFile);
        Map<String, Object> statefulSet = rendered.one("StatefulSet");
        Map<String, Object> headless = service(rendered, "ejabberd-headless");

        assertThat((String) at(statefulSet, "spec", "serviceName")).isEqualTo("ejabberd-headless");
        assertThat((String) at(headless, "spec", "clusterIP")).isEqualTo("None");
        assertThat((Boolean) at(headless, "spec", "publishNotReadyAddresses"))
                .as("a starting pod must resolve pod 0 to join it").isTrue();
        assertThat((Map<String, Object>) at(statefulSet, "spec", "selector", "matchLabels")).isEqualTo(SELECTOR);
        assertThat((Map<String, Object>) at(headless, "spec", "selector")).isEqualTo(SELECTOR);
        assertThat((Map<String, Object>) at(statefulSet, "spec", "template", "metadata", "labels"))
                .containsAllEntriesOf(SELECTOR);

        Map<String, String> env = env(rendered);
        assertThat(env).containsEntry("EJABBERD_NODE", "ejabberd@$(POD_NAME)." + HEADLESS_FQDN)
                .containsEntry("EJABBERD_CLUSTER_SEED", "ejabberd@ejabberd-0." + HEADLESS_FQDN)
                .containsKey("POD_NAME");
        List<String> names = envNames(rendered);
        assertThat(names.indexOf("POD_NAME")).as("$(POD_NAME) expands only from an earlier variable")
                .isLessThan(names.indexOf("EJABBERD_NODE"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void theLinkAndMetricsPortsAreOnHeadlessServicesWithAPdbAndProbes(String name, Path valuesFile) {
        Rendered rendered = EjabberdChart.template(valuesFile);
        Map<String, Object> container = container(rendered);
        Map<String, String> env = env(rendered);

        Map<String, Integer> containerPorts = new LinkedHashMap<>();
        for (Map<String, Object> port : HelmChart.<List<Map<String, Object>>>at(container, "ports")) {
            containerPorts.put((String) port.get("name"), (Integer) port.get("containerPort"));
        }
        assertThat(containerPorts).containsEntry("link", Integer.valueOf(env.get("MEGAPHONE_LINK_PORT")))
                .containsEntry("metrics", Integer.valueOf(env.get("MEGAPHONE_METRICS_PORT")))
                .containsEntry("c2s", Integer.valueOf(env.get("EJABBERD_C2S_PORT")))
                .containsEntry("distribution", Integer.valueOf(env.get("EJABBERD_DIST_PORT")));
        List<Map<String, Object>> headlessPorts = at(service(rendered, "ejabberd-headless"), "spec", "ports");
        assertThat(headlessPorts).extracting(p -> p.get("targetPort"))
                .containsExactlyInAnyOrder("metrics", "c2s", "distribution");
        List<Map<String, Object>> linkPorts = at(service(rendered, "ejabberd-link"), "spec", "ports");
        assertThat(linkPorts).extracting(p -> p.get("targetPort")).containsExactly("link");

        String readyFile = env.get("EJABBERD_READY_FILE");
        assertThat(readyFile).startsWith("/tmp/");
        assertThat((List<Object>) at(container, "readinessProbe", "exec", "command"))
                .containsExactly("test", "-e", readyFile);
        assertThat((List<Object>) at(container, "startupProbe", "exec", "command"))
                .containsExactly("test", "-e", readyFile);
        assertThat((Object) at(container, "livenessProbe", "tcpSocket", "port")).isEqualTo("link");
        int startupSeconds = (Integer) at(container, "startupProbe", "periodSeconds")
                * (Integer) at(container, "startupProbe", "failureThreshold");
        assertThat(startupSeconds).as("the startup probe covers the join timeout")
                .isGreaterThan(Integer.parseInt(env.get("EJABBERD_CLUSTER_JOIN_TIMEOUT")));
        assertThat(mountPath(rendered, "tmp")).isEqualTo("/tmp");

        Map<String, Object> pdb = rendered.one("PodDisruptionBudget");
        assertThat((Map<String, Object>) at(pdb, "spec", "selector", "matchLabels")).isEqualTo(SELECTOR);
        assertThat((Integer) at(pdb, "spec", "maxUnavailable")).isEqualTo(1);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void thePodRunsAsTheImagesNumericUserWithSecretsWhereTheImageReadsThem(String name, Path valuesFile)
            throws IOException {
        Rendered rendered = EjabberdChart.template(valuesFile);
        Map<String, Object> values = EjabberdChart.values(valuesFile);
        int imageUid = imageUid();
        Map<String, Object> pod = at(podSpec(rendered), "securityContext");
        assertThat((Boolean) at(pod, "runAsNonRoot")).isTrue();
        assertThat((Integer) at(pod, "runAsUser")).isEqualTo(imageUid);
        assertThat((Integer) at(pod, "fsGroup")).isEqualTo(imageUid);
        Map<String, Object> container = at(container(rendered), "securityContext");
        assertThat((Integer) at(container, "runAsUser")).isEqualTo(imageUid);
        assertThat((Boolean) at(container, "readOnlyRootFilesystem")).isTrue();
        assertThat((List<Object>) at(container, "capabilities", "drop")).containsExactly("ALL");

        Map<String, String> env = env(rendered);
        assertSecretFile(rendered, env.get("EJABBERD_COOKIE_FILE"), at(values, "cluster", "existingSecret"),
                at(values, "cluster", "existingSecretKey"));
        assertSecretFile(rendered, env.get("MEGAPHONE_LINK_SECRET_FILE"), at(values, "link", "existingSecret"),
                at(values, "link", "existingSecretKey"));
        if (at(values, "admin", "existingSecret") instanceof String admin && !admin.isEmpty()) {
            assertSecretFile(rendered, env.get("EJABBERD_ADMIN_PASSWORD_FILE"), admin,
                    at(values, "admin", "existingSecretKey"));
        }
        assertThat(env.keySet()).filteredOn(n -> n.matches(".*(PASSWORD|SECRET|COOKIE).*"))
                .as("secrets reach the image as files only").isNotEmpty().allMatch(n -> n.endsWith("_FILE"));
    }

    @Test
    void theOperatorsConfigurationIsMountedWhereTheImageIncludesIt() {
        Path cluster = EjabberdChart.CHART.resolve("ci/cluster-values.yaml");
        Rendered rendered = EjabberdChart.template(cluster);
        Map<String, Object> configMap = rendered.one("ConfigMap");

        assertThat((Map<String, Object>) at(configMap, "data")).containsOnlyKeys("tls.yml");
        assertThat(mountPath(rendered, "conf-d")).isEqualTo(env(rendered).get("EJABBERD_CONF_D"));
        assertThat((String) at(volume(rendered, "conf-d"), "configMap", "name"))
                .isEqualTo(at(configMap, "metadata", "name"));
        assertThat(checksum(rendered)).isNotEqualTo(checksum(EjabberdChart.template(null)));
        assertThat(EjabberdChart.template(null).all("ConfigMap")).isEmpty();
    }

    @Test
    void anIncludedFileThatTheImageWouldSkipIsRefused(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("values.yaml");
        Files.writeString(values, "extraConfig:\n  tls.yaml: |\n    loglevel: debug\n");

        assertThatThrownBy(() -> EjabberdChart.template(values))
                .hasMessageContaining("extraConfig: tls.yaml (expected: a file name ending in .yml");
    }

    /**
     * The two charts side by side, as the ejabberd chart's notes and README install them (the ECM's
     * ci/ejabberd-chart-values.yaml): the ECM's discovery name and port are this chart's link Service, headless,
     * with ready pods only, reaching every pod's link port; both name the same link Secret, key and max_inflight;
     * the ECM's ServiceMonitor for ejabberd selects exactly the headless Service, which has the metrics port.
     */
    @Test
    void theEcmFindsEveryReadyEjabberdPodThroughTheLinkService() {
        Rendered ejabberd = EjabberdChart.template(null);
        Map<String, Object> ejValues = EjabberdChart.values(null);
        Path ecmFile = HelmChart.CHART.resolve("ci/ejabberd-chart-values.yaml");
        Map<String, Object> ecmValues = HelmChart.merge(HelmChart.load(HelmChart.CHART.resolve("values.yaml")),
                HelmChart.load(ecmFile));
        Rendered ecm = HelmChart.template(ecmFile);
        Map<String, Object> discovery = at(ecm.applicationConfig(), "megaphone", "link", "discovery");

        Map<String, Object> linkService = ejabberd.all("Service").stream()
                .filter(s -> discovery.get("dns-name").equals(at(s, "metadata", "name") + "."
                        + at(s, "metadata", "namespace") + ".svc." + at(ejValues, "clusterDomain")))
                .findFirst().orElseThrow(() -> new AssertionError("no Service is " + discovery.get("dns-name")));
        assertThat((String) at(linkService, "spec", "clusterIP")).isEqualTo("None");
        assertThat((Boolean) at(linkService, "spec", "publishNotReadyAddresses")).isNotEqualTo(Boolean.TRUE);
        assertThat((Map<String, Object>) at(linkService, "spec", "selector")).isEqualTo(SELECTOR);
        assertThat(HelmChart.<List<Map<String, Object>>>at(linkService, "spec", "ports"))
                .anyMatch(p -> p.get("port").equals(discovery.get("port")) && "link".equals(p.get("targetPort")));

        assertThat((String) at(ejValues, "link", "existingSecret")).isEqualTo(at(ecmValues, "link", "existingSecret"));
        assertThat((String) at(ejValues, "link", "existingSecretKey"))
                .isEqualTo(at(ecmValues, "link", "existingSecretKey"));
        assertThat((Integer) at(ejValues, "link", "maxInflight")).isEqualTo(at(ecmValues, "link", "maxInflight"));

        Map<String, Object> monitor = ecm.all("ServiceMonitor").stream()
                .filter(m -> ((String) at(m, "metadata", "name")).endsWith("-ejabberd")).findFirst().orElseThrow();
        Map<String, Object> selector = at(monitor, "spec", "selector", "matchLabels");
        List<Map<String, Object>> scraped = ejabberd.all("Service").stream()
                .filter(s -> HelmChart.<Map<String, Object>>at(s, "metadata", "labels").entrySet()
                        .containsAll(selector.entrySet())).toList();
        assertThat(scraped).containsExactly(service(ejabberd, "ejabberd-headless"));
        Object metricsPort = at(monitor, "spec", "endpoints", 0, "port");
        assertThat(HelmChart.<List<Map<String, Object>>>at(scraped.get(0), "spec", "ports"))
                .anyMatch(p -> metricsPort.equals(p.get("name")));
    }

    @Test
    void theDefaultImageIsTheOneTheWorkflowPublishesAndTheChartIsPackagedWithIt() throws IOException {
        Map<String, Object> chart = HelmChart.load(EjabberdChart.CHART.resolve("Chart.yaml"));
        Map<String, Object> ecmChart = HelmChart.load(HelmChart.CHART.resolve("Chart.yaml"));
        assertThat(chart.get("appVersion")).isEqualTo(ecmChart.get("appVersion"));
        assertThat((String) at(container(EjabberdChart.template(null)), "image"))
                .isEqualTo("ghcr.io/megaphone/megaphone-ejabberd:" + chart.get("appVersion"));

        String workflow = Files.readString(Path.of(".github/workflows/ci.yml"));
        assertThat(workflow).contains("EJABBERD_IMAGE=ghcr.io/$owner/megaphone-ejabberd")
                .contains("docker push \"$EJABBERD_IMAGE:$VERSION\"")
                .contains("repository: ghcr.io/megaphone/megaphone-ejabberd|repository: ghcr.io/$owner/megaphone-ejabberd|")
                .contains("helm package helm/megaphone-ejabberd --version \"$VERSION\" --app-version \"$VERSION\"")
                .contains("helm push \"dist/megaphone-ejabberd-$VERSION.tgz\"");
    }

    /** The uid of ejabberd/Dockerfile's USER (its ARG EJABBERD_UID). */
    private static int imageUid() throws IOException {
        String dockerfile = Files.readString(Path.of("ejabberd/Dockerfile"));
        Matcher arg = Pattern.compile("(?m)^ARG EJABBERD_UID=(\\d+)$").matcher(dockerfile);
        assertThat(arg.find()).as("ARG EJABBERD_UID in ejabberd/Dockerfile").isTrue();
        assertThat(dockerfile).containsPattern("(?m)^USER \\$\\{EJABBERD_UID}:\\$\\{EJABBERD_UID}$");
        return Integer.parseInt(arg.group(1));
    }

    private static void assertSecretFile(Rendered rendered, String file, String secretName, String key) {
        assertThat(file).as("the file the image reads").isNotNull();
        List<Map<String, Object>> mounts = at(container(rendered), "volumeMounts");
        Map<String, Object> mount = mounts.stream().filter(m -> file.equals(m.get("mountPath") + "/" + key))
                .findFirst().orElseThrow(() -> new AssertionError("no mount holds " + file + ": " + mounts));
        assertThat((String) at(volume(rendered, (String) mount.get("name")), "secret", "secretName"))
                .isEqualTo(secretName);
    }

    private static Map<String, Object> service(Rendered rendered, String name) {
        return rendered.all("Service").stream().filter(s -> name.equals(at(s, "metadata", "name"))).findFirst()
                .orElseThrow(() -> new AssertionError("no Service " + name));
    }

    private static Map<String, Object> podSpec(Rendered rendered) {
        return at(rendered.one("StatefulSet"), "spec", "template", "spec");
    }

    private static Map<String, Object> container(Rendered rendered) {
        return at(podSpec(rendered), "containers", 0);
    }

    private static String checksum(Rendered rendered) {
        return at(rendered.one("StatefulSet"), "spec", "template", "metadata", "annotations", "checksum/config");
    }

    private static List<String> envNames(Rendered rendered) {
        return HelmChart.<List<Map<String, Object>>>at(container(rendered), "env").stream()
                .map(e -> (String) e.get("name")).toList();
    }

    private static Map<String, String> env(Rendered rendered) {
        Map<String, String> env = new LinkedHashMap<>();
        for (Map<String, Object> entry : HelmChart.<List<Map<String, Object>>>at(container(rendered), "env")) {
            env.put((String) entry.get("name"), (String) entry.get("value"));
        }
        return env;
    }

    private static Map<String, Object> volume(Rendered rendered, String name) {
        List<Map<String, Object>> volumes = at(podSpec(rendered), "volumes");
        return volumes.stream().filter(v -> Objects.equals(name, v.get("name"))).findFirst()
                .orElseThrow(() -> new AssertionError("no volume " + name + " in " + volumes));
    }

    private static String mountPath(Rendered rendered, String name) {
        List<Map<String, Object>> mounts = at(container(rendered), "volumeMounts");
        return mounts.stream().filter(m -> name.equals(m.get("name"))).map(m -> (String) m.get("mountPath"))
                .findFirst().orElseThrow(() -> new AssertionError("no volumeMount " + name + " in " + mounts));
    }
}
