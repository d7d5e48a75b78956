{{/*
Names.
*/}}
{{- define "openheim.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "openheim.fullname" -}}
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

{{/* Name of one component's resources: openheim.componentName (dict "root" $ "component" "agent-loop") */}}
{{- define "openheim.componentName" -}}
{{- printf "%s-%s" (include "openheim.fullname" .root | trunc 45 | trimSuffix "-") .component }}
{{- end }}

{{- define "openheim.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels.
*/}}
{{- define "openheim.labels" -}}
helm.sh/chart: {{ include "openheim.chart" . }}
app.kubernetes.io/name: {{ include "openheim.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: openheim
{{- end }}

{{/* openheim.componentLabels (dict "root" $ "component" "gateway") */}}
{{- define "openheim.componentLabels" -}}
{{ include "openheim.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* openheim.selectorLabels (dict "root" $ "component" "gateway") */}}
{{- define "openheim.selectorLabels" -}}
app.kubernetes.io/name: {{ include "openheim.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "openheim.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "openheim.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "openheim.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* gRPC address of a component: openheim.address (dict "root" $ "component" "llm-proxy") */}}
{{- define "openheim.address" -}}
{{- printf "http://%s:50051" (include "openheim.componentName" .) }}
{{- end }}

{{/* Name of agent-loop's headless Service (one DNS record per ready pod) */}}
{{- define "openheim.agentLoopHeadlessName" -}}
{{- printf "%s-headless" (include "openheim.componentName" (dict "root" . "component" "agent-loop") | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
gRPC address of agent-loop for its callers: the headless Service when
agentLoop.headlessService is on, so callers resolve every replica and
balance turns over them; the ClusterIP Service otherwise.
*/}}
{{- define "openheim.agentLoopAddress" -}}
{{- if .Values.agentLoop.headlessService }}
{{- printf "http://%s:50051" (include "openheim.agentLoopHeadlessName" .) }}
{{- else }}
{{- include "openheim.address" (dict "root" . "component" "agent-loop") }}
{{- end }}
{{- end }}

{{- define "openheim.providersSecretName" -}}
{{- default (printf "%s-providers" (include "openheim.fullname" .)) .Values.providers.existingSecret }}
{{- end }}

{{- define "openheim.gatewayAuthSecretName" -}}
{{- default (printf "%s-gateway-auth" (include "openheim.fullname" .)) .Values.gateway.auth.existingSecret }}
{{- end }}

{{- define "openheim.workspaceClaimName" -}}
{{- default (printf "%s-workspace" (include "openheim.fullname" .)) .Values.workspace.persistence.existingClaim }}
{{- end }}

{{/*
The session store URL as an env var entry: an external Redis (literal URL or
from a Secret), else the bundled Redis.
*/}}
{{- define "openheim.storeEnv" -}}
{{- $external := .Values.redis.external -}}
- name: OPENHEIM_STORE__URL
{{- if $external.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $external.existingSecret }}
      key: {{ $external.existingSecretKey }}
{{- else if $external.url }}
  value: {{ $external.url | quote }}
{{- else if .Values.redis.bundled.enabled }}
  value: {{ printf "redis://%s:6379" (include "openheim.componentName" (dict "root" . "component" "redis")) | quote }}
{{- else }}
{{- fail "the session store needs Redis: set redis.external.url (or redis.external.existingSecret) or redis.bundled.enabled=true" }}
{{- end }}
{{- end }}

{{/*
Environment of every openheim container: configuration file, directories,
the addresses of the services, telemetry, logging.
openheim.env (dict "root" $ "component" "agent-loop" "values" .Values.agentLoop)
*/}}
{{- define "openheim.env" -}}
{{- $root := .root -}}
- name: OPENHEIM_CONFIG
  value: /etc/openheim/config.toml
- name: OPENHEIM_HOME
  value: /data
- name: OPENHEIM_WORK_DIR
  value: /workspace
{{- with $root.Values.workspace.division }}
- name: OPENHEIM_SERVER__WORKSPACES
  value: {{ . | quote }}
{{- end }}
- name: OPENHEIM_SERVICES__AGENT_LOOP
  value: {{ include "openheim.agentLoopAddress" $root }}
- name: OPENHEIM_SERVICES__LLM_PROXY
  value: {{ include "openheim.address" (dict "root" $root "component" "llm-proxy") }}
- name: OPENHEIM_SERVICES__TOOL_EXECUTOR
  value: {{ include "openheim.address" (dict "root" $root "component" "tool-executor") }}
- name: OPENHEIM_SERVICES__MCP_BROKER
  value: {{ include "openheim.address" (dict "root" $root "component" "mcp-broker") }}
- name: OTEL_SERVICE_NAME
  value: openheim-{{ .component }}
- name: OPENHEIM_TELEMETRY__SERVICE_NAME
  value: openheim-{{ .component }}
{{- with $root.Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OPENHEIM_TELEMETRY__OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: RUST_LOG
  value: {{ $root.Values.logLevel | quote }}
- name: NO_COLOR
  value: "1"
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every openheim pod has: the config file and writable temp dirs. */}}
{{- define "openheim.baseVolumes" -}}
- name: config
  configMap:
    name: {{ include "openheim.fullname" . }}-config
- name: tmp
  emptyDir: {}
- name: var-tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}

{{- define "openheim.baseVolumeMounts" -}}
- name: config
  mountPath: /etc/openheim
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: var-tmp
  mountPath: /var/tmp
- name: home
  mountPath: /home/openheim
{{- end }}

{{/* The workspace volume (PVC or emptyDir). */}}
{{- define "openheim.workspaceVolume" -}}
- name: workspace
{{- if .Values.workspace.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "openheim.workspaceClaimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/* Liveness and readiness of a gRPC service: grpc.health.v1 on its port. */}}
{{- define "openheim.grpcProbes" -}}
livenessProbe:
  grpc:
    port: 50051
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  grpc:
    port: 50051
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end }}

{{/* The pod-level fields every component shares: openheim.podCommon (dict "root" $ "values" .Values.gateway) */}}
{{- define "openheim.podCommon" -}}
serviceAccountName: {{ include "openheim.serviceAccountName" .root }}
automountServiceAccountToken: false
# Kubernetes would otherwise inject <SERVICE>_PORT-style variables for every
# Service; with a release named "openheim" they start with OPENHEIM_ and the
# services would read them as (unknown) configuration keys.
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Annotations that restart pods when the configuration changes. */}}
{{- define "openheim.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Host names the gateway answers to (server.allowed_hosts): its Service (short
and cluster names), every Ingress host, and gateway.allowedHosts.
*/}}
{{- define "openheim.gatewayHosts" -}}
{{- $service := include "openheim.componentName" (dict "root" . "component" "gateway") -}}
{{- $hosts := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) -}}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}
{{- $hosts = append $hosts .host -}}
{{- end }}
{{- end }}
{{- $hosts = concat $hosts .Values.gateway.allowedHosts -}}
{{- join "," $hosts -}}
{{- end }}
