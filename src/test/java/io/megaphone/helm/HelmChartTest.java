// SPDX-License-Identifier: Apache-2.0
package io.megaphone.helm;

import static io.megaphone.helm.HelmChart.at;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.marcnuri.helm.DryRun;
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import io.megaphone.helm.HelmChart.Rendered;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Helm chart, linted and rendered by the Helm library that helm-java embeds, for the default values and for
 * each ci/*-values.yaml. Assertions read the rendered manifests, not the templates.
 */
class HelmChartTest {

    private static final Map<String, Object> SELECTOR = Map.of(
            "app.kubernetes.io/name", "megaphone",
            "app.kubernetes.io/instance", HelmChart.RELEASE);

    private static Rendered defaults;

    @BeforeAll
    static void renderDefaults() {
        defaults = HelmChart.template(null);
    }

    /** null stands for the default values. */
    static Stream<Arguments> valueSets() {
        return Stream.concat(Stream.of(Arguments.of("default values", null)),
                HelmChart.ciValuesFiles().stream().map(f -> Arguments.of(f.getFileName().toString(), f)));
    }

    @Test
    void thereIsOneCiValuesFilePerFeature() {
        assertThat(HelmChart.ciValuesFiles()).extracting(f -> f.getFileName().toString())
                .contains("existing-secret-values.yaml", "hpa-values.yaml", "servicemonitor-values.yaml",
                        "dashboard-values.yaml", "headless-discovery-values.yaml", "link-tls-values.yaml",
                        "ingress-values.yaml", "prometheusrule-values.yaml", "networkpolicy-values.yaml",
                        "follow-links-values.yaml", "ejabberd-servicemonitor-values.yaml");
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void lintsCleanInStrictMode(String name, Path valuesFile, @TempDir Path tempDir) throws IOException {
        LintResult result = HelmChart.lint(valuesFile, tempDir);

        assertThat(result.isFailed()).as("helm lint --strict failed: %s", result.getMessages()).isFalse();
        assertThat(result.getMessages()).noneMatch(m -> m.contains("[ERROR]") || m.contains("[WARNING]"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void everyValueSetRendersProbesOnTheManagementPortAndADrainThatFitsTheGracePeriod(String name, Path valuesFile) {
        Rendered rendered = HelmChart.template(valuesFile);
        Map<String, Object> values = valuesFile == null ? HelmChart.load(HelmChart.CHART.resolve("values.yaml"))
                : HelmChart.merge(HelmChart.load(HelmChart.CHART.resolve("values.yaml")), HelmChart.load(valuesFile));
        int drain = at(values, "drain", "gracePeriodSeconds");
        int preStop = at(values, "drain", "preStopSleepSeconds");

        Map<String, Object> container = rendered.container();
        assertThat((String) at(container, "readinessProbe", "httpGet", "path")).isEqualTo("/actuator/health/readiness");
        assertThat((Object) at(container, "readinessProbe", "httpGet", "port")).isEqualTo("management");
        assertThat((String) at(container, "livenessProbe", "httpGet", "path")).isEqualTo("/actuator/health/liveness");
        assertThat((Object) at(container, "livenessProbe", "httpGet", "port")).isEqualTo("management");
        assertThat((List<Object>) at(container, "lifecycle", "preStop", "exec", "command"))
                .containsExactly("sleep", String.valueOf(preStop));

        assertThat((Integer) at(rendered.podSpec(), "terminationGracePeriodSeconds")).isEqualTo(preStop + drain + 10);
        assertThat((String) at(rendered.applicationConfig(), "spring", "lifecycle", "timeout-per-shutdown-phase"))
                .isEqualTo(drain + "s");
        assertThat((String) at(rendered.applicationConfig(), "megaphone", "edge", "drain-timeout"))
                .isEqualTo((drain - 15) + "s");

        assertThat((Map<String, Object>) at(rendered.deployment(), "spec", "selector", "matchLabels"))
                .isEqualTo(SELECTOR);
        assertThat(rendered.all("Service")).hasSize(2)
                .allSatisfy(service -> assertThat((Map<String, Object>) at(service, "spec", "selector")).isEqualTo(SELECTOR));
        assertThat((Map<String, Object>) at(rendered.deployment(), "spec", "template", "metadata", "labels"))
                .containsAllEntriesOf(SELECTOR);
        assertThat((String) at(rendered.deployment(), "spec", "template", "metadata", "annotations", "checksum/config"))
                .matches("[0-9a-f]{64}");
        assertSecurePod(rendered);
    }

    @Test
    void defaultsExposeBoshAndManagementPortsOnServicesOfTheirOwnAndTheContainer() {
        List<Map<String, Object>> boshPorts = at(service(defaults, "megaphone"), "spec", "ports");
        assertThat(boshPorts).extracting(p -> p.get("name"), p -> p.get("port"), p -> p.get("targetPort"))
                .containsExactly(org.assertj.core.groups.Tuple.tuple("bosh", 5280, "bosh"));
        Map<String, Object> management = service(defaults, "megaphone-management");
        assertThat((String) at(management, "spec", "type")).isEqualTo("ClusterIP");
        assertThat((String) at(management, "metadata", "labels", "megaphone.io/service")).isEqualTo("management");
        List<Map<String, Object>> managementPorts = at(management, "spec", "ports");
        assertThat(managementPorts).extracting(p -> p.get("name"), p -> p.get("port"), p -> p.get("targetPort"))
                .containsExactly(org.assertj.core.groups.Tuple.tuple("management", 9090, "management"));
        List<Map<String, Object>> containerPorts = at(defaults.container(), "ports");
        assertThat(containerPorts).extracting(p -> p.get("name"), p -> p.get("containerPort"))
                .containsExactly(
                        org.assertj.core.groups.Tuple.tuple("bosh", 5280),
                        org.assertj.core.groups.Tuple.tuple("management", 9090));
        assertThat(defaults.env()).containsEntry("MEGAPHONE_HTTP_PORT", "5280")
                .containsEntry("MEGAPHONE_MANAGEMENT_PORT", "9090");
        assertThat((Integer) at(defaults.applicationConfig(), "server", "port")).isEqualTo(5280);
        assertThat((Integer) at(defaults.applicationConfig(), "management", "server", "port")).isEqualTo(9090);
    }

    @Test
    void defaultsSleepTenSecondsForTheLoadBalancerThenDrainForNinetyWithinAHundredAndTenSecondGracePeriod() {
        assertThat((List<Object>) at(defaults.container(), "lifecycle", "preStop", "exec", "command"))
                .containsExactly("sleep", "10");
        assertThat((Integer) at(defaults.podSpec(), "terminationGracePeriodSeconds")).isEqualTo(110);
        assertThat((String) at(defaults.applicationConfig(), "spring", "lifecycle", "timeout-per-shutdown-phase"))
                .isEqualTo("90s");
        assertThat((String) at(defaults.applicationConfig(), "megaphone", "edge", "drain-timeout")).isEqualTo("75s");
        assertThat((String) at(defaults.applicationConfig(), "megaphone", "edge", "drain-delay")).isEqualTo("2s");
    }

    @Test
    void defaultsActivateTheProdProfileThenTheChartsK8sProfile() {
        assertThat(defaults.env()).containsEntry("SPRING_PROFILES_ACTIVE", "prod,k8s")
                .containsEntry("SPRING_CONFIG_ADDITIONAL_LOCATION", "optional:file:/etc/megaphone/config/");
        assertThat((String) at(defaults.volumeMount("config"), "mountPath")).isEqualTo("/etc/megaphone/config");
    }

    @Test
    void defaultsPutLinkAndEdgeSettingsInTheConfigMap() {
        Map<String, Object> config = defaults.applicationConfig();

        assertThat((List<Object>) at(config, "megaphone", "link", "nodes")).containsExactly("ejabberd:5290");
        assertThat((Integer) at(config, "megaphone", "link", "links-per-node")).isEqualTo(8);
        assertThat((String) at(config, "megaphone", "edge", "upstream-timeout")).isEqualTo("310s");
        assertThat((List<Object>) at(config, "megaphone", "edge", "paths")).containsExactly("/http-bind", "/bosh");
        assertThat((Integer) at(config, "megaphone", "edge", "admission", "max-held")).isEqualTo(70000);
        assertThat((String) at(config, "megaphone", "edge", "admission", "per-client"))
                .as("behind an ingress with no trusted proxies, no per-client throttle").isEqualTo("auto");
        assertThat((String) at(config, "megaphone", "edge", "forwarded-header")).isEqualTo("x-forwarded-for");
        assertThat((Object) at(config, "megaphone", "link", "secret")).as("no secret in a ConfigMap").isNull();
        assertThat((Object) at(config, "megaphone", "link", "discovery")).as("no DNS name, no discovery").isNull();
    }

    @Test
    void withNoLinkSecretGivenTheChartRefusesToRenderAndSaysWhatToSet() {
        assertThatThrownBy(HelmChart::templateBare)
                .hasMessageContaining("link secret: none given (expected: link.existingSecret")
                .hasMessageContaining("link.secret").hasMessageContaining("link.generateSecret=true");
    }

    @Test
    void defaultsMountTheExistingSecretAsTheFileTheEcmReadsAndCreateNone() {
        assertThat(defaults.all("Secret")).isEmpty();
        assertThat((String) at(defaults.volume("link-secret"), "secret", "secretName"))
                .isEqualTo(HelmChart.DEFAULT_EXISTING_SECRET);
        assertThat((String) at(defaults.volumeMount("link-secret"), "mountPath")).isEqualTo("/etc/megaphone/link");
        assertThat((Boolean) at(defaults.volumeMount("link-secret"), "readOnly")).isTrue();
        assertThat(defaults.env()).containsEntry("MEGAPHONE_LINK_SECRET_FILE", "/etc/megaphone/link/link-secret")
                .doesNotContainKey("MEGAPHONE_LINK_SECRET");
    }

    /** Argo CD and other GitOps tools render with helm template, on every sync: the secret must not change. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("valueSets")
    void theLinkSecretSurvivesHelmTemplateTwice(String name, Path valuesFile) {
        Rendered first = HelmChart.template(valuesFile);
        Rendered second = HelmChart.template(valuesFile);

        assertThat(second.all("Secret")).isEqualTo(first.all("Secret"));
        assertThat((Object) second.volume("link-secret")).isEqualTo(first.volume("link-secret"));
        assertThat(second.text()).as("the whole rendering").isEqualTo(first.text());
    }

    /**
     * link.generateSecret asks the cluster for the Secret it generated before (lookup), so that upgrades keep it.
     * helm-java's template has a cluster client (helm template has none, and lookup then finds nothing), so a render
     * shows that it asks; an install --dry-run, client only, renders as a first install does (its output has the
     * NOTES, not the manifest).
     */
    @Test
    void aGeneratedSecretIsOnlyOnRequestAndLooksForTheOneItGeneratedBefore(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("generate.yaml");
        Files.writeString(values, "link:\n  generateSecret: true\n");
        assertThatThrownBy(() -> HelmChart.template(values)).hasMessageContaining("lookup \"v1\" \"Secret\"");

        String output = new Helm(HelmChart.CHART).install().withName(HelmChart.RELEASE).withNamespace(HelmChart.NAMESPACE)
                .dryRun().withDryRunOption(DryRun.CLIENT).clientOnly().withValuesFile(values).call().getOutput();
        assertThat(output).contains("A random link secret was generated (link.generateSecret); upgrades keep it")
                .contains("Recommended: link.existingSecret").contains("not across helm template");
    }

    @Test
    void aGivenLinkSecretIsStoredAsGivenAndNotKeptAfterUninstall() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/servicemonitor-values.yaml"));
        Map<String, Object> secret = rendered.one("Secret");

        assertThat(new String(Base64.getDecoder().decode((String) at(secret, "data", "link-secret")),
                StandardCharsets.UTF_8)).isEqualTo("ci-secret-ci-secret-ci-secret-ci-secret");
        assertThat((Object) at(secret, "metadata", "annotations", "helm.sh/resource-policy")).isNull();
    }

    @Test
    void anExistingSecretIsMountedUnderItsKeyAndNoSecretIsCreated() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/existing-secret-values.yaml"));

        assertThat(rendered.all("Secret")).isEmpty();
        Map<String, Object> volume = rendered.volume("link-secret");
        assertThat((String) at(volume, "secret", "secretName")).isEqualTo("megaphone-link");
        assertThat((String) at(volume, "secret", "items", 0, "key")).isEqualTo("shared-secret");
        assertThat((String) at(rendered.volumeMount("link-secret"), "mountPath"))
                .isEqualTo("/var/run/secrets/megaphone");
        assertThat(rendered.env()).containsEntry("MEGAPHONE_LINK_SECRET_FILE", "/var/run/secrets/megaphone/shared-secret");
        assertThat((List<Object>) at(rendered.applicationConfig(), "megaphone", "link", "nodes")).hasSize(2);
        assertThat((Integer) at(rendered.applicationConfig(), "megaphone", "link", "links-per-node")).isEqualTo(4);
    }

    @Test
    void theDefaultImageIsTheOneTheWorkflowPublishesTaggedWithTheChartsAppVersion() throws IOException {
        Map<String, Object> chart = HelmChart.load(HelmChart.CHART.resolve("Chart.yaml"));
        String pom = Files.readString(Path.of("pom.xml"));
        java.util.regex.Matcher version = java.util.regex.Pattern
                .compile("</parent>\\s*<groupId>[^<]+</groupId>\\s*<artifactId>[^<]+</artifactId>\\s*<version>([^<]+)</version>")
                .matcher(pom);
        assertThat(version.find()).as("the project version in pom.xml").isTrue();

        assertThat((String) chart.get("appVersion")).as("the next release: the pom version without -SNAPSHOT")
                .isEqualTo(version.group(1).replace("-SNAPSHOT", ""));
        assertThat((String) at(defaults.container(), "image"))
                .isEqualTo("ghcr.io/megaphone/megaphone-ecm:" + chart.get("appVersion"));
        assertThat(Files.readString(Path.of(".github/workflows/ci.yml")))
                .contains("ECM_IMAGE=ghcr.io/$owner/megaphone-ecm")
                .contains("helm package helm/megaphone --version \"$VERSION\" --app-version \"$VERSION\"")
                .contains("helm push");
    }

    @Test
    void defaultsPreferToSpreadThePodsOverNodes() {
        Map<String, Object> term = at(defaults.podSpec(), "affinity", "podAntiAffinity",
                "preferredDuringSchedulingIgnoredDuringExecution", 0);
        assertThat((Integer) term.get("weight")).isEqualTo(100);
        assertThat((String) at(term, "podAffinityTerm", "topologyKey")).isEqualTo("kubernetes.io/hostname");
        assertThat((Map<String, Object>) at(term, "podAffinityTerm", "labelSelector", "matchLabels")).isEqualTo(SELECTOR);

        Rendered own = HelmChart.template(HelmChart.CHART.resolve("ci/hardened-values.yaml"));
        assertThat((Object) at(own.podSpec(), "affinity")).as("an affinity of the user's replaces the preset")
                .isEqualTo(Map.of("nodeAffinity", Map.of("preferredDuringSchedulingIgnoredDuringExecution",
                        List.of(Map.of("weight", 1, "preference", Map.of("matchExpressions", List.of(Map.of(
                                "key", "node-role.example.org/chat", "operator", "Exists"))))))));
    }

    @Test
    void aMaxHeldAboveWhatTheLinksCanCarryIsRefusedWithTheFix(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("four-links.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\n  linksPerNode: 4\n");

        assertThatThrownBy(() -> HelmChart.template(values)).hasMessageContaining(
                "edge.admission.maxHeld: 70000 (expected: <= 40000, the links' capacity: links-per-node 4 x"
                        + " link.maxInflight 10000 x 1 ejabberd nodes (link.nodes)");

        Files.writeString(values, "link:\n  existingSecret: s\n  nodes: [a:5290]\n"
                + "extraConfig:\n  megaphone:\n    link:\n      links-per-node: 6\n");
        assertThatThrownBy(() -> HelmChart.template(values)).as("extraConfig counts: it is what the ECM runs with")
                .hasMessageContaining("(expected: <= 60000");

        Files.writeString(values, "link:\n  existingSecret: s\n  linksPerNode: 4\n"
                + "  discovery:\n    dnsName: ejabberd-headless\n    minNodes: 2\n");
        assertThat((Integer) at(HelmChart.template(values).applicationConfig(), "megaphone", "edge", "admission",
                "max-held")).as("2 discovered nodes x 4 links x 10,000").isEqualTo(70000);
    }

    @Test
    void defaultsHaveAPodDisruptionBudgetButNoAutoscalerServiceMonitorOrDashboard() {
        assertThat((Integer) at(defaults.one("PodDisruptionBudget"), "spec", "maxUnavailable")).isEqualTo(1);
        assertThat((Map<String, Object>) at(defaults.one("PodDisruptionBudget"), "spec", "selector", "matchLabels"))
                .isEqualTo(SELECTOR);
        assertThat(defaults.all("HorizontalPodAutoscaler")).isEmpty();
        assertThat(defaults.all("ServiceMonitor")).isEmpty();
        assertThat(defaults.all("ConfigMap")).hasSize(1);
        assertThat((Integer) at(defaults.deployment(), "spec", "replicas")).isEqualTo(2);
    }

    @Test
    void theAutoscalerScalesOnCpuAndHeldRequestsPerPodAndOwnsTheReplicaCount() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/hpa-values.yaml"));
        Map<String, Object> hpa = rendered.one("HorizontalPodAutoscaler");

        assertThat((String) at(hpa, "apiVersion")).isEqualTo("autoscaling/v2");
        assertThat((String) at(hpa, "spec", "scaleTargetRef", "name")).isEqualTo("megaphone");
        assertThat((Integer) at(hpa, "spec", "minReplicas")).isEqualTo(3);
        assertThat((Integer) at(hpa, "spec", "maxReplicas")).isEqualTo(20);
        assertThat((Integer) at(hpa, "spec", "metrics", 0, "resource", "target", "averageUtilization")).isEqualTo(60);
        assertThat((String) at(hpa, "spec", "metrics", 1, "pods", "metric", "name"))
                .isEqualTo("megaphone_edge_held_requests");
        assertThat((String) at(hpa, "spec", "metrics", 1, "pods", "target", "averageValue")).isEqualTo("50000");
        assertThat((Object) at(rendered.deployment(), "spec", "replicas")).isNull();
        assertThat((Integer) at(rendered.one("PodDisruptionBudget"), "spec", "minAvailable")).isEqualTo(2);
        assertThat((Integer) at(rendered.podSpec(), "terminationGracePeriodSeconds")).isEqualTo(340);
        assertThat((String) at(rendered.applicationConfig(), "megaphone", "edge", "drain-timeout")).isEqualTo("305s");
    }

    @Test
    void theServiceMonitorScrapesActuatorPrometheusOnTheManagementPort() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/servicemonitor-values.yaml"));
        Map<String, Object> monitor = rendered.one("ServiceMonitor");

        assertThat((String) at(monitor, "apiVersion")).isEqualTo("monitoring.coreos.com/v1");
        assertThat((String) at(monitor, "metadata", "labels", "release")).isEqualTo("kube-prometheus-stack");
        Map<String, Object> managementService = new java.util.HashMap<>(SELECTOR);
        managementService.put("megaphone.io/service", "management");
        assertThat((Map<String, Object>) at(monitor, "spec", "selector", "matchLabels")).isEqualTo(managementService);
        assertThat((String) at(monitor, "spec", "endpoints", 0, "port")).isEqualTo("management");
        assertThat((String) at(monitor, "spec", "endpoints", 0, "path")).isEqualTo("/actuator/prometheus");
        assertThat((String) at(monitor, "spec", "endpoints", 0, "interval")).isEqualTo("15s");
    }

    @Test
    void enablingTheServiceMonitorLetsPrometheusThroughTheDefaultNetworkPolicy() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/servicemonitor-values.yaml"));
        List<Map<String, Object>> ingress = at(rendered.one("NetworkPolicy"), "spec", "ingress");

        assertThat(ingress).extracting(rule -> at(rule, "ports", 0, "port")).containsExactly("bosh", "management");
        assertThat((Map<String, Object>) at(ingress.get(1), "from", 0))
                .isEqualTo(Map.of("namespaceSelector", Map.of("matchLabels",
                        Map.of("kubernetes.io/metadata.name", "monitoring"))));
        assertThat((String) at(rendered.one("ServiceMonitor"), "spec", "endpoints", 0, "port"))
                .as("the port the policy opens").isEqualTo("management");
    }

    @Test
    void theEjabberdNetworkPolicyAdmitsPrometheusToTheMetricsPortWhenTheChartScrapesIt(@TempDir Path tempDir)
            throws IOException {
        Path values = tempDir.resolve("ejabberd-policy-and-monitor.yaml");
        Files.writeString(values, """
                link:
                  existingSecret: s
                networkPolicy:
                  ejabberd:
                    enabled: true
                    podSelector: {matchLabels: {app.kubernetes.io/name: ejabberd}}
                serviceMonitor:
                  ejabberd:
                    enabled: true
                    selector: {app.kubernetes.io/name: ejabberd}
                """);
        Map<String, Object> link = HelmChart.template(values).all("NetworkPolicy").stream()
                .filter(p -> "megaphone-link".equals(at(p, "metadata", "name"))).findFirst().orElseThrow();
        List<Map<String, Object>> ingress = at(link, "spec", "ingress");

        assertThat(ingress).extracting(rule -> at(rule, "ports", 0, "port")).containsExactly(5290, 5281);
        assertThat((String) at(ingress.get(1), "from", 0, "namespaceSelector", "matchLabels",
                "kubernetes.io/metadata.name")).isEqualTo("monitoring");
    }

    @Test
    void aServiceMonitorThatTheNetworkPolicyWouldRefuseIsRefusedWithTheFix(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("no-prometheus-peer.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\nserviceMonitor:\n  enabled: true\n  prometheusFrom: []\n");

        assertThatThrownBy(() -> HelmChart.template(values)).hasMessageContaining(
                "serviceMonitor.prometheusFrom and networkPolicy.managementFrom are empty: the NetworkPolicy would"
                        + " refuse every scrape (expected: serviceMonitor.prometheusFrom");
    }

    @Test
    void theEjabberdServiceMonitorScrapesModMegaphoneOnEjabberdsOwnServiceOnly() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/ejabberd-servicemonitor-values.yaml"));
        Map<String, Object> monitor = rendered.one("ServiceMonitor");

        assertThat((String) at(monitor, "metadata", "name")).isEqualTo("megaphone-ejabberd");
        assertThat((String) at(monitor, "metadata", "labels", "release")).isEqualTo("kube-prometheus-stack");
        assertThat((List<Object>) at(monitor, "spec", "namespaceSelector", "matchNames")).containsExactly("xmpp");
        assertThat((Map<String, Object>) at(monitor, "spec", "selector", "matchLabels"))
                .isEqualTo(Map.of("app.kubernetes.io/name", "ejabberd"));
        assertThat((String) at(monitor, "spec", "endpoints", 0, "port")).isEqualTo("metrics");
        assertThat((String) at(monitor, "spec", "endpoints", 0, "path")).isEqualTo("/megaphone/metrics");
        assertThat((String) at(monitor, "spec", "endpoints", 0, "interval")).isEqualTo("30s");
        assertThat((Map<String, Object>) at(monitor, "spec", "endpoints", 0, "relabelings", 0))
                .as("a job of our own for the ejabberd alerts")
                .isEqualTo(Map.of("targetLabel", "job", "replacement", "megaphone-ejabberd"));
    }

    @Test
    void theDashboardConfigMapCarriesTheDashboardForTheGrafanaSidecar() throws IOException {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/dashboard-values.yaml"));
        Map<String, Object> dashboard = rendered.all("ConfigMap").stream()
                .filter(c -> at(c, "data", "megaphone-dashboard.json") != null).findFirst()
                .orElseThrow(() -> new AssertionError("no dashboard ConfigMap"));

        assertThat((String) at(dashboard, "metadata", "labels", "grafana_dashboard")).isEqualTo("1");
        assertThat((String) at(dashboard, "metadata", "namespace")).isEqualTo("monitoring");
        assertThat((String) at(dashboard, "metadata", "annotations", "grafana_folder")).isEqualTo("Megaphone");
        assertThat((String) at(dashboard, "data", "megaphone-dashboard.json")).isEqualTo(
                Files.readString(HelmChart.CHART.resolve("files/megaphone-dashboard.json")).stripTrailing());
    }

    @Test
    void dnsDiscoveryIsConfiguredFromOneHeadlessServiceName() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/headless-discovery-values.yaml"));
        Map<String, Object> discovery = at(rendered.applicationConfig(), "megaphone", "link", "discovery");

        assertThat(discovery).containsEntry("dns-name", "ejabberd-headless.xmpp.svc.cluster.local")
                .containsEntry("port", 5290).containsEntry("refresh-interval", "15s");
    }

    @Test
    void defaultsRenderNothingForTlsOnTheLink() {
        assertThat((Object) at(defaults.applicationConfig(), "megaphone", "link", "tls"))
                .as("TLS off by default: no megaphone.link.tls.* in application-k8s.yaml").isNull();
        List<Map<String, Object>> volumes = at(defaults.podSpec(), "volumes");
        List<Map<String, Object>> mounts = at(defaults.container(), "volumeMounts");
        assertThat(volumes).extracting(v -> v.get("name")).doesNotContain("link-tls");
        assertThat(mounts).extracting(m -> m.get("name")).doesNotContain("link-tls");
        assertThat(defaults.text()).doesNotContain("link-tls").doesNotContain("megaphone.link.tls");
    }

    @Test
    void linkTlsMountsTheSecretReadOnlyAndPointsTheTlsPropertiesAtItsFiles() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/link-tls-values.yaml"));

        Map<String, Object> volume = rendered.volume("link-tls");
        assertThat((String) at(volume, "secret", "secretName")).isEqualTo("megaphone-link-tls");
        assertThat((List<Map<String, Object>>) at(volume, "secret", "items"))
                .extracting(i -> i.get("key"), i -> i.get("path"))
                .containsExactly(
                        org.assertj.core.groups.Tuple.tuple("ca.crt", "ca.crt"),
                        org.assertj.core.groups.Tuple.tuple("tls.crt", "tls.crt"),
                        org.assertj.core.groups.Tuple.tuple("tls.key", "tls.key"));
        assertThat((String) at(rendered.volumeMount("link-tls"), "mountPath")).isEqualTo("/etc/megaphone/link-tls");
        assertThat((Boolean) at(rendered.volumeMount("link-tls"), "readOnly")).isTrue();

        Map<String, Object> tls = at(rendered.applicationConfig(), "megaphone", "link", "tls");
        assertThat(tls).containsOnly(
                Map.entry("enabled", true),
                Map.entry("trust-certificates", "/etc/megaphone/link-tls/ca.crt"),
                Map.entry("certificate", "/etc/megaphone/link-tls/tls.crt"),
                Map.entry("private-key", "/etc/megaphone/link-tls/tls.key"),
                Map.entry("server-name", "ejabberd.xmpp.svc"),
                Map.entry("verify-hostname", true));
        // The link secret is still mounted and read from its file: TLS runs the same handshake inside.
        assertThat((String) at(rendered.volumeMount("link-secret"), "mountPath")).isEqualTo("/etc/megaphone/link");
        assertThat((String) at(rendered.deployment(), "spec", "template", "metadata", "annotations", "checksum/config"))
                .isNotEqualTo(at(defaults.deployment(), "spec", "template", "metadata", "annotations", "checksum/config"));
    }

    @Test
    void linkTlsWithoutAClientCertificateTrustsTheCaOnlyAndCanSkipTheHostnameCheck(@TempDir Path tempDir)
            throws IOException {
        Path values = tempDir.resolve("tls-server-only.yaml");
        Files.writeString(values, """
                link:
                  existingSecret: s
                  tls:
                    enabled: true
                    existingSecret: link-ca
                    trustCertificatesKey: bundle.pem
                    verifyHostname: false
                """);
        Rendered rendered = HelmChart.template(values);

        assertThat((List<Map<String, Object>>) at(rendered.volume("link-tls"), "secret", "items"))
                .extracting(i -> i.get("key")).containsExactly("bundle.pem");
        Map<String, Object> tls = at(rendered.applicationConfig(), "megaphone", "link", "tls");
        assertThat(tls).containsOnly(
                Map.entry("enabled", true),
                Map.entry("trust-certificates", "/etc/megaphone/link-tls/bundle.pem"),
                Map.entry("verify-hostname", false));
    }

    @Test
    void linkTlsWithoutASecretIsRefusedWithTheFix(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("tls-no-secret.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\n  tls:\n    enabled: true\n");

        assertThatThrownBy(() -> HelmChart.template(values))
                .hasMessageContaining("link.tls.enabled is true but link.tls.existingSecret is empty");
    }

    @Test
    void halfAClientCertificateIsRefused(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("tls-half-client.yaml");
        Files.writeString(values, """
                link:
                  existingSecret: s
                  tls:
                    enabled: true
                    existingSecret: megaphone-link-tls
                    clientCertificateKey: tls.crt
                """);

        assertThatThrownBy(() -> HelmChart.template(values))
                .hasMessageContaining("link.tls.clientCertificateKey is set but link.tls.clientKeyKey is empty");
    }

    @Test
    void extraConfigWinsOverTheValuesAndTheGcCanBeReplaced() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/hardened-values.yaml"));
        Map<String, Object> config = rendered.applicationConfig();

        assertThat((Integer) at(config, "megaphone", "link", "links-per-node")).isEqualTo(3);
        assertThat((String) at(config, "logging", "level", "io.megaphone.link")).isEqualTo("debug");
        assertThat((Boolean) at(config, "megaphone", "edge", "proxy-protocol")).isTrue();
        assertThat((List<Object>) at(config, "megaphone", "edge", "trusted-proxies")).containsExactly("10.0.0.0/8");
        assertThat(rendered.env()).containsEntry("JAVA_GC_OPTS", "-XX:+UseSerialGC");
        assertThat((String) at(service(rendered, "megaphone"), "spec", "externalTrafficPolicy")).isEqualTo("Local");
        assertThat((String) at(service(rendered, "megaphone-management"), "spec", "type")).isEqualTo("ClusterIP");
        assertThat((Map<String, Object>) at(rendered.podSpec(), "topologySpreadConstraints", 0, "labelSelector",
                "matchLabels")).isEqualTo(SELECTOR);
    }

    @Test
    void aConfigChangeChangesTheChecksumSoPodsRestart() {
        Rendered hardened = HelmChart.template(HelmChart.CHART.resolve("ci/hardened-values.yaml"));

        assertThat((String) at(hardened.deployment(), "spec", "template", "metadata", "annotations", "checksum/config"))
                .isNotEqualTo(at(defaults.deployment(), "spec", "template", "metadata", "annotations", "checksum/config"));
    }

    @Test
    void aGracePeriodTooShortForAnyBoshWaitIsRefusedWithTheFix(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("short-drain.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\ndrain:\n  gracePeriodSeconds: 10\n");

        assertThatThrownBy(() -> HelmChart.template(values))
                .hasMessageContaining("drain.gracePeriodSeconds").hasMessageContaining("30");
    }

    @Test
    void aGracePeriodShorterThanTheLongestWaitPlusTwentySecondsIsRefusedWithTheFix(@TempDir Path tempDir)
            throws IOException {
        Path values = tempDir.resolve("long-wait.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\ndrain:\n  gracePeriodSeconds: 90\n  longestWaitSeconds: 120\n");

        assertThatThrownBy(() -> HelmChart.template(values))
                .hasMessageContaining("drain.gracePeriodSeconds: 90 (expected: >= 140: drain.longestWaitSeconds 120 + 20");
    }

    @Test
    void defaultsAreReadyFromTheFirstLinkOnSoARestartOfTheSharedEjabberdDoesNotEmptyTheService() {
        assertThat((List<Object>) at(defaults.applicationConfig(), "management", "endpoint", "health", "group",
                "readiness", "include")).containsExactly("readinessState", "firstLink");

        Rendered following = HelmChart.template(HelmChart.CHART.resolve("ci/follow-links-values.yaml"));
        assertThat((List<Object>) at(following.applicationConfig(), "management", "endpoint", "health", "group",
                "readiness", "include")).containsExactly("readinessState", "links");
    }

    @Test
    void defaultsSizeTheJvmFromTheContainerLimitsAndRequestMemoryEqualToTheLimit() {
        assertThat(defaults.env()).containsEntry("JAVA_HEAP_PERCENT", "60").containsEntry("JAVA_MAX_DIRECT_MEMORY", "256m")
                .containsKey("JAVA_ACTIVE_PROCESSORS");
        List<Map<String, Object>> env = at(defaults.container(), "env");
        Map<String, Object> cpus = env.stream().filter(e -> "JAVA_ACTIVE_PROCESSORS".equals(e.get("name"))).findFirst()
                .orElseThrow();
        assertThat((String) at(cpus, "valueFrom", "resourceFieldRef", "resource")).isEqualTo("requests.cpu");
        assertThat((String) at(cpus, "valueFrom", "resourceFieldRef", "divisor")).isEqualTo("1");
        assertThat((String) at(defaults.container(), "resources", "requests", "memory"))
                .isEqualTo(at(defaults.container(), "resources", "limits", "memory"));
    }

    @Test
    void theNetworkPolicyAdmitsBoshFromAnyoneManagementOnlyFromTheListedPeersAndLetsOutOnlyDnsAndTheLinks() {
        Map<String, Object> policy = defaults.one("NetworkPolicy");
        assertThat((Map<String, Object>) at(policy, "spec", "podSelector", "matchLabels")).isEqualTo(SELECTOR);
        List<Map<String, Object>> ingress = at(policy, "spec", "ingress");
        assertThat(ingress).hasSize(1);
        assertThat((Object) at(ingress.get(0), "ports", 0, "port")).isEqualTo("bosh");
        assertThat((Object) at(ingress.get(0), "from")).isNull();
        List<Map<String, Object>> egress = at(policy, "spec", "egress");
        assertThat(egress).extracting(rule -> at(rule, "ports", 0, "port")).containsExactly(53, 5290);

        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/networkpolicy-values.yaml"));
        Map<String, Object> ecm = rendered.all("NetworkPolicy").stream()
                .filter(p -> "megaphone".equals(at(p, "metadata", "name"))).findFirst().orElseThrow();
        List<Map<String, Object>> ecmIngress = at(ecm, "spec", "ingress");
        assertThat(ecmIngress).extracting(rule -> at(rule, "ports", 0, "port")).containsExactly("bosh", "management");
        assertThat((String) at(ecmIngress.get(1), "from", 0, "namespaceSelector", "matchLabels",
                "kubernetes.io/metadata.name")).isEqualTo("monitoring");
        assertThat((List<Map<String, Object>>) at(ecm, "spec", "egress", 1, "ports"))
                .extracting(p -> p.get("port")).containsExactly(5290, 5291);

        Map<String, Object> link = rendered.all("NetworkPolicy").stream()
                .filter(p -> "megaphone-link".equals(at(p, "metadata", "name"))).findFirst().orElseThrow();
        assertThat((String) at(link, "metadata", "namespace")).isEqualTo("chat");
        assertThat((String) at(link, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name")).isEqualTo("ejabberd");
        assertThat((Map<String, Object>) at(link, "spec", "ingress", 0, "from", 0, "podSelector", "matchLabels"))
                .isEqualTo(SELECTOR);
        assertThat((String) at(link, "spec", "ingress", 0, "from", 0, "namespaceSelector", "matchLabels",
                "kubernetes.io/metadata.name")).isEqualTo(HelmChart.NAMESPACE);
        assertThat((Object) at(link, "spec", "ingress", 1, "ports", 0, "port")).isEqualTo(5222);
    }

    @Test
    void theIngressRoutesTheBoshPathsAndTheWebSocketPathWithAReadTimeoutAboveTheLongestWait() {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/ingress-values.yaml"));
        Map<String, Object> ingress = rendered.one("Ingress");

        assertThat((String) at(ingress, "spec", "ingressClassName")).isEqualTo("nginx");
        assertThat((String) at(ingress, "metadata", "annotations", "nginx.ingress.kubernetes.io/proxy-read-timeout"))
                .isEqualTo("150");
        assertThat((String) at(ingress, "spec", "rules", 0, "host")).isEqualTo("chat.example.org");
        List<Map<String, Object>> paths = at(ingress, "spec", "rules", 0, "http", "paths");
        assertThat(paths).extracting(p -> p.get("path")).containsExactly("/http-bind", "/bosh", "/xmpp-websocket");
        assertThat(paths).allSatisfy(path -> {
            assertThat((String) at(path, "pathType")).isEqualTo("Exact");
            assertThat((String) at(path, "backend", "service", "name")).isEqualTo("megaphone");
            assertThat((String) at(path, "backend", "service", "port", "name")).isEqualTo("bosh");
        });
        assertThat(defaults.all("Ingress")).isEmpty();
    }

    @Test
    void theWebSocketPathOfTheValuesIsTheEcmsPropertyAndTheIngresssRoute(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("ws-path.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\ningress:\n  enabled: true\nedge:\n  websocket:\n"
                + "    path: /chat/ws\n    allowedOrigins: [\"https://chat.example.org\"]\n    maxOpen: 50000\n"
                + "    pingIntervalSeconds: 25\n");
        Rendered rendered = HelmChart.template(values);

        Map<String, Object> websocket = at(rendered.applicationConfig(), "megaphone", "edge", "websocket");
        assertThat(websocket).containsEntry("enabled", true).containsEntry("path", "/chat/ws")
                .containsEntry("allowed-origins", List.of("https://chat.example.org"))
                .containsEntry("max-open", 50000).containsEntry("ping-interval", "25s");
        List<Map<String, Object>> paths = at(rendered.one("Ingress"), "spec", "rules", 0, "http", "paths");
        assertThat(paths).extracting(p -> p.get("path")).containsExactly("/http-bind", "/bosh", "/chat/ws");
        assertThat((String) at(defaults.applicationConfig(), "megaphone", "edge", "websocket", "path"))
                .as("the chart's default is the ECM's").isEqualTo("/xmpp-websocket");
        assertThat((Integer) at(defaults.applicationConfig(), "megaphone", "edge", "websocket", "max-open"))
                .as("the chart's default is the ECM's").isEqualTo(200000);
    }

    @Test
    void withWebSocketOffTheIngressRoutesOnlyBoshAndTheEcmServesNoWebSocket(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("ws-off.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\ningress:\n  enabled: true\nedge:\n  websocket:\n"
                + "    enabled: false\n");
        Rendered rendered = HelmChart.template(values);

        assertThat((Boolean) at(rendered.applicationConfig(), "megaphone", "edge", "websocket", "enabled")).isFalse();
        List<Map<String, Object>> paths = at(rendered.one("Ingress"), "spec", "rules", 0, "http", "paths");
        assertThat(paths).extracting(p -> p.get("path")).containsExactly("/http-bind", "/bosh");
    }

    @Test
    void aWebSocketPathThatIsABoshPathIsRefused(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("ws-clash.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\nedge:\n  websocket:\n    path: /bosh\n");

        assertThatThrownBy(() -> HelmChart.template(values))
                .hasMessageContaining("edge.websocket.path: /bosh (expected: a path that is not one of edge.paths");
    }

    @Test
    void anIngressReadTimeoutNotAboveTheLongestWaitIsRefused(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("short-ingress.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\ningress:\n  enabled: true\n  readTimeoutSeconds: 60\n");

        assertThatThrownBy(() -> HelmChart.template(values))
                .hasMessageContaining("ingress.readTimeoutSeconds: 60 (expected: > drain.longestWaitSeconds 60");
    }

    @Test
    void thePrometheusRuleAlertsOnScrapesLinksUpstreamErrorsAndCapacityWithARunbookEach() throws IOException {
        Rendered rendered = HelmChart.template(HelmChart.CHART.resolve("ci/prometheusrule-values.yaml"));
        Map<String, Object> rule = rendered.one("PrometheusRule");

        List<Map<String, Object>> groups = at(rule, "spec", "groups");
        assertThat(groups).extracting(g -> g.get("name")).containsExactly("megaphone-ecm", "megaphone-ejabberd");
        List<Map<String, Object>> rules = at(groups.get(0), "rules");
        assertThat(rules).extracting(r -> r.get("alert")).containsExactly("MegaphoneEcmTargetDown",
                "MegaphoneEcmMetricsAbsent", "MegaphoneNoLinkToEjabberd", "MegaphonePodWithoutLinks",
                "MegaphoneLinksDying", "MegaphoneUpstreamErrors", "MegaphoneHeldRequestsNearLimit",
                "MegaphoneHeldRequestsNearLinkCapacity", "MegaphoneLinkCapacityRefusals",
                "MegaphoneHeapPerHeldRequestHigh", "MegaphoneWebSocketsUnavailable");
        assertThat((String) at(rules.get(1), "expr"))
                .isEqualTo("absent(up{job=\"megaphone-management\", namespace=\"xmpp\"})");
        assertThat((String) at(rules.get(6), "expr")).endsWith("> 63000");
        assertThat((List<Map<String, Object>>) at(groups.get(1), "rules")).extracting(r -> r.get("alert"))
                .containsExactly("MegaphoneEjabberdTargetDown", "MegaphoneEjabberdMetricsAbsent",
                        "MegaphoneLinkHandshakesRefused", "MegaphoneLinkProtocolErrors");
        assertThat((String) at(groups.get(1), "rules", 0, "expr"))
                .isEqualTo("up{job=\"megaphone-ejabberd\", namespace=\"xmpp\"} == 0");

        String operations = Files.readString(Path.of("docs/operations.md"));
        for (Map<String, Object> group : groups) {
            for (Map<String, Object> alert : (List<Map<String, Object>>) group.get("rules")) {
                String name = (String) alert.get("alert");
                assertThat((String) at(alert, "labels", "team")).as(name).isEqualTo("chat");
                assertThat((String) at(alert, "labels", "severity")).as(name).isIn("critical", "warning", "info");
                assertThat((String) at(alert, "annotations", "runbook_url")).as(name).isEqualTo(
                        "https://github.com/megaphone/megaphone/blob/main/docs/operations.md#" + name.toLowerCase());
                assertThat(operations).as("docs/operations.md has a section for " + name)
                        .containsPattern("(?m)^#+ " + name + "$");
            }
        }
        assertThat((String) at(rule, "metadata", "labels", "release")).isEqualTo("kube-prometheus-stack");
        assertThat(defaults.all("PrometheusRule")).isEmpty();
    }

    @Test
    void theEjabberdAlertsNeedAJobToWatch(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("plain-job.yaml");
        Files.writeString(values, "link:\n  existingSecret: s\nprometheusRule:\n  enabled: true\n");
        assertThat((List<Map<String, Object>>) at(HelmChart.template(values).one("PrometheusRule"), "spec", "groups"))
                .as("no ejabberd scrape known: no absent() alert that would always fire").hasSize(1);

        Files.writeString(values, "link:\n  existingSecret: s\nprometheusRule:\n  enabled: true\n"
                + "  ejabberdJob: megaphone-ejabberd\n");
        assertThat((String) at(HelmChart.template(values).one("PrometheusRule"), "spec", "groups", 1, "rules", 1,
                "expr")).isEqualTo("absent(up{job=\"megaphone-ejabberd\"})");
    }

    @Test
    void aMisspeltValueIsRefusedByTheValuesSchema(@TempDir Path tempDir) throws IOException {
        Path values = tempDir.resolve("typo.yaml");
        Files.writeString(values, "drain:\n  gracePeriodSecond: 120\n");

        assertThatThrownBy(() -> HelmChart.template(values)).hasMessageContaining("gracePeriodSecond");
    }

    private static Map<String, Object> service(Rendered rendered, String name) {
        return rendered.all("Service").stream().filter(s -> name.equals(at(s, "metadata", "name"))).findFirst()
                .orElseThrow(() -> new AssertionError("no Service " + name));
    }

    private static void assertSecurePod(Rendered rendered) {
        Map<String, Object> pod = at(rendered.podSpec(), "securityContext");
        assertThat((Boolean) at(pod, "runAsNonRoot")).isTrue();
        assertThat((Integer) at(pod, "runAsUser")).isEqualTo(10001);
        assertThat((String) at(pod, "seccompProfile", "type")).isEqualTo("RuntimeDefault");

        Map<String, Object> container = at(rendered.container(), "securityContext");
        assertThat((Boolean) at(container, "runAsNonRoot")).isTrue();
        assertThat((Boolean) at(container, "readOnlyRootFilesystem")).isTrue();
        assertThat((Boolean) at(container, "allowPrivilegeEscalation")).isFalse();
        assertThat((List<Object>) at(container, "capabilities", "drop")).containsExactly("ALL");
        assertThat((String) at(container, "seccompProfile", "type")).isEqualTo("RuntimeDefault");

        assertThat((String) at(rendered.volumeMount("tmp"), "mountPath")).isEqualTo("/tmp");
        assertThat((Object) at(rendered.volume("tmp"), "emptyDir")).isNotNull();
        assertThat((Boolean) at(rendered.podSpec(), "automountServiceAccountToken")).isFalse();
    }
}
