#!/usr/bin/env bash
# Point the smoke suite (tests/smoke) at a release in a cluster: port-forward web and Flower to
# 127.0.0.1, export the SMOKE_* variables the suite reads, and run it. testinfra's kubectl backend
# (kubectl://POD?namespace=NS) reaches the pods for in-pod checks through SMOKE_K8S_NAMESPACE.
# Usage: [NAMESPACE=django-celery-staging RELEASE=django-celery] scripts/smoke-k8s.sh [pytest args]
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
NAMESPACE=${NAMESPACE:-django-celery-staging}
RELEASE=${RELEASE:-django-celery}
WEB_PORT=${WEB_PORT:-18000}
FLOWER_PORT=${FLOWER_PORT:-15555}

command -v kubectl >/dev/null || { echo "kubectl is required for smoke-k8s" >&2; exit 2; }
kubectl config current-context >/dev/null 2>&1 || { echo "no kubeconfig context: smoke-k8s needs a cluster" >&2; exit 2; }
[ -d tests/smoke ] || { echo "tests/smoke is missing" >&2; exit 2; }

# Service names follow the chart's fullname: <release> when it contains the chart name, else <release>-django-celery.
case "$RELEASE" in *django-celery*) FULL=$RELEASE ;; *) FULL=$RELEASE-django-celery ;; esac
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
kubectl -n "$NAMESPACE" port-forward "svc/$FULL-web" "$WEB_PORT:80" >/dev/null & pids+=($!)
kubectl -n "$NAMESPACE" port-forward "svc/$FULL-flower" "$FLOWER_PORT:5555" >/dev/null & pids+=($!)

# Wait (bounded) until the forwarded web port answers /healthz.
for _ in $(seq 1 60); do
    curl -fsS -o /dev/null "http://127.0.0.1:$WEB_PORT/healthz" && break
    sleep 0.5
done
curl -fsS -o /dev/null "http://127.0.0.1:$WEB_PORT/healthz" || { echo "web did not answer through port-forward" >&2; exit 1; }

secret() { kubectl -n "$NAMESPACE" get secret "${SECRET:-$FULL}" -o "jsonpath={.data.$1}" | base64 -d; }
export SMOKE_TARGET=k8s
export SMOKE_BASE_URL="http://127.0.0.1:$WEB_PORT"
export SMOKE_FLOWER_URL="http://127.0.0.1:$FLOWER_PORT/$(kubectl -n "$NAMESPACE" get configmap "$FULL-config" -o 'jsonpath={.data.FLOWER_URL_PREFIX}')"
export SMOKE_FLOWER_USER; SMOKE_FLOWER_USER=$(secret FLOWER_USER)
export SMOKE_FLOWER_PASSWORD; SMOKE_FLOWER_PASSWORD=$(secret FLOWER_PASSWORD)
export SMOKE_K8S_NAMESPACE=$NAMESPACE
# No exec: the EXIT trap must stop the port-forwards after the suite.
.venv/bin/python -m pytest -q tests/smoke "$@"
