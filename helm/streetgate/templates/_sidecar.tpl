{{/*
The streetgate sidecar as reusable pieces. The chart's own Deployment uses them (mode: full);
with mode: sidecar-only, add them to your own Deployment from a parent chart that has this chart
as a dependency named `streetgate` (see docs/helm.md and examples/own-deployment):

  metadata:
    annotations:
      {{- include "streetgate.sidecar.podAnnotations" .Subcharts.streetgate | nindent 8 }}
  spec:
    terminationGracePeriodSeconds: {{ include "streetgate.terminationGracePeriodSeconds" .Subcharts.streetgate }}
    containers:
      {{- include "streetgate.sidecar.container" .Subcharts.streetgate | nindent 6 }}
    volumes:
      {{- include "streetgate.sidecar.volumes" .Subcharts.streetgate | nindent 6 }}

Port names carry an `sg-` prefix so they do not clash with the API container's (port names are
unique per pod). streetgate is an ordinary container, not a native sidecar (an init container
with restartPolicy: Always): native sidecars are stopped after the main containers, and an
inbound proxy must stop taking requests before the API it forwards to goes away.
*/}}

{{- define "streetgate.sidecar.container" -}}
- name: streetgate
  image: {{ include "streetgate.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - serve
    - --config
    - {{ include "streetgate.configDir" . }}/streetgate.yaml
  env:
    - name: RUST_LOG
      value: {{ .Values.logLevel | quote }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: {{ ternary "sg-https" "sg-http" .Values.tls.enabled }}
      containerPort: {{ int .Values.port }}
      protocol: TCP
    - name: sg-admin
      containerPort: {{ int .Values.adminPort }}
      protocol: TCP
    {{- if eq .Values.mode "ext-authz" }}
    - name: sg-check
      containerPort: {{ int .Values.check.port }}
      protocol: TCP
    - name: sg-check-grpc
      containerPort: {{ int .Values.check.grpcPort }}
      protocol: TCP
    {{- end }}
  {{- range $kind := list "startupProbe" "livenessProbe" "readinessProbe" }}
  {{- with index $.Values $kind }}
  {{- $probe := deepCopy . }}
  {{- if and $probe.httpGet (not $probe.httpGet.port) }}
  {{- $_ := set $probe.httpGet "port" "sg-admin" }}
  {{- end }}
  {{ $kind }}:
    {{- toYaml $probe | nindent 4 }}
  {{- end }}
  {{- end }}
  lifecycle:
    preStop:
      {{- /* The image has no shell: use the kubelet's sleep action, not `exec sleep`. */}}
      sleep:
        seconds: {{ int .Values.shutdown.preStopSleepSeconds }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.containerSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    - name: streetgate-config
      mountPath: {{ include "streetgate.configDir" . }}
      readOnly: true
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
One projected volume holds streetgate.yaml and, with TLS, tls.crt and tls.key. It is mounted as
a directory (never subPath) so the kubelet's updates reach the file for hot reload.
*/}}
{{- define "streetgate.sidecar.volumes" -}}
- name: streetgate-config
  projected:
    defaultMode: 0444
    sources:
      - configMap:
          name: {{ include "streetgate.configMapName" . }}
          items:
            - key: {{ ternary .Values.config.existingConfigMapKey "streetgate.yaml" (ne .Values.config.existingConfigMap "") }}
              path: streetgate.yaml
      {{- if .Values.tls.enabled }}
      - secret:
          name: {{ .Values.tls.secretName }}
          items:
            - key: tls.crt
              path: tls.crt
            - key: tls.key
              path: tls.key
      {{- end }}
{{- end }}

{{/*
Pod annotations: a checksum of the rendered config so `helm upgrade` rolls the pods when it
changes. Left out with hot reload (streetgate picks the change up in place) and with an
existing ConfigMap (the chart cannot see its contents). Always renders at least one line.
*/}}
{{- define "streetgate.sidecar.podAnnotations" -}}
{{- if and (not .Values.config.hotReload) (not .Values.config.existingConfigMap) -}}
checksum/streetgate-config: {{ include "streetgate.config" . | sha256sum }}
{{- else -}}
streetgate/config-reload: {{ ternary "in-place" "external" .Values.config.hotReload }}
{{- end }}
{{- end }}
