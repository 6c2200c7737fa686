{{/*
Render-time checks: each `fail` names the values to change. Called from validate.yaml (renders nothing).
*/}}
{{- define "dc.validate" -}}
{{- $v := .Values }}
{{- if not (index $v.config.env "DJANGO_ALLOWED_HOSTS") }}
{{- fail "config.env.DJANGO_ALLOWED_HOSTS is required: the host names the app answers to" }}
{{- end }}
{{- /* gunicorn would trust forwarded headers from every pod (#20 item 5); an empty value means `*` too. */}}
{{- $trusted := index $v.config.env "FORWARDED_ALLOW_IPS" | toString | trim }}
{{- if or (not $trusted) (contains "*" $trusted) }}
{{- fail "config.env.FORWARDED_ALLOW_IPS must list the ingress controller's addresses or CIDRs (e.g. the pod network's), not * or empty: any pod could claim HTTPS and any client address (docs/helm.md#forwarded-headers)" }}
{{- end }}
{{- range $v.networkPolicy.ingressControllers }}
{{- if and .cidr (or .namespace .podLabels) }}
{{- fail (printf "networkPolicy.ingressControllers: an entry has either cidr or namespace/podLabels, not both (%v)" .) }}
{{- end }}
{{- end }}
{{- if not $v.secrets.existingSecret }}
{{- if and (not $v.database.url) (not $v.postgresql.enabled) }}
{{- fail "database.url is required (or secrets.existingSecret with DATABASE_URL, or postgresql.enabled=true for evaluation)" }}
{{- end }}
{{- $bundledBroker := or (and (eq $v.broker.type "redis") $v.redis.enabled) (and (eq $v.broker.type "rabbitmq") $v.rabbitmq.enabled) }}
{{- if and (not $v.broker.url) (not $bundledBroker) }}
{{- fail (printf "broker.url is required for broker.type=%s (or secrets.existingSecret with CELERY_BROKER_URL, or %s.enabled=true for evaluation)" $v.broker.type $v.broker.type) }}
{{- end }}
{{- if and (eq $v.storage.backend "s3") (not $v.storage.objectStore.enabled) (or (not $v.storage.s3.accessKeyId) (not $v.storage.s3.secretAccessKey)) }}
{{- fail "storage.s3.accessKeyId and storage.s3.secretAccessKey are required with storage.backend=s3 (or secrets.existingSecret with DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID/DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY)" }}
{{- end }}
{{- if and $v.pgbouncer.enabled (not $v.postgresql.enabled) }}
{{- fail "pgbouncer.enabled with an external database needs secrets.existingSecret (holding pgbouncer-userlist and a DATABASE_URL pointing at PgBouncer) and pgbouncer.upstream" }}
{{- end }}
{{- end }}
{{- if lt (int $v.web.terminationGracePeriodSeconds) (add $v.web.drainSeconds $v.web.gunicorn.timeout | int) }}
{{- fail (printf "web.terminationGracePeriodSeconds (%v) must cover web.drainSeconds + web.gunicorn.timeout (%v): the kubelet kills a web pod still finishing its requests" $v.web.terminationGracePeriodSeconds (add $v.web.drainSeconds $v.web.gunicorn.timeout)) }}
{{- end }}
{{- if and $v.redis.enabled $v.rabbitmq.enabled }}
{{- fail "redis.enabled and rabbitmq.enabled are both true: bundle only the broker named by broker.type" }}
{{- end }}
{{- if and $v.redis.enabled (ne $v.broker.type "redis") }}
{{- fail "redis.enabled=true needs broker.type=redis" }}
{{- end }}
{{- if and $v.rabbitmq.enabled (ne $v.broker.type "rabbitmq") }}
{{- fail "rabbitmq.enabled=true needs broker.type=rabbitmq" }}
{{- end }}
{{- if and $v.pgbouncer.enabled (not $v.postgresql.enabled) (not $v.pgbouncer.upstream) }}
{{- fail "pgbouncer.upstream (host:port of PostgreSQL) is required when pgbouncer.enabled and postgresql.enabled=false" }}
{{- end }}
{{- if and (eq $v.storage.backend "s3") (not $v.storage.s3.bucket) }}
{{- fail "storage.s3.bucket is required with storage.backend=s3" }}
{{- end }}
{{- include "dc.validateObjectStore" . }}
{{- if and (eq $v.workers.autoscaler "keda") (eq $v.broker.type "redis") (not $v.redis.enabled) (not $v.workers.keda.redis.address) }}
{{- fail "workers.keda.redis.address (host:port of the Redis broker) is required for KEDA with an external Redis" }}
{{- end }}
{{- if and $v.migrations.enabled $v.migrations.helmHooks (or $v.postgresql.enabled (not $v.secrets.existingSecret)) }}
{{- fail "migrations.helmHooks=true runs the Job before this chart's objects exist: it needs an external database (postgresql.enabled=false) and secrets.existingSecret" }}
{{- end }}
{{- $env := $v.config.env }}
{{- $hard := index $env "CELERY_TASK_TIME_LIMIT" | int }}
{{- $soft := index $env "CELERY_TASK_SOFT_TIME_LIMIT" | int }}
{{- $visibility := index $env "DEPLOYKIT_VISIBILITY_TIMEOUT" | int }}
{{- if le $hard $soft }}
{{- fail (printf "config.env.CELERY_TASK_TIME_LIMIT (%d) must exceed config.env.CELERY_TASK_SOFT_TIME_LIMIT (%d)" $hard $soft) }}
{{- end }}
{{- if le $visibility $hard }}
{{- fail (printf "config.env.DEPLOYKIT_VISIBILITY_TIMEOUT (%d) must exceed config.env.CELERY_TASK_TIME_LIMIT (%d), or tasks run twice" $visibility $hard) }}
{{- end }}
{{- $seen := dict }}
{{- range $i, $p := include "dc.pools" $ | fromJsonArray }}
{{- if hasKey $seen $p.name }}
{{- fail (printf "workers.pools[%d].name %q is used twice: pool names must be unique" $i $p.name) }}
{{- end }}
{{- $_ := set $seen $p.name true }}
{{- if gt (int $p.autoscaling.minReplicas) (int $p.autoscaling.maxReplicas) }}
{{- fail (printf "workers.pools[%d].autoscaling.minReplicas (%v) exceeds maxReplicas (%v)" $i $p.autoscaling.minReplicas $p.autoscaling.maxReplicas) }}
{{- end }}
{{- if and (eq $v.workers.autoscaler "hpa") (lt (int $p.autoscaling.minReplicas) 1) }}
{{- fail (printf "workers.pools[%d].autoscaling.minReplicas must be at least 1 with workers.autoscaler=hpa (only KEDA scales to zero)" $i) }}
{{- end }}
{{- end }}
{{- if not (include "dc.consumedQueues" $) }}
{{- fail "workers.pools: no pool runs (each is enabled: false, or has replicas 0 with workers.autoscaler=none): nothing would consume the project's tasks" }}
{{- end }}
{{- include "dc.validateConnectionBudget" . }}
{{- end }}

{{/*
Connection budget: every gunicorn thread and every Celery child may hold one database connection.
At full scale-out they must fit max_connections (or PgBouncer's client limit).
*/}}
{{- define "dc.validateConnectionBudget" -}}
{{- $v := .Values }}
{{- $webMax := ternary $v.web.autoscaling.maxReplicas $v.web.replicas $v.web.autoscaling.enabled | int }}
{{- $webConns := mul $webMax $v.web.gunicorn.workers $v.web.gunicorn.threads }}
{{- $webKey := ternary "web.autoscaling.maxReplicas" "web.replicas" $v.web.autoscaling.enabled }}
{{- $parts := list (printf "%s (%d) × web.gunicorn.workers (%v) × web.gunicorn.threads (%v) = %d" $webKey $webMax $v.web.gunicorn.workers $v.web.gunicorn.threads $webConns) }}
{{- $total := $webConns }}
{{- range $i, $p := include "dc.pools" $ | fromJsonArray }}
{{- $max := include "dc.workerMaxReplicas" (dict "root" $ "pool" $p) | int }}
{{- $key := ternary "replicas" "autoscaling.maxReplicas" (eq $v.workers.autoscaler "none") }}
{{- $conns := mul $max $p.concurrency }}
{{- $total = add $total $conns }}
{{- $parts = append $parts (printf "workers.pools[%d].%s (%d) × workers.pools[%d].concurrency (%v) = %d" $i $key $max $i $p.concurrency $conns) }}
{{- end }}
{{- if $v.beat.enabled }}{{ $total = add1 $total }}{{ $parts = append $parts "beat 1" }}{{ end }}
{{- if $v.migrations.enabled }}{{ $total = add1 $total }}{{ $parts = append $parts "migrations 1" }}{{ end }}
{{- $budget := int $v.database.maxConnections }}
{{- $budgetKey := "database.maxConnections" }}
{{- if $v.pgbouncer.enabled }}
{{- $budget = mul $v.pgbouncer.replicas $v.pgbouncer.maxClientConn }}
{{- $budgetKey = "pgbouncer.replicas × pgbouncer.maxClientConn" }}
{{- $server := mul $v.pgbouncer.replicas $v.pgbouncer.defaultPoolSize }}
{{- if gt (int $server) (int $v.database.maxConnections) }}
{{- fail (printf "pgbouncer.replicas (%v) × pgbouncer.defaultPoolSize (%v) = %d server connections exceed database.maxConnections (%v)" $v.pgbouncer.replicas $v.pgbouncer.defaultPoolSize $server $v.database.maxConnections) }}
{{- end }}
{{- end }}
{{- if gt (int $total) (int $budget) }}
{{- fail (printf "database connection budget exceeded: %s; total %d > %s (%d). Lower those replicas/concurrency, raise %s, or enable pgbouncer" (join " + " $parts) $total $budgetKey $budget $budgetKey) }}
{{- end }}
{{- end }}

{{/*
The bundled object store serves the s3 backend only, and its bucket is created by an initContainer of
the migration Job (a plain Job, so `helm install --wait` cannot deadlock on it).
*/}}
{{- define "dc.validateObjectStore" -}}
{{- $v := .Values }}
{{- $store := $v.storage.objectStore }}
{{- if $store.enabled }}
{{- if ne $v.storage.backend "s3" }}
{{- fail (printf "storage.objectStore.enabled=true needs storage.backend=s3 (got storage.backend=%s): the bundled server only backs the s3 storage backend" $v.storage.backend) }}
{{- end }}
{{- if $v.storage.s3.endpointUrl }}
{{- fail "storage.s3.endpointUrl must be empty with storage.objectStore.enabled=true: the chart points the app at the bundled server (set storage.s3.publicEndpointUrl for browsers)" }}
{{- end }}
{{- if not $v.migrations.enabled }}
{{- fail "storage.objectStore.enabled=true needs migrations.enabled=true: the migration Job creates the bucket (manage.py ensure_bucket) before migrating" }}
{{- end }}
{{- if $v.migrations.helmHooks }}
{{- fail "storage.objectStore.enabled=true needs migrations.helmHooks=false: a pre-install hook runs before the bundled object store exists" }}
{{- end }}
{{- if and $store.ingress.enabled (not $store.ingress.host) }}
{{- fail "storage.objectStore.ingress.host is required with storage.objectStore.ingress.enabled=true" }}
{{- end }}
{{- else if $store.ingress.enabled }}
{{- fail "storage.objectStore.ingress.enabled=true needs storage.objectStore.enabled=true" }}
{{- end }}
{{- end }}
