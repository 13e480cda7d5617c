{{- /* SPDX-License-Identifier: Apache-2.0 */ -}}
{{/*
megaphone.name: the chart name, or nameOverride; used as app.kubernetes.io/name.
Truncated to 63 characters (the DNS label limit of Kubernetes names).
*/}}
{{- define "megaphone.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
megaphone.fullname: the base name of every resource: fullnameOverride, or "<release>-<name>",
or just the release name when it already contains the chart name. Truncated to 63 characters.
*/}}
{{- define "megaphone.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
megaphone.chart: "<chart>-<version>" for the helm.sh/chart label ("+" is not allowed in label values).
*/}}
{{- define "megaphone.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
megaphone.selectorLabels: the labels that select the pods. Only name and instance: they never change
over the life of a release, and a Deployment's selector is immutable.
*/}}
{{- define "megaphone.selectorLabels" -}}
app.kubernetes.io/name: {{ include "megaphone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
megaphone.labels: the labels of every resource: the selector labels, the chart, version and
manager labels, and commonLabels.
*/}}
{{- define "megaphone.labels" -}}
helm.sh/chart: {{ include "megaphone.chart" . }}
{{ include "megaphone.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/component: ecm
app.kubernetes.io/part-of: megaphone
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
megaphone.annotations: commonAnnotations as a metadata.annotations block (nothing when empty).
Call with the root context; indent the result where it is used.
*/}}
{{- define "megaphone.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
megaphone.image: the image reference: repository@digest when a digest is set, else
repository:tag with the tag defaulting to the chart's appVersion.
*/}}
{{- define "megaphone.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
megaphone.serviceAccountName: the ServiceAccount the pods run as: serviceAccount.name, or the
fullname when the chart creates one, or "default".
*/}}
{{- define "megaphone.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "megaphone.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
megaphone.secretName: the Secret that holds the link secret: link.existingSecret, or the one the
chart creates from link.secret or link.generateSecret. Fails with the fix when none of the three is set.
*/}}
{{- define "megaphone.secretName" -}}
{{- if .Values.link.existingSecret }}
{{- .Values.link.existingSecret }}
{{- else if or .Values.link.secret .Values.link.generateSecret }}
{{- include "megaphone.fullname" . }}
{{- else }}
{{- fail "link secret: none given (expected: link.existingSecret, the name of a Secret you create and ejabberd's mod_megaphone mounts too, e.g. kubectl -n NAMESPACE create secret generic megaphone-link --from-literal=link-secret=\"$(openssl rand -base64 36)\"; or link.secret; or link.generateSecret=true, which keeps the generated one across helm upgrade but not across helm template)" }}
{{- end }}
{{- end }}

{{/*
megaphone.secretFile: the path of the mounted link secret, read by the ECM (MEGAPHONE_LINK_SECRET_FILE).
*/}}
{{- define "megaphone.secretFile" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.link.secretMountPath) .Values.link.existingSecretKey }}
{{- end }}

{{/*
megaphone.profiles: SPRING_PROFILES_ACTIVE: the profiles value, then "k8s" (the ConfigMap's
application-k8s.yaml), last so that it wins over the other profiles' files.
*/}}
{{- define "megaphone.profiles" -}}
{{- $profiles := list }}
{{- range (splitList "," (toString .Values.profiles)) }}
{{- if trim . }}{{- $profiles = append $profiles (trim .) }}{{- end }}
{{- end }}
{{- append $profiles "k8s" | uniq | join "," }}
{{- end }}

{{/*
megaphone.terminationGracePeriodSeconds: the preStop sleep (the load balancer's deregistration), then the
drain (drain.gracePeriodSeconds, which covers one BOSH wait), then 10 s for the JVM's exit: Kubernetes must
never SIGKILL a pod that is still finishing its held requests. The clock starts before preStop runs.
*/}}
{{- define "megaphone.terminationGracePeriodSeconds" -}}
{{- add (int .Values.drain.preStopSleepSeconds) (int .Values.drain.gracePeriodSeconds) 10 }}
{{- end }}

{{/*
megaphone.managementServiceName: the Service of the management port (Actuator: probes, /actuator/prometheus),
apart from the client-facing one so that it is never published with it.
*/}}
{{- define "megaphone.managementServiceName" -}}
{{- printf "%s-management" (include "megaphone.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
megaphone.linkPorts: the distinct ports of the ejabberd nodes the ECM links to (link.nodes "host:port", or
link.discovery.port), one per line; the NetworkPolicy's egress allows them.
*/}}
{{- define "megaphone.linkPorts" -}}
{{- $ports := list }}
{{- if .Values.link.discovery.dnsName }}
{{- $ports = append $ports (int .Values.link.discovery.port) }}
{{- else }}
{{- range .Values.link.nodes }}
{{- $ports = append $ports (int (last (splitList ":" (toString .)))) }}
{{- end }}
{{- end }}
{{- $ports | uniq | join "\n" }}
{{- end }}

{{/*
megaphone.applicationConfig: the Spring properties of application-k8s.yaml, built from the values,
with extraConfig merged over them (a WebSocket path that is also a BOSH path is refused). Its checksum restarts the pods when it changes. The drain: the
shutdown phase lasts drain.gracePeriodSeconds, held requests get 15 s less (the web server's own stop
and the link GOAWAY fit in the rest).
*/}}
{{- define "megaphone.applicationConfig" -}}
{{- $edge := .Values.edge }}
{{- $grace := int .Values.drain.gracePeriodSeconds }}
{{- if lt $grace 30 }}
{{- fail (printf "drain.gracePeriodSeconds: %d (expected: >= 30, and 15 above the longest BOSH wait)" $grace) }}
{{- end }}
{{- $longestWait := int .Values.drain.longestWaitSeconds }}
{{- if lt (sub $grace 15) (add $longestWait 5) }}
{{- fail (printf "drain.gracePeriodSeconds: %d (expected: >= %d: drain.longestWaitSeconds %d + 20, so that a held request gets its full BOSH wait during a drain)" $grace (add $longestWait 20) $longestWait) }}
{{- end }}
{{- include "megaphone.validateLinkTls" . }}
{{- /* Readiness: "firstLink" (ready from the first link on, docs/operations.md) or "links" (ready while linked). */ -}}
{{- $readiness := list "readinessState" (ternary "links" "firstLink" .Values.readinessProbe.followLinks) }}
{{- $config := dict
  "server" (dict "port" (int .Values.containerPorts.bosh))
  "management" (dict
    "server" (dict "port" (int .Values.containerPorts.management))
    "endpoint" (dict "health" (dict "group" (dict "readiness" (dict "include" $readiness)))))
  "spring" (dict "lifecycle" (dict "timeout-per-shutdown-phase" (printf "%ds" $grace)))
  "megaphone" (dict
    "link" (dict
      "nodes" .Values.link.nodes
      "links-per-node" (int .Values.link.linksPerNode)
      "heartbeat" .Values.link.heartbeat)
    "edge" (dict
      "paths" $edge.paths
      "upstream-timeout" $edge.upstreamTimeout
      "max-body-bytes" (int $edge.maxBodyBytes)
      "retry-after-seconds" (int $edge.retryAfterSeconds)
      "trusted-proxies" $edge.trustedProxies
      "forwarded-header" $edge.forwardedHeader
      "proxy-protocol" $edge.proxyProtocol
      "drain-timeout" (printf "%ds" (sub $grace 15))
      "drain-delay" (printf "%ds" (int .Values.drain.delaySeconds))
      "cors" (dict
        "allowed-origins" $edge.cors.allowedOrigins
        "allow-credentials" $edge.cors.allowCredentials)
      "admission" (dict
        "max-held" (int $edge.admission.maxHeld)
        "sessions-per-second" $edge.admission.sessionsPerSecond
        "sessions-burst" $edge.admission.sessionsBurst
        "sessions-per-second-per-client" $edge.admission.sessionsPerSecondPerClient
        "sessions-burst-per-client" $edge.admission.sessionsBurstPerClient
        "per-client" $edge.admission.perClient)
      "websocket" (dict
        "enabled" $edge.websocket.enabled
        "path" $edge.websocket.path
        "allowed-origins" $edge.websocket.allowedOrigins
        "max-open" (int $edge.websocket.maxOpen)
        "ping-interval" (printf "%ds" (int $edge.websocket.pingIntervalSeconds)))))
}}
{{- if and $edge.websocket.enabled (has $edge.websocket.path $edge.paths) }}
{{- fail (printf "edge.websocket.path: %s (expected: a path that is not one of edge.paths %v; the WebSocket endpoint would take it from BOSH)" $edge.websocket.path $edge.paths) }}
{{- end }}
{{- with .Values.link.discovery }}
{{- if .dnsName }}
{{- $_ := set $config.megaphone.link "discovery" (dict "dns-name" .dnsName "port" (int .port) "refresh-interval" .refreshInterval) }}
{{- end }}
{{- end }}
{{- with .Values.link.tls }}
{{- if .enabled }}
{{- $dir := include "megaphone.linkTlsMountPath" $ }}
{{- $tls := dict
  "enabled" true
  "trust-certificates" (printf "%s/%s" $dir .trustCertificatesKey)
  "verify-hostname" .verifyHostname }}
{{- if .clientCertificateKey }}
{{- $_ := set $tls "certificate" (printf "%s/%s" $dir .clientCertificateKey) }}
{{- $_ := set $tls "private-key" (printf "%s/%s" $dir .clientKeyKey) }}
{{- end }}
{{- with .serverName }}
{{- $_ := set $tls "server-name" . }}
{{- end }}
{{- $_ := set $config.megaphone.link "tls" $tls }}
{{- end }}
{{- end }}
{{- $config = mustMergeOverwrite $config (deepCopy .Values.extraConfig) }}
{{- include "megaphone.validateCapacity" (dict "config" $config "root" .) }}
{{- $config | toYaml }}
{{- end }}

{{/*
megaphone.linkTlsMountPath: the folder where link.tls.existingSecret is mounted; the ECM reads its PEM files
from there (megaphone.link.tls.trust-certificates, certificate, private-key).
*/}}
{{- define "megaphone.linkTlsMountPath" -}}
/etc/megaphone/link-tls
{{- end }}

{{/*
megaphone.validateLinkTls: refuses link.tls.enabled without the Secret that holds the PEM files, without a
trust key, or with half of a client certificate. Called from megaphone.applicationConfig.
*/}}
{{- define "megaphone.validateLinkTls" -}}
{{- with .Values.link.tls }}
{{- if .enabled }}
{{- if not .existingSecret }}
{{- fail "link.tls.enabled is true but link.tls.existingSecret is empty: name a Secret holding the PEM files (link.tls.trustCertificatesKey, default ca.crt; for mutual TLS also link.tls.clientCertificateKey and link.tls.clientKeyKey), e.g. kubectl create secret generic megaphone-link-tls --from-file=ca.crt" }}
{{- end }}
{{- if not .trustCertificatesKey }}
{{- fail "link.tls.enabled is true but link.tls.trustCertificatesKey is empty: name the Secret's key of the PEM CA certificates (default ca.crt)" }}
{{- end }}
{{- if and .clientCertificateKey (not .clientKeyKey) }}
{{- fail "link.tls.clientCertificateKey is set but link.tls.clientKeyKey is empty: mutual TLS needs both the client certificate and its private key" }}
{{- end }}
{{- if and .clientKeyKey (not .clientCertificateKey) }}
{{- fail "link.tls.clientKeyKey is set but link.tls.clientCertificateKey is empty: mutual TLS needs both the client certificate and its private key" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
megaphone.managementPeers: the peers the NetworkPolicy admits to the management port, as a YAML list:
networkPolicy.managementFrom, plus serviceMonitor.prometheusFrom when the chart makes a ServiceMonitor (else its
scrapes would be refused). Fails with the fix when a ServiceMonitor is made but no peer would be admitted.
*/}}
{{- define "megaphone.managementPeers" -}}
{{- $peers := list }}
{{- range .Values.networkPolicy.managementFrom }}{{ $peers = append $peers . }}{{ end }}
{{- if .Values.serviceMonitor.enabled }}
{{- range .Values.serviceMonitor.prometheusFrom }}{{ $peers = append $peers . }}{{ end }}
{{- if and .Values.networkPolicy.enabled (not $peers) }}
{{- fail "serviceMonitor.enabled with networkPolicy.enabled, but serviceMonitor.prometheusFrom and networkPolicy.managementFrom are empty: the NetworkPolicy would refuse every scrape (expected: serviceMonitor.prometheusFrom, the peers Prometheus runs in, e.g. [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], or networkPolicy.enabled=false)" }}
{{- end }}
{{- end }}
{{- toYaml $peers }}
{{- end }}

{{/*
megaphone.validateCapacity: refuses an edge.admission.max-held above what the links can carry: links-per-node x
mod_megaphone's max_inflight (link.maxInflight) x the ejabberd nodes (link.nodes, or link.discovery.minNodes).
Reads the final Spring properties (extraConfig included). Past that capacity the ECM refuses requests with
reason link_capacity long before max-held (docs/operations.md, "Capacity").
*/}}
{{- define "megaphone.validateCapacity" -}}
{{- $link := .config.megaphone.link }}
{{- $links := int (index $link "links-per-node") }}
{{- $maxHeld := int (index .config.megaphone.edge.admission "max-held") }}
{{- $maxInflight := int .root.Values.link.maxInflight }}
{{- $nodes := 0 }}
{{- $from := "" }}
{{- if hasKey $link "discovery" }}
{{- $nodes = int .root.Values.link.discovery.minNodes }}
{{- $from = "link.discovery.minNodes" }}
{{- else }}
{{- $nodes = len $link.nodes }}
{{- $from = "link.nodes" }}
{{- end }}
{{- $capacity := mul $links $maxInflight $nodes }}
{{- if gt $maxHeld $capacity }}
{{- fail (printf "edge.admission.maxHeld: %d (expected: <= %d, the links' capacity: links-per-node %d x link.maxInflight %d x %d ejabberd nodes (%s); above it requests get 503 with reason link_capacity: raise link.linksPerNode, or mod_megaphone's max_inflight with link.maxInflight, or lower maxHeld; docs/operations.md, Capacity)" $maxHeld $capacity $links $maxInflight $nodes $from) }}
{{- end }}
{{- end }}

{{/*
megaphone.ejabberdJob: the job label of mod_megaphone's scrape, for the ejabberd alerts: prometheusRule.ejabberdJob,
or "<fullname>-ejabberd", the job serviceMonitor.ejabberd's ServiceMonitor sets; empty when neither applies.
*/}}
{{- define "megaphone.ejabberdJob" -}}
{{- if .Values.prometheusRule.ejabberdJob }}
{{- .Values.prometheusRule.ejabberdJob }}
{{- else if .Values.serviceMonitor.ejabberd.enabled }}
{{- printf "%s-ejabberd" (include "megaphone.fullname" .) }}
{{- end }}
{{- end }}
