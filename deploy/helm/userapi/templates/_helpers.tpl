{{/* Names, labels and shared pieces of the userapi chart. */}}

{{- define "userapi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or just <release> when it already contains the chart name. */}}
{{- define "userapi.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "userapi.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: name + instance only, so they never change across upgrades. */}}
{{- define "userapi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "userapi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "userapi.labels" -}}
helm.sh/chart: {{ include "userapi.chart" . }}
{{ include "userapi.selectorLabels" . }}
app.kubernetes.io/version: {{ include "userapi.imageTag" . | quote }}
app.kubernetes.io/part-of: userapi
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Labels for pods that are not the API (helm test, migration Job): no
app.kubernetes.io/name, so the Service, PDB and spread selectors never pick them.
*/}}
{{- define "userapi.auxLabels" -}}
helm.sh/chart: {{ include "userapi.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "userapi.imageTag" . | quote }}
app.kubernetes.io/part-of: userapi
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "userapi.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "userapi.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "userapi.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest pins the image. */}}
{{- define "userapi.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "userapi.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* Named container port of the probes and /metrics: "management" when that listener is on. */}}
{{- define "userapi.managementPortName" -}}
{{- if gt (int .Values.management.port) 0 -}}management{{- else -}}http{{- end -}}
{{- end -}}

{{- define "userapi.managementPortNumber" -}}
{{- if gt (int .Values.management.port) 0 -}}{{ int .Values.management.port }}{{- else -}}{{ int .Values.containerPort }}{{- end -}}
{{- end -}}

{{- define "userapi.backupToolsImage" -}}
{{- with .Values.backup.toolsImage -}}
{{- if .digest -}}{{ printf "%s@%s" .repository .digest }}{{- else -}}{{ printf "%s:%s" .repository .tag }}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "userapi.testImage" -}}
{{- with .Values.tests.image -}}
{{- if .digest -}}{{ printf "%s@%s" .repository .digest }}{{- else -}}{{ printf "%s:%s" .repository .tag }}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "userapi.tokensSecretName" -}}
{{- default (printf "%s-tokens" (include "userapi.fullname" .)) .Values.tokens.existingSecret -}}
{{- end -}}

{{- define "userapi.registrySecretName" -}}
{{- default (printf "%s-dockerconfig" (include "userapi.fullname" .)) .Values.registryCredentials.name -}}
{{- end -}}

{{/* Name of the CloudNativePG Cluster; the operator derives <name>-rw, <name>-app and <name>-ca from it. */}}
{{- define "userapi.cnpgName" -}}
{{- printf "%s-db" (include "userapi.fullname" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "userapi.sqlite" -}}
{{- if eq .Values.database.type "sqlite" -}}true{{- end -}}
{{- end -}}

{{- define "userapi.cnpg" -}}
{{- if and (eq .Values.database.type "postgres") .Values.postgres.cloudnativepg.enabled -}}true{{- end -}}
{{- end -}}

{{/* How many pods can exist at once: more than one means a PDB is useful. */}}
{{- define "userapi.multiPod" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* drain + timeout + 10 s margin for the kubelet's SIGKILL, unless set explicitly (validated). */}}
{{- define "userapi.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add .Values.shutdown.drainDelaySeconds .Values.shutdown.timeoutSeconds 10 -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* Where the pod reads things; fixed paths shared with the image and the docs. */}}
{{- define "userapi.configDir" -}}/etc/userapi{{- end -}}
{{- define "userapi.secretsDir" -}}/var/run/secrets/userapi{{- end -}}

{{/* The database URL the pods use; never contains a password. */}}
{{- define "userapi.databaseURL" -}}
{{- if include "userapi.sqlite" . -}}
sqlite:/data/userapi.sqlite
{{- else if include "userapi.cnpg" . -}}
{{- with .Values.postgres.cloudnativepg -}}
{{- printf "postgres://%s@%s-rw:5432/%s" .owner (include "userapi.cnpgName" $) .database -}}
{{- end -}}
{{- else if .Values.postgres.external.url -}}
{{- .Values.postgres.external.url -}}
{{- else -}}
{{- with .Values.postgres.external -}}
{{- printf "postgres://%s@%s:%d/%s" .user .host (int .port) .database -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Secret (name, key) holding the PostgreSQL password. */}}
{{- define "userapi.dbPasswordSecret" -}}
{{- if include "userapi.cnpg" . -}}{{ include "userapi.cnpgName" . }}-app{{- else -}}{{ .Values.postgres.external.existingSecret }}{{- end -}}
{{- end -}}
{{- define "userapi.dbPasswordKey" -}}
{{- if include "userapi.cnpg" . -}}password{{- else -}}{{ .Values.postgres.external.passwordKey }}{{- end -}}
{{- end -}}

{{/* Secret (name, key) holding the CA bundle for verify-full, or empty. */}}
{{- define "userapi.dbCASecret" -}}
{{- if include "userapi.cnpg" . -}}{{ include "userapi.cnpgName" . }}-ca{{- else -}}{{ .Values.postgres.tls.caSecret }}{{- end -}}
{{- end -}}
{{- define "userapi.dbCAKey" -}}
{{- if include "userapi.cnpg" . -}}ca.crt{{- else -}}{{ .Values.postgres.tls.caKey }}{{- end -}}
{{- end -}}
{{- define "userapi.dbTLSMode" -}}
{{- if include "userapi.cnpg" . -}}verify-full{{- else -}}{{ .Values.postgres.tls.mode }}{{- end -}}
{{- end -}}

{{/*
Environment variables the chart owns. extraEnv and dotenv may not set these:
the chart would silently lose (or, for dotenv, silently win over) them.
*/}}
{{- define "userapi.managedEnvNames" -}}
{{- list "HTTP_HOST" "HTTP_PORT" "CONFIG_FILE" "ENV_FILE" "AUTH_TOKENS" "AUTH_TOKENS_FILE" "DATABASE_URL" "DATABASE_PASSWORD_FILE" "DATABASE_TLS_MODE" "DATABASE_TLS_CA_FILE" "DATABASE_MIGRATE_ON_START" "SHUTDOWN_DRAIN_DELAY" "SHUTDOWN_TIMEOUT" "METRICS_ENABLED" "HTTP_MANAGEMENT_PORT" | toJson -}}
{{- end -}}

{{/* Database settings as env vars; shared by the pods and the migration Job. */}}
{{- define "userapi.databaseEnv" -}}
- name: DATABASE_URL
  value: {{ include "userapi.databaseURL" . | quote }}
{{- if not (include "userapi.sqlite" .) }}
- name: DATABASE_PASSWORD_FILE
  value: {{ include "userapi.secretsDir" . }}/db/password
- name: DATABASE_TLS_MODE
  value: {{ include "userapi.dbTLSMode" . | quote }}
{{- if include "userapi.dbCASecret" . }}
- name: DATABASE_TLS_CA_FILE
  value: {{ include "userapi.secretsDir" . }}/db/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{/* Projected sources for the database password and CA (postgres only). */}}
{{- define "userapi.databaseSecretSources" -}}
{{- if not (include "userapi.sqlite" .) -}}
- secret:
    name: {{ include "userapi.dbPasswordSecret" . }}
    items:
      - key: {{ include "userapi.dbPasswordKey" . }}
        path: db/password
{{- if include "userapi.dbCASecret" . }}
- secret:
    name: {{ include "userapi.dbCASecret" . }}
    items:
      - key: {{ include "userapi.dbCAKey" . }}
        path: db/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{- define "userapi.imagePullSecrets" -}}
{{- $secrets := list -}}
{{- range .Values.imagePullSecrets -}}{{- $secrets = append $secrets .name -}}{{- end -}}
{{- if .Values.registryCredentials.create -}}{{- $secrets = append $secrets (include "userapi.registrySecretName" .) -}}{{- end -}}
{{- if $secrets -}}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}
