#!/usr/bin/env bash
# Run the smoke suite (tests/smoke) against a release in the current kubeconfig context.
# The suite talks to one HTTPS front door (app, /admin/, /flower/), so this port-forwards the ingress
# controller's HTTPS and HTTP ports to 127.0.0.1 and exports the SMOKE_* variables the suite reads; in-pod
# checks can use testinfra's kubectl backend (kubectl://POD?namespace=$SMOKE_K8S_NAMESPACE).
# The release must serve SMOKE_HOST (default localhost, which resolves to 127.0.0.1 without DNS) on
# its web and Flower ingresses, with a certificate signed by the CA in TLS_SECRET (ca.crt, else tls.crt).
#
# Usage: NAMESPACE=django-celery-staging RELEASE=django-celery TLS_SECRET=app-tls tests/smoke/run-k8s.sh [pytest args]
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
NAMESPACE=${NAMESPACE:-django-celery-staging}
RELEASE=${RELEASE:-django-celery}
INGRESS_NAMESPACE=${INGRESS_NAMESPACE:-ingress-nginx}
INGRESS_SERVICE=${INGRESS_SERVICE:-ingress-nginx-controller}
SMOKE_HOST=${SMOKE_HOST:-localhost}
LOCAL_PORT=${LOCAL_PORT:-18443}
# Also forward the plain-HTTP port there (the redirect test) when the front door's redirect names
# LOCAL_PORT (the local cluster's front door does; an ingress controller's names 443).
LOCAL_HTTP_PORT=${LOCAL_HTTP_PORT:-}
TLS_SECRET=${TLS_SECRET:-}

command -v kubectl >/dev/null || { echo "kubectl is required for smoke-k8s" >&2; exit 2; }
kubectl config current-context >/dev/null 2>&1 || { echo "no kubeconfig context: smoke-k8s needs a cluster" >&2; exit 2; }

# Object names follow the chart's fullname: <release> when it contains the chart name, else <release>-django-celery.
case "$RELEASE" in *django-celery*) FULL=$RELEASE ;; *) FULL=$RELEASE-django-celery ;; esac
config() { kubectl -n "$NAMESPACE" get configmap "$FULL-config" -o "jsonpath={.data.$1}"; }
secret() { kubectl -n "$NAMESPACE" get secret "${APP_SECRET:-$FULL}" -o "jsonpath={.data.$1}" | base64 -d; }

mkdir -p build
export SMOKE_CA_FILE=""
if [ -n "$TLS_SECRET" ]; then
    SMOKE_CA_FILE=$PWD/build/smoke-k8s-ca.pem
    kubectl -n "$NAMESPACE" get secret "$TLS_SECRET" -o 'jsonpath={.data.ca\.crt}' | base64 -d > "$SMOKE_CA_FILE"
    [ -s "$SMOKE_CA_FILE" ] || kubectl -n "$NAMESPACE" get secret "$TLS_SECRET" -o 'jsonpath={.data.tls\.crt}' | base64 -d > "$SMOKE_CA_FILE"
fi

# --address: fail when another program holds the port on 127.0.0.1 (not fall back to ::1 alone).
kubectl -n "$INGRESS_NAMESPACE" port-forward --address 127.0.0.1 "svc/$INGRESS_SERVICE" "$LOCAL_PORT:443" ${LOCAL_HTTP_PORT:+"$LOCAL_HTTP_PORT:80"} \
    >build/smoke-k8s-port-forward.log 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null || true' EXIT

export SMOKE_BASE_URL="https://$SMOKE_HOST:$LOCAL_PORT" SMOKE_HTTP_URL="${LOCAL_HTTP_PORT:+http://$SMOKE_HOST:$LOCAL_HTTP_PORT}"
curl_ca=(); [ -n "$SMOKE_CA_FILE" ] && curl_ca=(--cacert "$SMOKE_CA_FILE")
# Readiness wait with a bound: the forward and the ingress route must both answer.
ready=""
for _ in $(seq 1 60); do
    if curl -fsS "${curl_ca[@]}" -o /dev/null "$SMOKE_BASE_URL/readyz"; then ready=yes; break; fi
    sleep 1
done
[ -n "$ready" ] || { echo "$SMOKE_BASE_URL/readyz did not answer (see build/smoke-k8s-port-forward.log)" >&2; exit 1; }

export SMOKE_FLOWER_PATH; SMOKE_FLOWER_PATH=$(config FLOWER_URL_PREFIX)
export SMOKE_ADMIN_PATH; SMOKE_ADMIN_PATH=$(config DJANGO_ADMIN_URL)
export SMOKE_FLOWER_USER; SMOKE_FLOWER_USER=$(secret FLOWER_USER)
export SMOKE_FLOWER_PASSWORD; SMOKE_FLOWER_PASSWORD=$(secret FLOWER_PASSWORD)
# The admin login test runs when the release creates a superuser (secrets.superuser.username).
export SMOKE_ADMIN_USER; SMOKE_ADMIN_USER=$(secret DJANGO_SUPERUSER_USERNAME 2>/dev/null || true)
export SMOKE_ADMIN_PASSWORD; SMOKE_ADMIN_PASSWORD=$(secret DJANGO_SUPERUSER_PASSWORD 2>/dev/null || true)
export SMOKE_K8S_NAMESPACE=$NAMESPACE SMOKE_K8S_RELEASE=$RELEASE
# The generic suite (test_pools.py, test_status.py): the queues the release's worker pools consume, read
# from their Deployments (CELERY_WORKER_QUEUES, one pool each; any project's queue names), and a command
# prefix that runs a command in the web container (probe_queues).
release=app.kubernetes.io/instance=$RELEASE
web=$(kubectl -n "$NAMESPACE" get deployment -l "$release,app.kubernetes.io/component=web" -o 'jsonpath={.items[*].metadata.name}')
web=${web%% *}
[ -n "$web" ] || { echo "no web Deployment of release $RELEASE in namespace $NAMESPACE" >&2; exit 1; }
export SMOKE_EXEC="${SMOKE_EXEC:-kubectl -n $NAMESPACE exec deploy/$web -c web --}"
# Pools that KEDA keeps at zero while idle (minReplicaCount 0) are left out: no worker of theirs is there
# for Flower to list until work arrives (the chart tests wake and count them).
idle=$(kubectl -n "$NAMESPACE" get scaledobject -l "$release" 2>/dev/null \
    -o 'jsonpath={range .items[?(@.spec.minReplicaCount==0)]}{.spec.scaleTargetRef.name}{" "}{end}' || true)
pool_queues=$(kubectl -n "$NAMESPACE" get deployment -l "$release" \
    -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{range .spec.template.spec.containers[*].env[?(@.name=="CELERY_WORKER_QUEUES")]}{.value}{end}{"\n"}{end}' |
    awk -v idle="$idle" 'BEGIN { n = split(idle, names, " "); for (i = 1; i <= n; i++) skip[names[i]] = 1 }
                         NF == 2 && !($1 in skip) { printf "%s,", $2 }')
export SMOKE_QUEUES="${SMOKE_QUEUES:-$(tr ',' '\n' <<<"$pool_queues" | sed '/^$/d' | sort -u | paste -sd, -)}"
[ -n "$SMOKE_QUEUES" ] || { echo "no worker pool of release $RELEASE consumes a queue" >&2; exit 1; }
echo "==> smoke: queues $SMOKE_QUEUES; exec: $SMOKE_EXEC"
# Compose-only tests skip themselves (no SMOKE_COMPOSE). A release of another project than the reference
# one: add -m "not compose and not reference" (the last -m wins). No exec: the EXIT trap stops the port-forward.
.venv/bin/python -m pytest -q tests/smoke -m "not compose" "$@"
