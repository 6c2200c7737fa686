#!/usr/bin/env bash
# The control plane of the local cluster: etcd (Debian's etcd-server), kube-apiserver,
# kube-controller-manager and kube-scheduler at the pinned release, as plain processes on the node
# address (K8S_NODE_IP), with certificates from tests/k8s/cluster/pki.sh. State under build/k8s.
#   up      start the four, wait until the API server is ready
#   down    stop them (scheduler and controllers first); etcd's data is removed: every run starts empty
#   status  print what runs
# Usage: tests/k8s/cluster/control-plane.sh up|down|status
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
. tests/k8s/cluster/lib.sh
P=$K/pki
API=https://$K8S_NODE_IP:$K8S_APISERVER_PORT

start() {  # start NAME COMMAND...: run a daemon detached, pid in build/k8s/run/NAME.pid
    local name=$1; shift
    running "$name" && return 0
    setsid "$@" > "$K/log/$name.log" 2>&1 < /dev/null &
    echo $! > "$K/run/$name.pid"
}

up() {
    command -v etcd >/dev/null || scripts/setup/apt-install.sh --no-recommends "the cluster's etcd" etcd-server
    tests/k8s/cluster/build.sh kube-apiserver kube-controller-manager kube-scheduler
    tests/k8s/cluster/pki.sh >/dev/null
    mkdir -p "$K/run" "$K/log" "$K/etcd"
    node_ip_up

    start etcd etcd --name k8s-local --data-dir "$K/etcd" \
        --listen-client-urls "http://127.0.0.1:$K8S_ETCD_CLIENT_PORT" \
        --advertise-client-urls "http://127.0.0.1:$K8S_ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$K8S_ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$K8S_ETCD_PEER_PORT" \
        --initial-cluster "k8s-local=http://127.0.0.1:$K8S_ETCD_PEER_PORT"
    wait_for "etcd" 30 curl -fsS "http://127.0.0.1:$K8S_ETCD_CLIENT_PORT/health"

    # requestheader/proxy-client: the aggregation layer that metrics-server and KEDA's metrics API use.
    start kube-apiserver "$K/bin/kube-apiserver" \
        --bind-address "$K8S_NODE_IP" --advertise-address "$K8S_NODE_IP" --secure-port "$K8S_APISERVER_PORT" \
        --etcd-servers "http://127.0.0.1:$K8S_ETCD_CLIENT_PORT" \
        --service-cluster-ip-range "$K8S_SERVICE_CIDR" \
        --client-ca-file "$P/ca.crt" --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
        --kubelet-client-certificate "$P/apiserver-kubelet-client.crt" --kubelet-client-key "$P/apiserver-kubelet-client.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --requestheader-client-ca-file "$P/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "$P/front-proxy-client.crt" --proxy-client-key-file "$P/front-proxy-client.key" \
        --enable-aggregator-routing=true --kubelet-preferred-address-types InternalIP,Hostname
    wait_for "kube-apiserver /readyz" 120 curl -fsS --cacert "$P/ca.crt" "$API/readyz"

    start kube-controller-manager "$K/bin/kube-controller-manager" \
        --kubeconfig "$P/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$P/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$P/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
        --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
        --cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
        --service-cluster-ip-range "$K8S_SERVICE_CIDR" \
        --requestheader-client-ca-file "$P/front-proxy-ca.crt"
    start kube-scheduler "$K/bin/kube-scheduler" \
        --kubeconfig "$P/scheduler.kubeconfig" \
        --authentication-kubeconfig "$P/scheduler.kubeconfig" \
        --authorization-kubeconfig "$P/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false
    wait_for "kube-controller-manager healthz" 60 curl -fsSk https://127.0.0.1:10257/healthz
    wait_for "kube-scheduler healthz" 60 curl -fsSk https://127.0.0.1:10259/healthz
    echo "==> control plane up: $API (kubeconfig: $P/admin.kubeconfig; logs: $K/log)"
}

down() {
    for d in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$d"; done
    rm -rf "$K/etcd"
    running kubelet || node_ip_down
    echo "==> control plane down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) for d in etcd kube-apiserver kube-controller-manager kube-scheduler; do
                running "$d" && echo "$d: running (pid $(cat "$K/run/$d.pid"))" || echo "$d: stopped"; done ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
