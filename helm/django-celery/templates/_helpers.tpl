{{/* Calling convention of every helper (define) of this chart: one that needs only the release takes the
     root context (include "dc.x" $); one that needs more takes (dict "root" $ "component" ...): the root
     under "root", its other arguments under the same key names everywhere (component, pool, storage...). */}}

{{/* Names ------------------------------------------------------------------ */}}
{{- define "dc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dc.fullname" -}}
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

{{/* Name of one component's objects: (dict "root" $ "component" "web") */}}
{{- define "dc.componentName" -}}
{{- printf "%s-%s" (include "dc.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret every component reads: the user's existingSecret or the generated one. */}}
{{- define "dc.secretName" -}}
{{- default (include "dc.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "dc.configName" -}}
{{- printf "%s-config" (include "dc.fullname" .) }}
{{- end }}

{{- define "dc.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Labels: (dict "root" $ "component" "web") ------------------------------- */}}
{{- define "dc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dc.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "dc.selectorLabels" . }}
app.kubernetes.io/version: {{ default .root.Chart.AppVersion .root.Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ include "dc.name" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod labels of app pods also carry the client label the broker/database NetworkPolicies admit. */}}
{{- define "dc.appPodLabels" -}}
{{ include "dc.selectorLabels" . }}
{{ include "dc.name" .root }}/client: "true"
{{- with .root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Checksums roll the pods when config or the generated Secret changes. */}}
{{/* The Secret's checksum with every generated value masked: generated values are random at each
render (an install renders them again for every include) and never change once kept, so a checksum over
them differed between the install and the first upgrade and restarted Redis and PostgreSQL mid-upgrade.
Values given in values.yaml, hosts and names still change it. */}}
{{- define "dc.secretChecksum" -}}
{{- include (print .Template.BasePath "/config/secret.yaml") (merge (dict "ChecksumOnly" true) .) | sha256sum -}}
{{- end }}

{{- define "dc.checksumAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/config/configmap.yaml") . | sha256sum }}
{{- if .Values.secrets.existingSecret }}
checksum/secret: {{ print "existing:" .Values.secrets.existingSecret | sha256sum }}
{{- else }}
checksum/secret: {{ include "dc.secretChecksum" . }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level scheduling and security shared by app pods: (dict "root" $ "component" "web" "nodeSelector" ... ) */}}
{{- define "dc.podScheduling" -}}
{{- $root := .root }}
{{- with (default $root.Values.nodeSelector .nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.tolerations .tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.affinity .affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $root.Values.topologySpread.enabled }}
topologySpreadConstraints:
{{- range $root.Values.topologySpread.topologyKeys }}
  - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "dc.selectorLabels" (dict "root" $root "component" $.component) | nindent 8 }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dc.podSecurity" -}}
{{- include "dc.podSecurityAs" (dict "root" . "serviceAccount" (include "dc.serviceAccountName" .) "token" .Values.serviceAccount.automountServiceAccountToken) }}
{{- end }}

{{/* dc.podSecurity with another service account: (dict "root" $ "serviceAccount" name "token" bool). Workers use
     their own with workers.deletionCost (worker/worker-deletion-cost.yaml). */}}
{{- define "dc.podSecurityAs" -}}
serviceAccountName: {{ .serviceAccount }}
automountServiceAccountToken: {{ .token }}
{{- with .root }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dc.workerServiceAccountName" -}}
{{ include "dc.componentName" (dict "root" . "component" "worker") }}
{{- end }}

{{/* Environment of app containers: ConfigMap for settings, one secretKeyRef per secret name.
     Explicit refs (not envFrom on the Secret) so only contract names become env vars, and each
     container gets only the secrets it uses: (dict "root" $ "secretKeys" (list "FLOWER_USER") "storage" true).
     Only containers that read or write files ("storage" true: web, workers, migrations, the bucket step)
     get the S3 key pair; the others (beat, Flower) run with DEPLOYKIT_STORAGE_BACKEND=filesystem instead, because
     the settings require the key pair whenever DEPLOYKIT_STORAGE_BACKEND=s3 and they never touch a file. */}}
{{- define "dc.appEnv" -}}
{{- $root := .root }}
{{- $secret := include "dc.secretName" $root }}
{{- $optional := list "DJANGO_SECRET_KEY_FALLBACKS" "DJANGO_SUPERUSER_USERNAME" "DJANGO_SUPERUSER_EMAIL" "DJANGO_SUPERUSER_PASSWORD" "EMAIL_URL" "DEPLOYKIT_BEAT_LOCK_DATABASE_URL" "CELERY_RESULT_BACKEND" "REDIS_URL" }}
{{- $names := list "DJANGO_SECRET_KEY" "DATABASE_URL" "CELERY_BROKER_URL" "EMAIL_URL" }}
{{- /* The result backend is a secret (its URL may carry a password): referenced when given, or when an
     existing Secret may hold it. */ -}}
{{- if or $root.Values.secrets.resultBackend $root.Values.secrets.existingSecret }}
{{- $names = append $names "CELERY_RESULT_BACKEND" }}
{{- end }}
{{- /* REDIS_URL (the project's own Redis, e.g. its cache): in the chart's Secret when given or with the bundled
     Redis; an existing Secret may hold it. */ -}}
{{- if or $root.Values.secrets.redisUrl $root.Values.secrets.existingSecret $root.Values.redis.enabled }}
{{- $names = append $names "REDIS_URL" }}
{{- end }}
{{- $s3 := eq $root.Values.storage.backend "s3" }}
{{- if and $s3 .storage }}
{{- $names = concat $names (list "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID" "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY") }}
{{- end }}
{{- range concat $names (.secretKeys | default list) }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
      {{- if has . $optional }}
      optional: true
      {{- end }}
{{- end }}
{{- if and $s3 (not .storage) }}
- name: DEPLOYKIT_STORAGE_BACKEND
  value: filesystem
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A config.env value as the string the app reads. Helm reads numbers as float64, and toString prints
     1000000 and above in exponent form ("3.1536e+07"), which the app's integer settings refuse: a whole
     number goes through int64 first. Booleans print as true/false. */}}
{{- define "dc.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . | toString | quote }}
{{- else }}{{ toString . | quote }}{{ end }}
{{- end }}

{{- define "dc.envFrom" -}}
- configMapRef:
    name: {{ include "dc.configName" . }}
{{- end }}

{{/* Volumes of app pods: writable /tmp (read-only root filesystem) and the shared media claim:
     (dict "root" $ "noMedia" true) leaves the claim out. */}}
{{- define "dc.appVolumes" -}}
{{- $root := .root -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $root.Values.tmpSizeLimit }}
{{- if and (eq $root.Values.storage.backend "filesystem") (not .noMedia) }}
- name: media
  persistentVolumeClaim:
    claimName: {{ default (include "dc.componentName" (dict "root" $root "component" "media")) $root.Values.storage.persistence.existingClaim }}
{{- end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Their mounts: (dict "root" $ "noMedia" true) as for dc.appVolumes. */}}
{{- define "dc.appVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and (eq .root.Values.storage.backend "filesystem") (not .noMedia) }}
- name: media
  mountPath: {{ .root.Values.storage.mediaRoot }}
{{- end }}
{{- with .root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A container of the app image: (dict "root" $ "name" "web" "script" "deploykit-web"), or "command" (list ...) instead of "script". */}}
{{- define "dc.appContainerBase" -}}
- name: {{ .name }}
  image: {{ include "dc.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: {{ if .command }}{{ toJson .command }}{{ else }}["{{ .script }}"]{{ end }}
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  {{- if not .hook }}
  envFrom:
    {{- include "dc.envFrom" .root | nindent 4 }}
  {{- end }}
  env:
    {{- if .hook }}
    {{- /* A hook runs before the ConfigMap exists: the same settings, inline. */}}
    {{- range $k, $v := (include (print .root.Template.BasePath "/config/configmap.yaml") .root | fromYaml).data }}
    - name: {{ $k }}
      value: {{ $v | quote }}
    {{- end }}
    {{- end }}
    {{- with (include "dc.appEnv" (dict "root" .root "secretKeys" .secretKeys "storage" .storage) | trim) }}{{ . | nindent 4 }}{{ end }}
    {{- with .env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumeMounts:
    {{- include "dc.appVolumeMounts" (dict "root" .root "noMedia" .hook) | nindent 4 }}
  {{- with .resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* initContainer that holds app pods until the schema is current (no hook: no install --wait deadlock).
     (dict "root" $ "storage" true): the same storage access as the pod's main container. */}}
{{- define "dc.waitForMigrations" -}}
{{- $storage := .storage }}
{{- with .root }}
{{- if and .Values.migrations.enabled .Values.migrations.waitForMigrations.enabled }}
initContainers:
  - name: wait-for-migrations
    image: {{ include "dc.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command:
      {{- toYaml .Values.migrations.waitForMigrations.command | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    envFrom:
      {{- include "dc.envFrom" . | nindent 6 }}
    env:
      {{- with (include "dc.appEnv" (dict "root" . "storage" $storage) | trim) }}{{ . | nindent 6 }}{{ end }}
    volumeMounts:
      {{- include "dc.appVolumeMounts" (dict "root" .) | nindent 6 }}
    resources:
      {{- toYaml .Values.migrations.resources | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Security context of bundled services: same hardening, their image's own UID: (dict "root" $ "uid" 999) */}}
{{- define "dc.servicePodSecurity" -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .uid }}
  runAsGroup: {{ .uid }}
  fsGroup: {{ .uid }}
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* Broker/DB hosts of the bundled services. */}}
{{- define "dc.redisHost" -}}{{ include "dc.componentName" (dict "root" . "component" "redis") }}{{- end }}
{{- define "dc.rabbitmqHost" -}}{{ include "dc.componentName" (dict "root" . "component" "rabbitmq") }}{{- end }}
{{- define "dc.postgresqlHost" -}}{{ include "dc.componentName" (dict "root" . "component" "postgresql") }}{{- end }}
{{- define "dc.pgbouncerHost" -}}{{ include "dc.componentName" (dict "root" . "component" "pgbouncer") }}{{- end }}

{{/* Most replicas a pool can have (autoscaler max, or its fixed replicas): (dict "root" $ "pool" $pool) */}}
{{- define "dc.workerMaxReplicas" -}}
{{- if eq .root.Values.workers.autoscaler "none" }}{{ .pool.replicas }}{{ else }}{{ .pool.autoscaling.maxReplicas }}{{ end }}
{{- end }}

{{/* Grace period of a pool: its longest task plus the shutdown margin (warm shutdown waits for running tasks):
     (dict "root" $ "pool" $pool) */}}
{{- define "dc.workerGracePeriod" -}}
{{- $longest := .pool.longestTaskSeconds | int }}
{{- if eq $longest 0 }}{{ $longest = index .root.Values.config.env "CELERY_TASK_TIME_LIMIT" | int }}{{ end }}
{{- add $longest (.root.Values.workers.shutdownMarginSeconds | int) }}
{{- end }}

{{/* HPA resource metrics: (dict "root" $ "cpu" 70 "memory" 0); 0 leaves a metric out. */}}
{{- define "dc.resourceMetrics" -}}
{{- range $resource := list "cpu" "memory" }}
{{- $target := get $ $resource }}
{{- if $target }}
- type: Resource
  resource:
    name: {{ $resource }}
    target:
      type: Utilization
      averageUtilization: {{ $target }}
{{- end }}
{{- end }}
{{- end }}

{{/* Bundled services are for evaluation: labelled so policy engines and people can tell. */}}
{{- define "dc.evaluationLabels" -}}
{{ include "dc.labels" . }}
{{ include "dc.name" .root }}/evaluation-only: "true"
{{- end }}

{{/* A ClusterIP Service for a bundled service: (dict "root" $ "component" "redis" "port" 6379 "portName" "redis") */}}
{{- define "dc.bundledService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "dc.componentName" . }}
  labels:
    {{- /* PgBouncer is production-grade; the bundled databases and brokers are not. */}}
    {{- include (ternary "dc.labels" "dc.evaluationLabels" (eq .component "pgbouncer")) . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "dc.selectorLabels" . | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .portName }}
      protocol: TCP
    {{- with .extraPort }}
    - name: {{ .name }}
      port: {{ .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
{{- end }}

{{/* volumeClaimTemplates entry: (dict "root" $ "persistence" .Values.redis.persistence) */}}
{{- define "dc.dataClaimTemplate" -}}
volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      {{- with .persistence.storageClassName }}
      storageClassName: {{ . }}
      {{- end }}
      resources:
        requests:
          storage: {{ .persistence.size }}
{{- end }}

{{/* Env entry reading one key of the app Secret: (dict "root" $ "name" "REDIS_PASSWORD" "key" "redis-password") */}}
{{- define "dc.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "dc.secretName" .root }}
      key: {{ .key }}
{{- end }}

{{/* The enabled worker pools (`enabled: false` leaves one out) with workers.poolDefaults filled in, as a
     JSON list (use with fromJsonArray). */}}
{{- define "dc.pools" -}}
{{- $pools := list }}
{{- range .Values.workers.pools }}
{{- if or (not (hasKey . "enabled")) .enabled }}
{{- $pool := deepCopy $.Values.workers.poolDefaults }}
{{- $_ := include "dc.deepMerge" (dict "root" $ "dst" $pool "src" (deepCopy .)) }}
{{- $_ := unset $pool "enabled" }}
{{- $pools = append $pools $pool }}
{{- end }}
{{- end }}
{{- toJson $pools }}
{{- end }}

{{/* DEPLOYKIT_CONSUMED_QUEUES: every queue of the pools that run (enabled, and not fixed at 0 replicas by
     workers.autoscaler=none; KEDA's minReplicas 0 still runs on demand), in the pools' order, each once.
     The migrate step's check_queues compares the project's routes with it (PITFALLS: Celery's default queue
     is `celery`, and a pool consuming other names stays "healthy" while nothing runs). */}}
{{- define "dc.consumedQueues" -}}
{{- $queues := list }}
{{- range include "dc.pools" . | fromJsonArray }}
{{- if not (and (eq $.Values.workers.autoscaler "none") (eq (int .replicas) 0)) }}
{{- $queues = concat $queues .queues }}
{{- end }}
{{- end }}
{{- $queues | uniq | join "," }}
{{- end }}

{{/* Deep-merge src into dst in place: (dict "root" $ "dst" $map "src" $map). Unlike mergeOverwrite it keeps 0
     and false from src (minReplicas: 0). */}}
{{- define "dc.deepMerge" -}}
{{- $dst := .dst }}
{{- range $k, $v := .src }}
{{- if and (kindIs "map" $v) (kindIs "map" (get $dst $k)) }}
{{- $_ := include "dc.deepMerge" (dict "root" $.root "dst" (get $dst $k) "src" $v) }}
{{- else }}
{{- $_ := set $dst $k $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* The bundled object store (storage.objectStore): Service host, in-cluster endpoint, public endpoint. */}}
{{- define "dc.objectStoreHost" -}}{{ include "dc.componentName" (dict "root" . "component" "s3") }}{{- end }}

{{/* DEPLOYKIT_STORAGE_S3_ENDPOINT_URL: the bundled server's Service, else storage.s3.endpointUrl. */}}
{{- define "dc.s3EndpointUrl" -}}
{{- if .Values.storage.objectStore.enabled }}
{{- printf "http://%s:9000" (include "dc.objectStoreHost" .) }}
{{- else }}
{{- .Values.storage.s3.endpointUrl }}
{{- end }}
{{- end }}

{{/* DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL (browsers follow presigned URLs there): storage.s3.publicEndpointUrl,
     else the object store's Ingress host, else the in-cluster endpoint. */}}
{{- define "dc.s3PublicEndpointUrl" -}}
{{- $store := .Values.storage.objectStore }}
{{- if .Values.storage.s3.publicEndpointUrl }}
{{- .Values.storage.s3.publicEndpointUrl }}
{{- else if and $store.enabled $store.ingress.enabled }}
{{- printf "%s://%s" (ternary "https" "http" (not (empty $store.ingress.tls))) $store.ingress.host }}
{{- else }}
{{- include "dc.s3EndpointUrl" . }}
{{- end }}
{{- end }}

{{/* Components whose containers read or write files (they get the S3 key pair). */}}
{{- define "dc.storageComponents" -}}
{{- $components := list "web" "migrate" }}
{{- range include "dc.pools" . | fromJsonArray }}
{{- $components = append $components (printf "worker-%s" .name) }}
{{- end }}
{{- toJson $components }}
{{- end }}

{{/* One NetworkPolicy peer from a networkPolicy.ingressControllers / .prometheus entry (takes the entry):
`cidr` (an ipBlock: a hostNetwork controller's nodes, a load balancer sending to pod IPs), else the pods
with `podLabels` ({}: all) in `namespace` (empty: the release's own). */}}
{{- define "dc.networkPolicyPeer" -}}
{{- $peer := dict }}
{{- if .cidr }}
{{- $_ := set $peer "ipBlock" (dict "cidr" .cidr) }}
{{- else }}
{{- with .namespace }}{{ $_ := set $peer "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .)) }}{{ end }}
{{- $_ := set $peer "podSelector" (ternary (dict "matchLabels" .podLabels) dict (not (empty .podLabels))) }}
{{- end }}
{{- list $peer | toYaml }}
{{- end }}
