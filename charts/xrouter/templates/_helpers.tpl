{{/* Names. The default full name is "<release>-operator": release "xrouter" gives the same
names as config/default (xrouter-operator), so docs and dashboards apply to both. */}}
{{- define "xrouter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "xrouter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "xrouter.selectorLabels" -}}
app.kubernetes.io/name: xrouter-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "xrouter.labels" -}}
{{ include "xrouter.selectorLabels" . }}
app.kubernetes.io/part-of: xrouter
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "xrouter.chart" . }}
{{- end -}}

{{- define "xrouter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "xrouter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "xrouter.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Resources that are cluster-scoped: with watchNamespaces set, rules for these stay in a
ClusterRole, and every other rule moves into a Role in each watched namespace. */}}
{{- define "xrouter.clusterScopedResources" -}}
customresourcedefinitions namespaces nodes persistentvolumes storageclasses priorityclasses clusterroles clusterrolebindings clusterkopfpeerings mutatingwebhookconfigurations validatingwebhookconfigurations apiservices tokenreviews subjectaccessreviews selfsubjectaccessreviews
{{- end -}}
