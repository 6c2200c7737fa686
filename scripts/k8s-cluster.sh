#!/usr/bin/env bash
# The whole local cluster: control plane (scripts/k8s-control-plane.sh), the node in cluster mode
# with kube-proxy (scripts/k8s-node.sh), and CoreDNS. `kubectl` and the kubeconfig to use are
# build/k8s/bin/kubectl and build/k8s/pki/admin.kubeconfig.
#   up      start everything, wait until the node is Ready and CoreDNS answers
#   down    stop everything and remove what it left on the host
# Usage: scripts/k8s-cluster.sh up|down
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/.."
. scripts/k8s-versions.env
. scripts/k8s-lib.sh
export KUBECONFIG=$K/pki/admin.kubeconfig

up() {
    scripts/k8s-build.sh kubelet kube-proxy kubectl
    scripts/k8s-addons.sh build coredns
    scripts/k8s-control-plane.sh up
    K8S_NODE_MODE=cluster scripts/k8s-node.sh up
    scripts/k8s-import-images.sh "k8s-local/coredns:$COREDNS_VERSION"
    kubectl_ wait --for=condition=Ready "node/$K8S_NODE_NAME" --timeout=120s
    sed -e "s#@COREDNS_IMAGE@#k8s-local/coredns:$COREDNS_VERSION#" -e "s#@CLUSTER_DNS_IP@#$(cluster_dns_ip)#" \
        tests/k8s/cluster/coredns.yaml | kubectl_ apply -f - >/dev/null
    kubectl_ -n kube-system rollout status deployment/coredns --timeout=180s
    echo "==> cluster up: KUBECONFIG=$KUBECONFIG $K/bin/kubectl get nodes"
}

down() {
    scripts/k8s-node.sh down
    scripts/k8s-control-plane.sh down
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
