# Shared paths and helpers of the test cluster's scripts (tests/k8s/cluster/*.sh, tests/k8s/run.sh,
# tests/k8s/chart/chart.sh; sourced, not run). Everything lives under build/k8s.
K=$PWD/build/k8s
CONTAINERD_SOCK=$K/run/containerd.sock
KUBELET_KUBECONFIG=$K/pki/kubelet.kubeconfig
KUBELET_RO_PORT=10255
CNI_BIN_DIR=/usr/lib/cni
CNI_BRIDGE=k8s-local0

# The node address on lo (see K8S_NODE_IP in tests/k8s/cluster/versions.env).
node_ip_up() {
    ip -4 addr show dev lo | grep -q " $K8S_NODE_IP/32 " || ip addr add "$K8S_NODE_IP/32" dev lo label lo:k8s
}
node_ip_down() {
    if ip -4 addr show dev lo | grep -q " $K8S_NODE_IP/32 "; then ip addr del "$K8S_NODE_IP/32" dev lo; fi
}

# Docker sets the FORWARD policy to DROP, and bridged pod traffic passes FORWARD (br_netfilter):
# without these two rules pods cannot reach each other (nor CoreDNS). Tagged so that `down`
# removes exactly them.
FORWARD_RULES=("-s K8S_POD_CIDR" "-d K8S_POD_CIDR")
pod_forward() {  # pod_forward -I|-D
    local rule
    for rule in "${FORWARD_RULES[@]}"; do
        rule=${rule/K8S_POD_CIDR/$K8S_POD_CIDR}
        if [ "$1" = -I ]; then
            iptables -C FORWARD $rule -m comment --comment k8s-local -j ACCEPT 2>/dev/null \
                || iptables -I FORWARD $rule -m comment --comment k8s-local -j ACCEPT
        else
            while iptables -D FORWARD $rule -m comment --comment k8s-local -j ACCEPT 2>/dev/null; do :; done
        fi
    done
}

# A pod's packet to a Service address that kube-proxy did not translate (a Service without ready
# endpoints) must not leave the machine. kube-proxy REJECTs it in filter FORWARD, but an ACCEPT ahead of
# that rule (seen with kube-router's, the NetworkPolicy enforcer tried for #20 item 6) routes it out and
# masquerades it: KEDA's first request to web, before web was Ready, got an HTTP 404 from beyond the
# machine, on a keep-alive connection it then kept (the ScaledObject was never Ready). Drop such packets
# in mangle FORWARD, whatever the filter rules' order: after kube-proxy's DNAT (translated traffic never
# matches), before filter FORWARD. A client of a Service without endpoints then times out instead of
# being refused. Tagged like the FORWARD rules, removed on `down`.
service_escape() {  # service_escape -I|-D
    local rule=(FORWARD -s "$K8S_POD_CIDR" -d "$K8S_SERVICE_CIDR" -m comment --comment k8s-local -j DROP)
    if [ "$1" = -I ]; then
        iptables -t mangle -C "${rule[@]}" 2>/dev/null || iptables -t mangle -I "${rule[@]}"
    else
        while iptables -t mangle -D "${rule[@]}" 2>/dev/null; do :; done
    fi
}

ctr_() { ctr -a "$CONTAINERD_SOCK" "$@"; }

# running NAME: the daemon whose pid is in build/k8s/run/NAME.pid is alive.
running() { [ -f "$K/run/$1.pid" ] && kill -0 "$(cat "$K/run/$1.pid")" 2>/dev/null; }

# stop NAME: SIGTERM the daemon we started (by its pid file), SIGKILL after 20 s.
stop() {
    running "$1" || { rm -f "$K/run/$1.pid"; return 0; }
    local pid; pid=$(cat "$K/run/$1.pid")
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { echo "$1 ignored SIGTERM: SIGKILL" >&2; kill -9 "$pid"; }
    rm -f "$K/run/$1.pid"
}

# wait_for WHAT SECONDS CMD...: retry CMD until it succeeds; fail naming WHAT after SECONDS.
wait_for() {
    local what=$1 secs=$2; shift 2
    for _ in $(seq 1 $((secs * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    echo "timed out after ${secs}s waiting for $what (logs: $K/log)" >&2
    return 1
}

# The cluster DNS Service address: the 10th address of the service range (kubeadm's convention).
cluster_dns_ip() { echo "${K8S_SERVICE_CIDR%.*/*}.10"; }

# remove_chains CMD TABLE CHAIN...: delete the jumps into the chains, then the chains themselves.
remove_chains() {
    local cmd=$1 table=$2 rule chain; shift 2
    [ $# -gt 0 ] || return 0
    local targets; targets=$(printf '%s|' "$@"); targets=${targets%|}
    "$cmd-save" -t "$table" | { grep -E -- "^-A .* -j ($targets)( |\$)" || true; } | sed 's/^-A /-D /' \
        | while read -r rule; do eval "$cmd -t $table $rule"; done
    for chain in "$@"; do "$cmd" -t "$table" -F "$chain" 2>/dev/null || true; done
    for chain in "$@"; do "$cmd" -t "$table" -X "$chain" 2>/dev/null || true; done
}

# After the daemons stopped: what they can leave behind on the host.
cleanup_node_leftovers() {
    # Mounts under build/k8s (pod volumes, sandbox /dev/shm, overlay rootfs), deepest first.
    findmnt -rn -o TARGET | { grep "^$K/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
    # Pod network namespaces of our sandboxes (listed by `down` before it killed them).
    if [ -f "$K/run/netns.list" ]; then
        while read -r ns; do
            [ -e "$ns" ] || continue
            umount -l "$ns" 2>/dev/null || true; rm -f "$ns"
        done < "$K/run/netns.list"
        rm -f "$K/run/netns.list"
    fi
    # Pod cgroups (cgroupfs driver: /kubepods in every hierarchy), deepest first; rmdir only empties.
    for h in /sys/fs/cgroup/*/kubepods; do
        [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    # The bridge; the per-pod nat chains of our CNI network (their rules carry the comment
    # name: "k8s-local"; other CNI users on this host are left alone); the KUBE-* chains of the
    # kubelet and kube-proxy (Docker's are DOCKER-*).
    if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link delete "$CNI_BRIDGE"; fi
    pod_forward -D
    service_escape -D
    remove_chains iptables nat $(iptables-save -t nat | grep -F 'name: \"k8s-local\"' | grep -o 'CNI-[A-Za-z0-9-]*' | sort -u || true)
    local cmd table
    for cmd in iptables ip6tables; do
        for table in filter nat mangle; do
            remove_chains "$cmd" "$table" $("$cmd-save" -t "$table" | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p')
        done
    done
    rm -rf "$K/cni/ipam"
    running kube-apiserver || node_ip_down   # the API server listens there too
}

kubectl_() { "$K/bin/kubectl" --kubeconfig "$K/pki/admin.kubeconfig" "$@"; }
