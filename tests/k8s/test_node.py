"""A kubelet with containerd runs pods on this cgroup v1 host (the spike of issue #9).

The kubelet runs standalone (static pods, no API server) against a containerd of its own; each test
reads the kubelet's own view of the pod (read-only port, 127.0.0.1 only) and the host's state.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from pathlib import Path

from conftest import K, pod_named, versions
from polling import wait_until

CGROUP_V1 = Path("/sys/fs/cgroup")


def running_pod(name: str) -> dict:
    def check():
        pod = pod_named(name)
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return pod if statuses and "running" in statuses[0].get("state", {}) else None

    return wait_until(check, 90, f"pod {name} to run")


def test_pod_runs_in_its_own_cgroups_with_its_limits(static_pod):
    static_pod("limits", "echo started; sleep infinity", host_network=True, memory_limit="48Mi")
    pod = running_pod("limits")
    uid = pod["metadata"]["uid"]
    # The pod's cgroup (cgroupfs driver, burstable QoS) in the memory hierarchy carries its limit.
    pod_cgroup = CGROUP_V1 / "memory/kubepods/burstable" / f"pod{uid}"
    assert (pod_cgroup / "memory.limit_in_bytes").read_text().strip() == str(48 * 1024 * 1024)
    # cpu and cpuacct are separate hierarchies on this host; the CPU limit lands in "cpu".
    quota = int((CGROUP_V1 / "cpu/kubepods/burstable" / f"pod{uid}" / "cpu.cfs_quota_us").read_text())
    assert quota == 20000  # 200m of a 100 ms period


def test_pod_gets_an_address_on_the_pod_network_and_reaches_the_node(static_pod):
    env = versions()
    # The node side of the bridge only exists once a sandbox is set up: start one pod first.
    static_pod("first", "sleep infinity")
    first = running_pod("first")
    assert ipaddress.ip_address(first["status"]["podIP"]) in ipaddress.ip_network(env["K8S_POD_CIDR"])
    gateway = str(next(ipaddress.ip_network(env["K8S_POD_CIDR"]).hosts()))
    with socket.create_server((gateway, 0)) as server:
        server.settimeout(90)
        port = server.getsockname()[1]
        static_pod("caller", f"echo hello-from-pod > /dev/tcp/{gateway}/{port}; sleep infinity")
        conn, (peer, _) = server.accept()
        with conn:
            assert conn.makefile().readline().strip() == "hello-from-pod"
    assert peer == running_pod("caller")["status"]["podIP"]


def test_removing_the_manifest_stops_the_pod_and_frees_its_cgroup(static_pod):
    static_pod("gone", "sleep infinity", host_network=True)
    uid = running_pod("gone")["metadata"]["uid"]
    (K / "manifests/test-gone.yaml").unlink()
    wait_until(lambda: pod_named("gone") is None, 90, "pod gone to disappear")
    wait_until(lambda: not (CGROUP_V1 / "memory/kubepods/burstable" / f"pod{uid}").exists(), 90,
               "its memory cgroup to be removed")


def test_down_leaves_no_process_cgroup_bridge_rule_or_mount_behind(standalone_node, static_pod):
    static_pod("leftover", "sleep infinity")  # networked, so there is a bridge, netns and nat rules
    running_pod("leftover")
    subprocess.run([str(K.parents[1] / "tests/k8s/cluster/node.sh"), "down"], check=True)
    assert not list(CGROUP_V1.glob("*/kubepods")), "pod cgroups left behind"
    assert subprocess.run(["ip", "link", "show", "k8s-local0"], capture_output=True).returncode != 0
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    assert 'name: \\"k8s-local\\"' not in nat
    assert "k8s-local" not in subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
    for save in ("iptables-save", "ip6tables-save"):
        rules = subprocess.run([save], capture_output=True, text=True, check=True).stdout
        assert "KUBE-" not in rules, f"{save}: kubelet/kube-proxy chains left behind"
    mounts = Path("/proc/self/mounts").read_text()
    assert str(K) not in mounts
    assert not list((K / "run").glob("*.pid"))
    # The session fixture's own `down` afterwards must be a no-op on a stopped node.
