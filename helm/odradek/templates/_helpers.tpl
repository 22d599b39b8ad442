{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "odradek.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the operator's objects. When the release name already contains the chart name it is
used alone, so `helm install odradek ./helm/odradek` gives `odradek`, not `odradek-odradek`.
*/}}
{{- define "odradek.fullname" -}}
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

{{- define "odradek.operatorName" -}}
{{- printf "%s-operator" (include "odradek.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "odradek.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries, whatever its component. */}}
{{- define "odradek.baseLabels" -}}
helm.sh/chart: {{ include "odradek.chart" . }}
app.kubernetes.io/name: {{ include "odradek.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: odradek
{{- end }}

{{/* Labels of the operator and its RBAC. */}}
{{- define "odradek.labels" -}}
{{ include "odradek.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels that select the operator's pods: they must never change between releases. */}}
{{- define "odradek.selectorLabels" -}}
app.kubernetes.io/name: {{ include "odradek.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "odradek.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "odradek.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "odradek.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The watched namespaces, de-duplicated and sorted, so the rendered Roles are stable. */}}
{{- define "odradek.watchNamespaces" -}}
{{- .Values.watchNamespaces | uniq | sortAlpha | join "," }}
{{- end }}

{{/*
RBAC rules the operator needs on namespaced objects in every namespace it watches. Keep in step with
operator/rbac-requirements.yaml: e2e/manifests/check.sh fails when an entry there is not granted.
Children are written with server-side apply (patch; create when absent).
*/}}
{{- define "odradek.watchedRules" -}}
- apiGroups: ["odradek.dev"]
  resources: ["brokers", "processors"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["odradek.dev"]
  resources: ["topics"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["odradek.dev"]
  resources: ["brokers/status", "topics/status", "processors/status"]
  verbs: ["get", "patch"]
- apiGroups: ["odradek.dev"]
  resources: ["brokers/finalizers", "processors/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Rules in the operator's own namespace only: the leader-election Lease. */}}
{{- define "odradek.operatorNamespaceRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "patch"]
{{- end }}
