#!/usr/bin/env bash
# One Kubernetes node on this machine: a containerd of our own (own root, state, socket and config
# under build/k8s, so Docker's containerd is never touched) and the kubelet, on a cgroup v1 host.
#   up      start containerd + kubelet: standalone (static pods from build/k8s/manifests only), or
#           with K8S_NODE_MODE=cluster registered with the API server of tests/k8s/cluster/control-plane.sh
#   down    stop them (and kube-proxy), remove what they left: containers, pod cgroups, mounts,
#           netns, CNI bridge, iptables rules, the node address
#   status  print what runs
# Usage: tests/k8s/cluster/node.sh up|down|status
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../../.."
. tests/k8s/cluster/versions.env
. tests/k8s/cluster/lib.sh

write_containerd_config() {
    mkdir -p "$K/containerd" "$K/cni/net.d" "$K/run" "$K/log"
    # restrict_oom_score_adj: lowering an oom_score_adj (the sandbox's usual -998) needs
    # CAP_SYS_RESOURCE, which root lacks here; clamp pod scores to containerd's own instead.
    # (Set from the start: running without it was not tried.)
    cat > "$K/containerd/config.toml" <<TOML
version = 2
root = "$K/containerd/root"
state = "$K/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$K/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$K8S_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$K/cni/net.d"
  # Per-registry settings (hosts.toml, read at each pull): tests/k8s/chart/chart.sh adds the release
  # registry on 127.0.0.1, plain HTTP, when K8S_IMAGES_FROM=registry.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$K/containerd/certs.d"
TOML
    # The pod network: one bridge, host-local addresses, masquerade for traffic leaving the node.
    cat > "$K/cni/net.d/10-k8s-local.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "k8s-local",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$K8S_POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "$K/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
}

cluster_mode() { [ "${K8S_NODE_MODE:-standalone}" = cluster ]; }

# Standalone: no API server to ask, so no remote caller is let in (port 10250 refuses everyone).
# With a control plane: client certificates from its CA, decisions by the API server (webhook).
kubelet_auth() {
    if cluster_mode; then
        printf 'authentication:\n  anonymous: {enabled: false}\n  webhook: {enabled: true}\n  x509: {clientCAFile: %s}\nauthorization: {mode: Webhook}\n' "$K/pki/ca.crt"
        # Serving certificate from the cluster CA (tests/k8s/cluster/pki.sh), so clients such as
        # metrics-server verify the kubelet instead of skipping TLS verification.
        printf 'tlsCertFile: %s\ntlsPrivateKeyFile: %s\n' "$K/pki/kubelet-serving.crt" "$K/pki/kubelet-serving.key"
    else
        printf 'authentication:\n  anonymous: {enabled: false}\n  webhook: {enabled: false}\nauthorization: {mode: AlwaysAllow}\n'
    fi
}

write_kubelet_config() {
    mkdir -p "$K/manifests" "$K/kubelet" "$K/log/pods"
    # failCgroupV1: false keeps working on cgroup v1 hosts should the pin move to 1.35+.
    # oomScoreAdj: 0 because lowering it (default -999) needs CAP_SYS_RESOURCE, which root lacks here.
    # readOnlyPort on the node address only: lets tests read /pods without client certificates.
    cat > "$K/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
staticPodPath: $K/manifests
podLogsDir: $K/log/pods
address: $K8S_NODE_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: $KUBELET_RO_PORT
podCIDR: $K8S_POD_CIDR
clusterDomain: cluster.local
clusterDNS: [$(cluster_dns_ip)]
$(kubelet_auth)
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
YAML
}

# Debian packages the node runs on (containerd and runc also come with docker.io).
ensure_host_packages() {
    local need=()
    command -v containerd >/dev/null || need+=(containerd)
    command -v runc >/dev/null || need+=(runc)
    [ -x "$CNI_BIN_DIR/bridge" ] || need+=(containernetworking-plugins)
    command -v jq >/dev/null || need+=(jq)
    command -v iptables >/dev/null || need+=(iptables)
    scripts/setup/apt-install.sh --no-recommends "the Kubernetes node" "${need[@]}"
}

# kube-proxy (iptables mode) as a host process, like the kubelet. NodePorts only on the node address
# (never on the machine's real interfaces, and no route_localnet sysctl for 127.0.0.1 NodePorts);
# conntrack sizing off: it would try to raise nf_conntrack_max, a host-wide setting.
start_kube_proxy() {
    running kube-proxy && return 0
    [ -x "$K/bin/kube-proxy" ] || tests/k8s/cluster/build.sh kube-proxy
    setsid "$K/bin/kube-proxy" --kubeconfig "$K/pki/kube-proxy.kubeconfig" --hostname-override "$K8S_NODE_NAME" \
        --proxy-mode iptables --cluster-cidr "$K8S_POD_CIDR" --nodeport-addresses "$K8S_NODE_IP/32" \
        --iptables-localhost-nodeports=false --conntrack-max-per-core 0 \
        --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256 \
        > "$K/log/kube-proxy.log" 2>&1 < /dev/null &
    echo $! > "$K/run/kube-proxy.pid"
    wait_for "kube-proxy healthz" 60 curl -fsS -o /dev/null http://127.0.0.1:10256/healthz
}

up() {
    case "${K8S_NODE_MODE:-standalone}" in
        standalone) ;;
        cluster) [ -f "$KUBELET_KUBECONFIG" ] || { echo "K8S_NODE_MODE=cluster needs $KUBELET_KUBECONFIG (tests/k8s/cluster/control-plane.sh up)" >&2; exit 1; } ;;
        *) echo "K8S_NODE_MODE must be standalone or cluster, not '$K8S_NODE_MODE'" >&2; exit 2 ;;
    esac
    ensure_host_packages
    [ -x "$K/bin/kubelet" ] || tests/k8s/cluster/build.sh kubelet
    tests/k8s/cluster/pause-image.sh >/dev/null
    write_containerd_config
    node_ip_up
    pod_forward -I
    service_escape -I
    if ! running containerd; then
        # setsid: the daemons outlive this script; `down` stops them by the pid files.
        setsid containerd --config "$K/containerd/config.toml" > "$K/log/containerd.log" 2>&1 < /dev/null &
        echo $! > "$K/run/containerd.pid"
        wait_for "containerd socket" 30 ctr_ version
    fi
    tests/k8s/cluster/import-images.sh "$K8S_PAUSE_IMAGE"
    write_kubelet_config
    if ! running kubelet; then
        local args=(--config "$K/kubelet-config.yaml" --root-dir "$K/kubelet" --cert-dir "$K/kubelet/pki"
                    --hostname-override "$K8S_NODE_NAME" --node-ip "$K8S_NODE_IP" --v=1)
        cluster_mode && args+=(--kubeconfig "$KUBELET_KUBECONFIG")
        setsid "$K/bin/kubelet" "${args[@]}" > "$K/log/kubelet.log" 2>&1 < /dev/null &
        echo $! > "$K/run/kubelet.pid"
        wait_for "kubelet healthz" 60 curl -fsS -o /dev/null "http://127.0.0.1:10248/healthz"
    fi
    cluster_mode && start_kube_proxy
    echo "==> node up: containerd ($CONTAINERD_SOCK), kubelet $K8S_VERSION (logs: $K/log)"
}

down() {
    stop kube-proxy
    # Its KUBE-* chains and the jumps into them (Docker's chains are not touched).
    if [ -x "$K/bin/kube-proxy" ] && iptables-save | grep -q '^:KUBE-'; then
        "$K/bin/kube-proxy" --cleanup --proxy-mode iptables > "$K/log/kube-proxy-cleanup.log" 2>&1 || true
    fi
    stop kubelet
    if running containerd; then
        # The CNI DEL of our sandboxes never runs once the kubelet is gone: note their netns for cleanup.
        for c in $(ctr_ -n k8s.io containers ls -q); do
            ctr_ -n k8s.io containers info "$c" \
                | jq -r '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty'
        done | sort -u > "$K/run/netns.list"
        # Kill every task of our containerd (never Docker's: different socket), then the daemon.
        for ns in $(ctr_ namespaces ls -q); do
            for c in $(ctr_ -n "$ns" containers ls -q); do
                ctr_ -n "$ns" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
                ctr_ -n "$ns" tasks delete -f "$c" >/dev/null 2>&1 || true
                ctr_ -n "$ns" containers delete "$c" >/dev/null 2>&1 || true
            done
        done
    fi
    stop containerd
    cleanup_node_leftovers
    echo "==> node down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) for d in containerd kubelet kube-proxy; do running "$d" && echo "$d: running (pid $(cat "$K/run/$d.pid"))" || echo "$d: stopped"; done ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
