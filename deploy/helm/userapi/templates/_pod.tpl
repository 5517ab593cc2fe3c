{{/*
The pod template, shared by the Deployment and the Argo Rollouts Rollout.
*/}}
{{- define "userapi.podTemplate" -}}
metadata:
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if and .Values.metrics.enabled .Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ include "userapi.managementPortNumber" . | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "userapi.labels" . | nindent 4 }}
    app.kubernetes.io/component: api
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "userapi.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
  {{- with include "userapi.imagePullSecrets" . }}
  {{- . | nindent 2 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "userapi.terminationGracePeriodSeconds" . }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if or .Values.topologySpread.enabled .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- if .Values.topologySpread.enabled }}
    {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
    - maxSkew: {{ $.Values.topologySpread.maxSkew }}
      topologyKey: {{ . }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "userapi.selectorLabels" $ | nindent 10 }}
    {{- end }}
    {{- end }}
    {{- with .Values.topologySpreadConstraints }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: userapi
      image: {{ include "userapi.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
        {{- if gt (int .Values.management.port) 0 }}
        - name: management
          containerPort: {{ int .Values.management.port }}
          protocol: TCP
        {{- end }}
      env:
        # Listen on all pod addresses; the app's own default is loopback.
        - name: HTTP_HOST
          value: "0.0.0.0"
        - name: HTTP_PORT
          value: {{ .Values.containerPort | quote }}
        # /healthz, /readyz and /metrics on their own port (0 = off).
        - name: HTTP_MANAGEMENT_PORT
          value: {{ int .Values.management.port | quote }}
        - name: CONFIG_FILE
          value: {{ include "userapi.configDir" . }}/config.yaml
        {{- if .Values.dotenv }}
        - name: ENV_FILE
          value: {{ include "userapi.configDir" . }}/userapi.env
        {{- end }}
        # A file, not an env var: the app re-reads it, so rotating the Secret needs no restart.
        - name: AUTH_TOKENS_FILE
          value: {{ include "userapi.secretsDir" . }}/tokens
        {{- include "userapi.databaseEnv" . | nindent 8 }}
        - name: DATABASE_MIGRATE_ON_START
          value: {{ ternary "true" "false" (eq .Values.migrations.mode "onStart") | quote }}
        # The same numbers make terminationGracePeriodSeconds (see values.yaml).
        - name: SHUTDOWN_DRAIN_DELAY
          value: "{{ int .Values.shutdown.drainDelaySeconds }}s"
        - name: SHUTDOWN_TIMEOUT
          value: "{{ int .Values.shutdown.timeoutSeconds }}s"
        - name: METRICS_ENABLED
          value: {{ .Values.metrics.enabled | quote }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: {{ .Values.probes.startup.path }}
          port: {{ include "userapi.managementPortName" . }}
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: {{ .Values.probes.liveness.path }}
          port: {{ include "userapi.managementPortName" . }}
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet:
          path: {{ .Values.probes.readiness.path }}
          port: {{ include "userapi.managementPortName" . }}
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "userapi.configDir" . }}
          readOnly: true
        - name: secrets
          mountPath: {{ include "userapi.secretsDir" . }}
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if include "userapi.sqlite" . }}
        - name: data
          mountPath: /data
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      projected:
        sources:
          - configMap:
              name: {{ include "userapi.fullname" . }}
              items:
                - key: config.yaml
                  path: config.yaml
          {{- if .Values.dotenv }}
          - configMap:
              name: {{ include "userapi.fullname" . }}-dotenv
              items:
                - key: userapi.env
                  path: userapi.env
          {{- end }}
    # One projected volume (no subPath) so Secret updates reach the files.
    - name: secrets
      projected:
        # 0440: readable by the app's user and group (fsGroup), nobody else.
        defaultMode: 0440
        sources:
          - secret:
              name: {{ include "userapi.tokensSecretName" . }}
              items:
                - key: {{ .Values.tokens.key }}
                  path: tokens
          {{- with include "userapi.databaseSecretSources" . }}
          {{- . | nindent 10 }}
          {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if include "userapi.sqlite" . }}
    - name: data
      {{- if .Values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-data" (include "userapi.fullname" .)) .Values.persistence.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
