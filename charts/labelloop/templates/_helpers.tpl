{{- define "labelloop.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "labelloop.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "labelloop.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "labelloop.serviceAccountName" -}}
{{- default (include "labelloop.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Where Label Studio reaches the webhook receiver: a dotted name, as Label Studio requires;
https when the receiver has a certificate. */}}
{{- define "labelloop.webhookURL" -}}
{{- $scheme := ternary "https" "http" (not (empty .Values.webhook.tlsSecret)) -}}
{{- default (printf "%s://%s.%s.svc:%v" $scheme (include "labelloop.fullname" .) .Release.Namespace .Values.webhook.port) .Values.webhook.url -}}
{{- end -}}

{{/* `--network-policies`: the operator's pods and the metrics scrapers, which may reach the
prelabel servers besides each project's Label Studio. */}}
{{- define "labelloop.policyPeers" -}}
{{- $operator := dict "namespace" .Release.Namespace "podLabels" (include "labelloop.selectorLabels" . | fromYaml) -}}
{{- dict "operator" $operator "scrapers" .Values.networkPolicy.metricsFrom | toJson -}}
{{- end -}}

{{/* NetworkPolicy peers from `{namespace, podLabels}` entries. */}}
{{- define "labelloop.peers" -}}
{{- range . }}
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: {{ .namespace }}}}
  podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The rules the operator needs, no more: each verb is one the code uses. */}}
{{- define "labelloop.rules" -}}
# The three kinds: watched; annotations hold kopf's progress; status is written.
- apiGroups: [labelloop.io]
  resources: [annotationprojects, finetunejobs, prelabelservices]
  verbs: [get, list, watch, patch, update]
# An AnnotationProject's training rounds: each a FineTuneJob, created once.
- apiGroups: [labelloop.io]
  resources: [finetunejobs]
  verbs: [create]
- apiGroups: [labelloop.io]
  resources: [annotationprojects/status, finetunejobs/status, prelabelservices/status]
  verbs: [get, patch, update]
# Events that explain transitions.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Children: Label Studio and prelabel Deployments, training Jobs and what they mount.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
# Services are watched: a change wakes the reconcile of the object that owns them.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps, persistentvolumeclaims]
  verbs: [get, list, create, patch, delete]
# Secrets: the Label Studio token (read, or generated once when absent).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# Training pods' ServiceAccount, bound to the chart's trainer role (trainer-rbac.yaml) in each namespace.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [get, create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [{{ include "labelloop.fullname" . }}-trainer]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch, delete]
# Each PrelabelService's ingress policy (--network-policies).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
{{- end -}}
