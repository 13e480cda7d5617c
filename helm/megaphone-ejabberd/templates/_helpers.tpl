{{- /* SPDX-License-Identifier: Apache-2.0 */ -}}
{{/*
megaphone-ejabberd.name: the chart name, or nameOverride; used as app.kubernetes.io/name.
*/}}
{{- define "megaphone-ejabberd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
megaphone-ejabberd.fullname: the base name of every resource and of the pods (<fullname>-0, -1, ...):
fullnameOverride, or the release name when it contains "ejabberd" (release "ejabberd": pods ejabberd-0...),
or "<release>-<name>". At most 52 characters, so that pod names and the StatefulSet's revision label fit in 63.
*/}}
{{- define "megaphone-ejabberd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else if contains "ejabberd" .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "megaphone-ejabberd.name" .) | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
megaphone-ejabberd.headlessName: the headless Service that names every pod (<pod>.<headless>.<namespace>.svc),
ready or not: the Erlang node names.
*/}}
{{- define "megaphone-ejabberd.headlessName" -}}
{{- printf "%s-headless" (include "megaphone-ejabberd.fullname" .) }}
{{- end }}

{{/*
megaphone-ejabberd.linkServiceName: the headless Service of the link port, resolving to the ready pods only.
*/}}
{{- define "megaphone-ejabberd.linkServiceName" -}}
{{- printf "%s-link" (include "megaphone-ejabberd.fullname" .) }}
{{- end }}

{{/*
megaphone-ejabberd.linkFqdn: the link Service's DNS name, "<link>.<namespace>.svc.<clusterDomain>": the ECM
chart's link.discovery.dnsName.
*/}}
{{- define "megaphone-ejabberd.linkFqdn" -}}
{{- printf "%s.%s.svc.%s" (include "megaphone-ejabberd.linkServiceName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/*
megaphone-ejabberd.selectorLabels: name and instance only; a StatefulSet's selector is immutable.
*/}}
{{- define "megaphone-ejabberd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "megaphone-ejabberd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
megaphone-ejabberd.labels: the selector labels, chart, version, component, manager, and commonLabels.
*/}}
{{- define "megaphone-ejabberd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "megaphone-ejabberd.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/component: ejabberd
app.kubernetes.io/part-of: megaphone
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
megaphone-ejabberd.image: repository@digest, or repository:tag with the tag defaulting to appVersion.
*/}}
{{- define "megaphone-ejabberd.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}
