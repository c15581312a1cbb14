{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "dataflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "dataflow.fullname" -}}
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

{{- define "dataflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dataflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dataflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dataflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dataflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dataflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dataflow.secretName" -}}
{{- default (include "dataflow.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The server's data_dir: the PVC (or emptyDir) is mounted here. */}}
{{- define "dataflow.dataDir" -}}
/var/lib/dataflow
{{- end }}

{{/*
The server's config.yaml (keys: config/examples/server/config.yaml), from the
values, with .Values.config merged over it.
*/}}
{{- define "dataflow.config" -}}
{{- $v := .Values }}
{{- $config := dict
  "server" (dict
    "host" "0.0.0.0"
    "port" $v.ports.api
    "data_dir" (include "dataflow.dataDir" .)
    "shutdown_grace_period" (printf "%ds" (int $v.server.shutdownGracePeriodSeconds))
    "max_body_size" $v.server.maxBodySize)
  "runtime" (dict
    "workers" $v.workers
    "worker_memory" $v.memory)
  "monitoring" (dict
    "metrics" (dict "enabled" $v.monitoring.metrics.enabled "host" "0.0.0.0" "port" $v.ports.metrics "path" $v.monitoring.metrics.path)
    "health" (dict "enabled" true "host" "0.0.0.0" "port" $v.ports.health "path" "/health")
    "logging" (dict "level" $v.logging.level "format" $v.logging.format "output" "stdout"))
}}
{{- toYaml (mustMergeOverwrite $config (deepCopy $v.config)) }}
{{- end }}
