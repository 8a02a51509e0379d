{{- define "keelson.fullname" -}}
{{- if contains "keelson" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-keelson" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keelson.labels" -}}
app.kubernetes.io/name: keelson
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "keelson.selector" -}}
app.kubernetes.io/name: keelson
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keelson.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "keelson.fullname" .) -}}
{{- end -}}

{{/* The chart-created Secret (admin token, webhook secret): needed unless both come from Secrets of the user's. */}}
{{- define "keelson.authSecret" -}}
{{- printf "%s-auth" (include "keelson.fullname" .) -}}
{{- end -}}

{{/* "true" when the state directory is a PVC: one replica with persistence (several replicas each keep an emptyDir). */}}
{{- define "keelson.persistent" -}}
{{- if and .Values.persistence.enabled (le (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}
