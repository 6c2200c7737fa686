#!/usr/bin/env bash
# make test-k8s: the local cluster up with metrics-server and KEDA, the chart on it, the Compose
# smoke suite through the front door, the in-cluster checks (tests/k8s/test_chart.py: pods from the
# inside, KEDA burst, upgrade, uninstall), and the cluster down again: always, also
# when a step fails. Prints how long each step took. Binaries and images must be built already
# (make k8s-build images): a cold Go build does not belong inside a test run's bounds.
# Usage: tests/k8s/run.sh [pytest args for tests/k8s/test_chart.py]
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
. tests/k8s/cluster/lib.sh
export KUBECONFIG=$K/pki/admin.kubeconfig PATH=$K/bin:$PWD/.tools/bin:$PATH
export NAMESPACE=${NAMESPACE:-django-celery} RELEASE=${RELEASE:-django-celery}
# Local ports of the front door's forward, free ones picked now (fixed ones collided with other
# stacks on this machine): its redirect and the release's CSRF origin name LOCAL_PORT (tests/k8s/chart/chart.sh).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export LOCAL_PORT=${LOCAL_PORT:-$(free_port)} LOCAL_HTTP_PORT=${LOCAL_HTTP_PORT:-$(free_port)}

# The smoke suite's browser test drives Debian's chromium: install it here too (make test-k8s alone, fresh machine).
scripts/setup/ensure-chromium.sh

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
    step "cluster down" tests/k8s/cluster/cluster.sh down || rc=1
    printf '==> %s\n' "${timings[@]}"
    exit "$rc"
}
trap report EXIT

step "cluster up" tests/k8s/cluster/cluster.sh up
step "metrics-server, KEDA" tests/k8s/cluster/addons.sh deploy
step "helm install" tests/k8s/chart/chart.sh install
step "smoke suite" env INGRESS_NAMESPACE="$NAMESPACE" INGRESS_SERVICE=front-door TLS_SECRET=front-door-tls \
    tests/smoke/run-k8s.sh -p no:cacheprovider
step "chart tests" env K8S_LIVE=1 .venv/bin/python -m pytest -c tests/k8s/pytest.ini --rootdir tests/k8s \
    -p no:cacheprovider -s tests/k8s/test_chart.py "$@"  # -s: the figures each test prints land in the CI log
