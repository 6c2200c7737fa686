#!/usr/bin/env bash
# make test-k8s: the local cluster up, the chart on it, the Compose smoke suite through the front
# door, the in-cluster checks (tests/k8s/test_chart.py), and the cluster down again: always, also
# when a step fails. Prints how long each step took. Binaries and images must be built already
# (make k8s-build images): a cold Go build does not belong inside a test run's bounds.
# Usage: scripts/k8s-test.sh [pytest args for tests/k8s/test_chart.py]
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
. scripts/k8s-lib.sh
export KUBECONFIG=$K/pki/admin.kubeconfig PATH=$K/bin:$PWD/.tools/bin:$PATH
export NAMESPACE=${NAMESPACE:-django-celery} RELEASE=${RELEASE:-django-celery}
# One port for the front door's forward: its redirect and the chart's CSRF origin name it
# (tests/k8s/chart/values.yaml); 28443/28080 stay clear of the Compose smoke stack's 18443/18080.
export LOCAL_PORT=28443 LOCAL_HTTP_PORT=28080

timings=()
step() {  # step NAME CMD...: run and record its duration (also when it fails)
    local name=$1 start=$SECONDS rc=0; shift
    echo "==> [$name]"
    "$@" || rc=$?
    timings+=("$name $((SECONDS - start)) s$([ "$rc" = 0 ] || echo " (failed: exit $rc)")")
    return "$rc"
}
report() {
    local rc=$?
    step "cluster down" scripts/k8s-cluster.sh down || rc=1
    printf '==> %s\n' "${timings[@]}"
    exit "$rc"
}
trap report EXIT

step "cluster up" scripts/k8s-cluster.sh up
step "helm install" scripts/k8s-chart.sh install
step "smoke suite" env INGRESS_NAMESPACE="$NAMESPACE" INGRESS_SERVICE=front-door TLS_SECRET=front-door-tls \
    scripts/smoke-k8s.sh -p no:cacheprovider
step "chart tests" env K8S_LIVE=1 .venv/bin/python -m pytest -c tests/k8s/pytest.ini --rootdir tests/k8s \
    -p no:cacheprovider tests/k8s/test_chart.py "$@"
