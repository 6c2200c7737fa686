"""Scale-in spares busy workers: each worker pod keeps its `controller.kubernetes.io/pod-deletion-cost`
annotation at the number of tasks it is running, so a ReplicaSet scaling in removes idle pods first
(kedacore/keda#2900: otherwise it picks any pod, busy ones included).

The worker's main process checks every DEPLOYKIT_POD_DELETION_COST_INTERVAL seconds and patches its own pod
only when the count changed: at most one API request per interval per pod. Its token may do nothing
else: the chart grants `patch` on pods in the namespace and a ValidatingAdmissionPolicy admits only a
change of this one annotation on the requesting pod itself (docs/helm.md#scale-in-spares-busy-workers).
A failed patch is logged and retried at the next change; the worker never stops for it."""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import urllib.request
from pathlib import Path
from typing import Callable

logger = logging.getLogger("deploykit.deletion_cost")

ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class PodAnnotator:
    """PATCHes this pod's deletion cost through the API server, with the pod's own service account token."""

    def __init__(self, account: Path = ACCOUNT, pod: str | None = None, api: str | None = None):
        self.namespace = (account / "namespace").read_text().strip()
        self.pod = pod or os.environ["HOSTNAME"]  # Kubernetes sets it to the pod's name
        self.url = (api or "https://{}:{}".format(os.environ["KUBERNETES_SERVICE_HOST"],
                                                  os.environ["KUBERNETES_SERVICE_PORT"]))
        self.token_file = account / "token"  # re-read each time: the kubelet rotates it
        self.context = ssl.create_default_context(cafile=str(account / "ca.crt"))

    def set_cost(self, cost: int) -> None:
        self.patch({"metadata": {"annotations": {ANNOTATION: str(cost)}}})

    def patch(self, change: dict) -> None:
        """A JSON merge patch of this pod (raises urllib.error.HTTPError when refused)."""
        request = urllib.request.Request(
            f"{self.url}/api/v1/namespaces/{self.namespace}/pods/{self.pod}", data=json.dumps(change).encode(),
            method="PATCH",
            headers={"Content-Type": "application/merge-patch+json",
                     "Authorization": f"Bearer {self.token_file.read_text().strip()}"})
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
            response.read()


class DeletionCost:
    """A daemon thread: every `interval` seconds, the running count to the annotation when it changed."""

    def __init__(self, interval: float, running: Callable[[], int], annotator: PodAnnotator):
        self.interval = interval
        self.running = running
        self.annotator = annotator
        self.published: int | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="deletion-cost", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def tick(self) -> None:
        cost = self.running()
        if cost == self.published:
            return
        try:
            self.annotator.set_cost(cost)
        except Exception as exc:  # the API server away, a rotated token not yet readable: try again later
            logger.warning("pod deletion cost not updated to %d: %r", cost, exc)
            return
        self.published = cost

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self.tick()


def running_tasks() -> int:
    """Tasks this worker runs now (its pool executes them), as Celery's worker state counts them."""
    from celery.worker import state

    return len(state.active_requests)
