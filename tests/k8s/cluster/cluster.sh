#!/usr/bin/env bash
# The whole local cluster: control plane (tests/k8s/cluster/control-plane.sh), the node in cluster mode
# with kube-proxy (tests/k8s/cluster/node.sh), and CoreDNS. `kubectl` and the kubeconfig to use are
# build/k8s/bin/kubectl and build/k8s/pki/admin.kubeconfig.
#   up      start everything, wait until the node is Ready and CoreDNS answers
#   down    stop everything and remove what it left on the host
# Usage: tests/k8s/cluster/cluster.sh up|down
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
. tests/k8s/cluster/lib.sh
export KUBECONFIG=$K/pki/admin.kubeconfig

up() {
    tests/k8s/cluster/build.sh kubelet kube-proxy kubectl
    tests/k8s/cluster/addons.sh build coredns
    tests/k8s/cluster/control-plane.sh up
    K8S_NODE_MODE=cluster tests/k8s/cluster/node.sh up
    tests/k8s/cluster/import-images.sh "k8s-local/coredns:$COREDNS_VERSION"
    kubectl_ wait --for=condition=Ready "node/$K8S_NODE_NAME" --timeout=120s
    sed -e "s#@COREDNS_IMAGE@#k8s-local/coredns:$COREDNS_VERSION#" -e "s#@CLUSTER_DNS_IP@#$(cluster_dns_ip)#" \
        tests/k8s/cluster/coredns.yaml | kubectl_ apply -f - >/dev/null
    kubectl_ -n kube-system rollout status deployment/coredns --timeout=180s
    echo "==> cluster up: KUBECONFIG=$KUBECONFIG $K/bin/kubectl get nodes"
}

down() {
    tests/k8s/cluster/node.sh down
    tests/k8s/cluster/control-plane.sh down
    # The release registry of K8S_IMAGES_FROM=registry (tests/k8s/chart/chart.sh); a no-op without one.
    scripts/release/local-registry.sh stop "$K/registry"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
