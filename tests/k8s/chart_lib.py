"""Helpers of the chart suite (tests/k8s/test_chart*.py): the release installed by tests/k8s/chart/chart.sh,
its pods, the API through the front door, and task bursts counted through that API."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
from contextlib import contextmanager

import requests

from conftest import K, ROOT, kubectl
from polling import wait_until

NAMESPACE = os.environ.get("NAMESPACE", "django-celery")
RELEASE = os.environ.get("RELEASE", "django-celery")
FULL = RELEASE if "django-celery" in RELEASE else f"{RELEASE}-django-celery"
# Environment of everything that shells out: the pinned kubectl first on PATH (testinfra's kubectl
# backend runs `kubectl`), the local cluster's kubeconfig.
ENV = {**os.environ, "KUBECONFIG": str(K / "pki/admin.kubeconfig"),
       "PATH": f"{K / 'bin'}:{ROOT / '.tools/bin'}:{os.environ['PATH']}"}


def get(kind: str, *args: str) -> list[dict]:
    return json.loads(kubectl("-n", NAMESPACE, "get", kind, *args, "-o", "json"))["items"]


def release_pods(component: str | None = None) -> list[dict]:
    selector = f"app.kubernetes.io/instance={RELEASE}"
    if component:
        selector += f",app.kubernetes.io/component={component}"
    return [p for p in get("pods", "-l", selector) if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def secret_value(key: str, name: str = FULL) -> str:
    return base64.b64decode(kubectl("-n", NAMESPACE, "get", "secret", name, "-o", f"jsonpath={{.data.{key}}}")).decode()


def chart_script(*args: str) -> None:
    subprocess.run([str(ROOT / "tests/k8s/chart/chart.sh"), *args], check=True, env=ENV, timeout=900)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def front_door():
    """A requests session on https://localhost:PORT, port-forwarded to the front door Service; the
    certificate is verified against the per-run CA in the Secret front-door-tls."""
    port = free_port()
    ca = K / "front-door-ca.pem"
    ca.write_text(secret_value("ca\\.crt", "front-door-tls"))
    proc = subprocess.Popen([str(K / "bin/kubectl"), "-n", NAMESPACE, "port-forward", "--address", "127.0.0.1",
                             "svc/front-door", f"{port}:443"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca)
    base = f"https://localhost:{port}"

    def ready():
        try:
            return session.get(base + "/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 60, f"the front door on {base}")
        yield base, session
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def following_logs(pods: list[dict]):
    """`kubectl logs -f` of these pods into build/k8s/log/test-POD.log while the block runs: the
    evidence of what a worker did with its tasks, kept after the pod is gone."""
    procs = []
    for pod in pods:
        name = pod["metadata"]["name"]
        out = open(K / "log" / f"test-{name}.log", "w")
        procs.append((subprocess.Popen([str(K / "bin/kubectl"), "-n", NAMESPACE, "logs", "-f", name, "--all-containers"],
                                       env=ENV, stdout=out, stderr=subprocess.STDOUT), out))
    try:
        yield
    finally:
        for proc, out in procs:
            proc.terminate()
            proc.wait(timeout=10)
            out.close()


def namespaced_objects() -> set[tuple[str, str]]:
    """(kind, name) of every object of every listable namespaced kind in the namespace."""
    kinds = kubectl("api-resources", "--namespaced=true", "--verbs=list", "-o", "name").split()
    out = kubectl("-n", NAMESPACE, "get", ",".join(kinds), "--ignore-not-found", "-o",
                  "jsonpath={range .items[*]}{.kind}/{.metadata.name}{'\\n'}{end}")
    return {tuple(line.split("/", 1)) for line in out.splitlines() if line}



def django(code: str) -> str:
    """Run Python in a Django shell in a default-pool worker pod (tasks the API does not expose)."""
    return kubectl("-n", NAMESPACE, "exec", f"deploy/{FULL}-worker-default", "--",
                   "python", "manage.py", "shell", "-c", code).strip()


def send_side_effects(count: int, seconds: float) -> list[str]:
    """Queue `count` jobs.tasks.side_effect tasks (one Execution row per run); their ids."""
    code = ("import json; from jobs import tasks; "
            f"print(json.dumps([tasks.side_effect.apply_async(({seconds!r},)).id for _ in range({count})]))")
    return json.loads(django(code).splitlines()[-1])


def count_runs(sent: list[str], timeout: float) -> dict[str, int]:
    """Wait until each sent task finished a run; sent / done / lost / duplicated (runs beyond the first)."""
    code = ("import json; from django.db.models import Count; from jobs.models import Execution; "
            "print(json.dumps({r['task_id']: [r['n'], r['done']] for r in Execution.objects.values('task_id')"
            ".annotate(n=Count('id'), done=Count('finished'))}))")
    deadline = time.monotonic() + timeout
    while True:
        seen = json.loads(django(code).splitlines()[-1])
        done = sum(1 for i in sent if seen.get(i, [0, 0])[1])
        if done == len(sent) or time.monotonic() > deadline:
            return {"sent": len(sent), "done": done, "lost": len(sent) - done,
                    "duplicated": sum(max(0, seen[i][0] - 1) for i in sent if i in seen)}
        time.sleep(2)
