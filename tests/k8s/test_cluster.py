"""The local cluster (tests/k8s/cluster/cluster.sh): official control plane, kubelet + containerd,
kube-proxy and CoreDNS on this machine. Each test drives it through the API like a user would."""

from __future__ import annotations

import json

from conftest import kubectl, versions

PY_IMAGE = "blueprint/python:3.13-trixie"


def test_node_is_ready_at_the_pinned_release(cluster):
    node = json.loads(kubectl("get", "node", versions()["K8S_NODE_NAME"], "-o", "json"))
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == versions()["K8S_VERSION"]
    assert info["containerRuntimeVersion"].startswith("containerd://")


def test_a_service_answers_by_name_through_coredns_and_kube_proxy(cluster, namespace):
    # A Deployment behind a ClusterIP Service; a Job resolves the Service's name (CoreDNS) and
    # connects to its ClusterIP (kube-proxy's rules) and prints what the server sent back.
    kubectl("-n", namespace, "create", "deployment", "web", f"--image={PY_IMAGE}", "--port=8080", "--",
            "bash", "-c", "mkdir -p /srv && echo served-by-k8s > /srv/index.html && exec python3 -m http.server -d /srv 8080")
    kubectl("-n", namespace, "expose", "deployment", "web", "--port=80", "--target-port=8080")
    kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=120s")
    kubectl("-n", namespace, "create", "job", "client", f"--image={PY_IMAGE}", "--",
            "python3", "-c", "import urllib.request; print(urllib.request.urlopen('http://web/', timeout=10).read().decode())")
    kubectl("-n", namespace, "wait", "--for=condition=Complete", "job/client", "--timeout=120s")
    assert kubectl("-n", namespace, "logs", "job/client").strip() == "served-by-k8s"


def test_exec_and_logs_reach_the_kubelet(cluster, namespace):
    kubectl("-n", namespace, "run", "shell", f"--image={PY_IMAGE}", "--restart=Never", "--",
            "bash", "-c", "echo hello-logs; sleep infinity")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/shell", "--timeout=120s")
    assert kubectl("-n", namespace, "exec", "shell", "--", "cat", "/etc/debian_version").strip().startswith("13")
    assert "hello-logs" in kubectl("-n", namespace, "logs", "shell")
    ns_file = kubectl("-n", namespace, "exec", "shell", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    assert ns_file == namespace
