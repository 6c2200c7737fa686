"""Fixtures of the live node suite: a standalone kubelet + containerd (tests/k8s/cluster/node.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K = ROOT / "build" / "k8s"
MANIFESTS = K / "manifests"
TEST_IMAGE = os.environ.get("K8S_TEST_IMAGE", "blueprint/debian:trixie")


def versions() -> dict[str, str]:
    lines = (ROOT / "tests/k8s/cluster/versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def node(*args: str) -> None:
    subprocess.run([str(ROOT / "tests/k8s/cluster/node.sh"), *args], check=True, env={**os.environ, "K8S_NODE_MODE": "standalone"})


def kubelet_pods() -> list[dict]:
    """The kubelet's own view of its pods (read-only port on the node address)."""
    with urllib.request.urlopen(f"http://{versions()['K8S_NODE_IP']}:10255/pods", timeout=5) as resp:
        return json.load(resp)["items"] or []  # null when it runs no pod


def pod_named(name: str) -> dict | None:
    return next((p for p in kubelet_pods() if p["metadata"]["name"].startswith(f"{name}-")), None)


def kubectl(*args: str) -> str:
    """Run the pinned kubectl against the local cluster; fail with its stderr."""
    proc = subprocess.run([str(K / "bin/kubectl"), "--kubeconfig", str(K / "pki/admin.kubeconfig"), *args],
                          capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def require_live():
    if os.environ.get("K8S_LIVE") != "1":
        pytest.skip("live Kubernetes suite: run it with `make test-k8s-node` / `make test-k8s-cluster`")


@pytest.fixture(scope="session")
def cluster():
    """The whole local cluster (tests/k8s/cluster/cluster.sh), up for the session."""
    require_live()
    script = str(ROOT / "tests/k8s/cluster/cluster.sh")
    try:
        subprocess.run([script, "up"], check=True)
        subprocess.run([str(ROOT / "tests/k8s/cluster/import-images.sh"), "blueprint/python:3.13-trixie"], check=True)
        yield
    finally:
        subprocess.run([script, "down"], check=True)


@pytest.fixture
def namespace(cluster, request):
    """A namespace per test, deleted afterwards."""
    name = "t-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="session")
def standalone_node():
    require_live()
    node("up")
    subprocess.run([str(ROOT / "tests/k8s/cluster/import-images.sh"), TEST_IMAGE], check=True)
    try:
        yield
    finally:
        for f in MANIFESTS.glob("test-*.yaml"):
            f.unlink()
        node("down")


@pytest.fixture
def static_pod(standalone_node):
    """Write a static pod manifest (the kubelet watches the directory); remove it afterwards."""
    written = []

    def make(name: str, command: str, host_network: bool = False, memory_limit: str = "64Mi") -> dict:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "hostNetwork": host_network,
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": f"docker.io/{TEST_IMAGE}",
                    "imagePullPolicy": "Never",
                    "command": ["bash", "-c", command],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                  "limits": {"cpu": "200m", "memory": memory_limit}},
                }],
            },
        }
        path = MANIFESTS / f"test-{name}.yaml"
        path.write_text(yaml.safe_dump(pod))
        written.append(path)
        return pod

    yield make
    for path in written:
        path.unlink(missing_ok=True)
