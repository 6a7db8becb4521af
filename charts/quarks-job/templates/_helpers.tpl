{{/* Names, labels and the values derived from several others. */}}

{{- define "quarks-job.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name; 43 characters leave room for suffixes. */}}
{{- define "quarks-job.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 43 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 43 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quarks-job.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "quarks-job.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quarks-job
{{- end -}}

{{/* selectorLabels: call with (dict "root" $ "component" "controller"). */}}
{{- define "quarks-job.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quarks-job.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* componentLabels: call with (dict "root" $ "component" "controller"). */}}
{{- define "quarks-job.componentLabels" -}}
{{ include "quarks-job.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image: call with (dict "root" $ "component" "controller"), for the controller, webhook or
     persister image. A digest the user sets pins the image and wins over the tag; the tag
     defaults to the chart's appVersion. A released chart records the digest of each image it
     was released with as the Chart.yaml annotation quarks.cloudfoundry.org/<component>-image-digest
     (make release writes it): with neither tag nor digest set, that digest pins the appVersion
     tag (repository:appVersion@digest), so a tag moved in the registry cannot change what a
     release runs. Being in Chart.yaml, not in values, it is never carried over from an older
     release by helm upgrade --reuse-values. */}}
{{- define "quarks-job.image" -}}
{{- $image := get (get .root.Values .component) "image" -}}
{{- $released := index .root.Chart.Annotations (printf "quarks.cloudfoundry.org/%s-image-digest" .component) -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else if $image.tag -}}
{{- printf "%s:%s" $image.repository (toString $image.tag) -}}
{{- else if $released -}}
{{- printf "%s:%s@%s" $image.repository .root.Chart.AppVersion $released -}}
{{- else -}}
{{- printf "%s:%s" $image.repository .root.Chart.AppVersion -}}
{{- end -}}
{{- end -}}

{{- define "quarks-job.controllerServiceAccount" -}}
{{- default (include "quarks-job.fullname" .) .Values.serviceAccount.controllerName -}}
{{- end -}}

{{- define "quarks-job.webhookServiceAccount" -}}
{{- default (printf "%s-webhook" (include "quarks-job.fullname" .)) .Values.serviceAccount.webhookName -}}
{{- end -}}

{{- define "quarks-job.webhookService" -}}
{{- include "quarks-job.fullname" . }}-webhook
{{- end -}}

{{- define "quarks-job.outputService" -}}
{{- include "quarks-job.fullname" . }}-output
{{- end -}}

{{/* The Secret holding the webhook's serving certificate (and, kept by the webhook, its CA). */}}
{{- define "quarks-job.webhookSecret" -}}
{{- include "quarks-job.fullname" . }}-webhook-certs
{{- end -}}

{{/* The Secret holding the output endpoint's certificate; the controller mounts it. */}}
{{- define "quarks-job.outputSecret" -}}
{{- include "quarks-job.fullname" . }}-output-tls
{{- end -}}

{{/* The name of both webhook configurations (cluster-scoped). */}}
{{- define "quarks-job.webhookConfiguration" -}}
{{- include "quarks-job.fullname" . }}-webhook
{{- end -}}

{{/* DNS names a Service is reached by: call with (dict "root" $ "service" "name"). One per line. */}}
{{- define "quarks-job.serviceDNSNames" -}}
{{ .service }}.{{ .root.Release.Namespace }}.svc
{{ .service }}.{{ .root.Release.Namespace }}.svc.cluster.local
{{- end -}}

{{- define "quarks-job.outputEndpointURL" -}}
https://{{ include "quarks-job.outputService" . }}.{{ .Release.Namespace }}.svc:443/v1alpha1/output
{{- end -}}

{{/* namespaceSelector of mode "selector", as YAML. */}}
{{- define "quarks-job.namespaceSelector" -}}
{{- if .Values.watch.namespaceSelector -}}
{{ toYaml .Values.watch.namespaceSelector }}
{{- else -}}
matchLabels:
  quarks.cloudfoundry.org/monitored: {{ default (include "quarks-job.fullname" .) .Values.watch.monitoredID | quote }}
{{- end -}}
{{- end -}}

{{/* The namespaceSelector in Kubernetes' string form (k=v,k in (a,b),!k), for the controller. */}}
{{- define "quarks-job.namespaceSelectorString" -}}
{{- $selector := include "quarks-job.namespaceSelector" . | fromYaml -}}
{{- $terms := list -}}
{{- range $key, $value := $selector.matchLabels -}}
{{- $terms = append $terms (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- range $selector.matchExpressions -}}
{{- if eq .operator "In" -}}
{{- $terms = append $terms (printf "%s in (%s)" .key (join "," .values)) -}}
{{- else if eq .operator "NotIn" -}}
{{- $terms = append $terms (printf "%s notin (%s)" .key (join "," .values)) -}}
{{- else if eq .operator "Exists" -}}
{{- $terms = append $terms .key -}}
{{- else if eq .operator "DoesNotExist" -}}
{{- $terms = append $terms (printf "!%s" .key) -}}
{{- end -}}
{{- end -}}
{{- join "," $terms -}}
{{- end -}}

{{/* The namespaceSelector of the webhooks, as YAML; empty in mode "all". */}}
{{- define "quarks-job.webhookNamespaceSelector" -}}
{{- if eq .Values.watch.mode "namespaces" -}}
matchExpressions:
- key: kubernetes.io/metadata.name
  operator: In
  values:
  {{- range .Values.watch.namespaces }}
  - {{ . | quote }}
  {{- end }}
{{- else if eq .Values.watch.mode "selector" -}}
{{ include "quarks-job.namespaceSelector" . }}
{{- end -}}
{{- end -}}

{{/* The rules the controller needs in every namespace it watches (see the kubebuilder:rbac markers
     in controller/). */}}
{{- define "quarks-job.controllerNamespacedRules" -}}
{{- include "quarks-job.controllerRules" (dict "root" . "cluster" false) }}
{{- end -}}

{{/* The controller's rules come from the +kubebuilder:rbac markers beside the code that needs
     them (controller-gen writes files/rbac/controller/role.yaml; make verify checks it). With
     "cluster" true: the rules on cluster-scoped resources (tokenreviews; namespaces unless the
     controller watches a list of namespaces), else the namespaced ones. */}}
{{- define "quarks-job.controllerRules" -}}
{{- $clusterScoped := list "tokenreviews" "namespaces" }}
{{- $root := .root }}
{{- $cluster := .cluster }}
{{- $role := $root.Files.Get "files/rbac/controller/role.yaml" | fromYaml }}
{{- range $role.rules }}
{{- $resources := list }}
{{- range .resources }}
{{- if eq (has . $clusterScoped) $cluster }}
{{- if not (and (eq . "namespaces") (eq $root.Values.watch.mode "namespaces")) }}
{{- $resources = append $resources . }}
{{- end }}
{{- end }}
{{- end }}
{{- if $resources }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson $resources }}
  verbs: {{ toJson .verbs }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod scheduling: a component's own setting, else the chart-wide one. Call with
     (dict "root" $ "component" .Values.controller). */}}
{{- define "quarks-job.scheduling" -}}
{{- with (.component.nodeSelector | default .root.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.component.tolerations | default .root.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (.component.affinity | default .root.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The names of .Values.imagePullSecrets, comma-separated. */}}
{{- define "quarks-job.pullSecretNames" -}}
{{- $names := list -}}
{{- range .Values.imagePullSecrets -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}
