{{/* Names, labels and the generated streetgate.yaml. */}}

{{- define "streetgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streetgate.fullname" -}}
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

{{- define "streetgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streetgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "streetgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "streetgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "streetgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "streetgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streetgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "streetgate.configMapName" -}}
{{- default (include "streetgate.fullname" .) .Values.config.existingConfigMap }}
{{- end }}

{{- define "streetgate.configDir" -}}/etc/streetgate{{- end }}

{{/* host:port for a listener; IPv6 hosts get brackets. */}}
{{- define "streetgate.addr" -}}
{{- $host := index . 0 }}
{{- if contains ":" $host }}
{{- printf "[%s]:%d" $host (int (index . 1)) }}
{{- else }}
{{- printf "%s:%d" $host (int (index . 1)) }}
{{- end }}
{{- end }}

{{/* Values that cannot work together fail the render with a message. */}}
{{- define "streetgate.validate" -}}
{{- if not (has .Values.mode (list "full" "sidecar-only" "ext-authz")) }}
{{- fail (printf "mode must be full, sidecar-only or ext-authz, not %q" .Values.mode) }}
{{- end }}
{{- if eq .Values.mode "ext-authz" }}
{{- $ports := list (int .Values.port) (int .Values.adminPort) (int .Values.check.port) (int .Values.check.grpcPort) }}
{{- if ne (len (uniq $ports)) 4 }}
{{- fail "ext-authz: port, adminPort, check.port and check.grpcPort must all differ" }}
{{- end }}
{{- end }}
{{- if eq (int .Values.port) (int .Values.adminPort) }}
{{- fail "port and adminPort must differ" }}
{{- end }}
{{- if and (eq .Values.mode "full") (eq (int .Values.port) (int .Values.api.port)) }}
{{- fail "port (streetgate) and api.port (the API container) share the pod's network: they must differ" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if not .Values.config.existingConfigMap }}
{{- if not .Values.jwks.url }}
{{- fail "jwks.url is required" }}
{{- end }}
{{- if not .Values.config.apis }}
{{- fail "config.apis needs at least one API" }}
{{- end }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled .Values.podDisruptionBudget.minAvailable .Values.podDisruptionBudget.maxUnavailable }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}

{{/*
The streetgate.yaml the chart generates: listeners, auth and grants from the values, routing
from config.apis, then config.extra deep-merged over it. Rendered with toYaml so it is always
well-formed YAML.
*/}}
{{- define "streetgate.config" -}}
{{- $v := .Values }}
{{- $listen := dict "addr" (include "streetgate.addr" (list $v.bindAddress $v.port)) }}
{{- if $v.tls.enabled }}
{{- $_ := set $listen "tls" (dict "cert" (printf "%s/tls.crt" (include "streetgate.configDir" .)) "key" (printf "%s/tls.key" (include "streetgate.configDir" .))) }}
{{- end }}
{{- $jwks := dict "url" (dict "url" $v.jwks.url "refresh_interval" $v.jwks.refreshInterval "min_refresh_interval" $v.jwks.minRefreshInterval) }}
{{- $auth := merge (dict "jwks" $jwks) (deepCopy $v.config.auth) }}
{{- $apis := list }}
{{- range $v.config.apis }}
{{- $api := deepCopy . }}
{{- if not $api.upstream }}
{{- $_ := set $api "upstream" (printf "http://127.0.0.1:%d" (int $v.api.port)) }}
{{- end }}
{{- $apis = append $apis $api }}
{{- end }}
{{- $cfg := dict "listen" $listen "admin" (dict "addr" (include "streetgate.addr" (list $v.bindAddress $v.adminPort))) "auth" $auth "shadow" $v.shadow "watch" $v.config.hotReload "shutdown" (dict "drain" (printf "%ds" (int $v.shutdown.drainSeconds))) "apis" $apis }}
{{- if eq $v.mode "ext-authz" }}
{{- $_ := set $cfg "check" (dict "addr" (include "streetgate.addr" (list $v.bindAddress $v.check.port)) "grpc_addr" (include "streetgate.addr" (list $v.bindAddress $v.check.grpcPort)) "trusted_proxies" $v.check.trustedProxies) }}
{{- end }}
{{- if $v.grants.url }}
{{- $_ := set $cfg "grants" (dict "source" (dict "url" (dict "url" $v.grants.url "poll_interval" $v.grants.pollInterval "max_backoff" $v.grants.maxBackoff)) "max_age" $v.grants.maxAge "on_stale" $v.grants.onStale) }}
{{- end }}
{{- toYaml (mergeOverwrite $cfg (deepCopy $v.config.extra)) }}
{{- end }}

{{/* Seconds the kubelet waits after the preStop hook starts before SIGKILL. */}}
{{- define "streetgate.terminationGracePeriodSeconds" -}}
{{- add (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.drainSeconds) (int .Values.shutdown.terminationMarginSeconds) }}
{{- end }}

{{/* preStop sleep for the API container: it must outlive streetgate's drain. */}}
{{- define "streetgate.apiPreStopSeconds" -}}
{{- add (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.drainSeconds) }}
{{- end }}
