"""The scale-in comparison of test_chart.py (#22 goal 3): one burst on two pools of the test release
side by side (tests/k8s/chart/values.yaml): `busyaware` scales on its work and publishes its pod deletion
cost, `baseline` is the chart without either. A pool's pods are watched from the API server while it
scales; its runs are read from the side-effect table (one row per run: pod, start, end)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from chart_lib import FULL, NAMESPACE, django
from conftest import kubectl

POOLS = ("busyaware", "baseline")


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Pod:
    name: str
    pool: str
    created: float
    ready: float | None = None
    removed: float | None = None  # when the ReplicaSet asked it to stop (its deletion request)
    gone: float | None = None  # first poll that no longer lists it


@dataclass
class Watch:
    """Every pod of the compared pools, polled from the API server each second in a thread."""
    pods: dict[str, Pod] = field(default_factory=dict)
    most: dict[str, int] = field(default_factory=dict)  # pool -> most pods ready at once
    ignored: set[str] | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> None:
        selector = f"app.kubernetes.io/instance={FULL},app.kubernetes.io/component in (" + \
            ",".join(f"worker-{p}" for p in POOLS) + ")"
        items = json.loads(kubectl("-n", NAMESPACE, "get", "pods", "-l", selector, "-o", "json"))["items"]
        now = time.time()
        if self.ignored is None:  # pods of an earlier run still stopping are not this run's
            self.ignored = {i["metadata"]["name"] for i in items if i["metadata"].get("deletionTimestamp")}
        listed = {i["metadata"]["name"] for i in items}
        for pod in self.pods.values():
            if pod.gone is None and pod.name not in listed:
                pod.gone = now
        for item in items:
            if item["metadata"]["name"] in self.ignored:
                continue
            meta = item["metadata"]
            pod = self.pods.setdefault(meta["name"], Pod(meta["name"], meta["labels"]["app.kubernetes.io/component"][7:],
                                                         stamp(meta["creationTimestamp"])))
            ready = next((c for c in item["status"].get("conditions", []) if c["type"] == "Ready"), None)
            if pod.ready is None and ready and ready["status"] == "True":
                pod.ready = stamp(ready["lastTransitionTime"])
            if pod.removed is None and meta.get("deletionTimestamp"):
                # deletionTimestamp is the request time plus the grace period the pod was given.
                pod.removed = stamp(meta["deletionTimestamp"]) - meta.get("deletionGracePeriodSeconds", 0)
        for pool in POOLS:
            self.most[pool] = max(self.most.get(pool, 0), len([p for p in self.live(pool) if p.ready]))

    def run(self) -> None:
        while not self.stopped.wait(1):
            self.poll()

    def __enter__(self):
        self.poll()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(10)

    def of(self, pool: str) -> list[Pod]:
        return sorted((p for p in self.pods.values() if p.pool == pool), key=lambda p: p.created)

    def live(self, pool: str) -> list[Pod]:
        return [p for p in self.of(pool) if p.removed is None]


def send(pool_tasks: dict[str, tuple[int, float]]) -> dict[str, list[str]]:
    """{queue: (count, seconds)} -> {queue: ids} of jobs.tasks.side_effect sent there, in one shell."""
    code = ("import json; from jobs import tasks; print(json.dumps({q: [tasks.side_effect.apply_async((s,), queue=q).id"
            f" for _ in range(n)] for q, (n, s) in {pool_tasks!r}.items()}}))")
    return json.loads(django(code).splitlines()[-1])


def hold_on(stop: dict[str, list[str]]) -> dict[str, list[str]]:
    """The named pods of each pool stop consuming its `-hold` queue (Celery's cancel_consumer): what is sent
    there runs on the pool's other pods. {pool: pods} -> {pool: the pods that confirmed}."""
    code = f"""
import json
from deploykit.celery_app import app
answering = [n for reply in app.control.ping(timeout=3) for n in reply]
out = {{}}
for pool, pods in {stop!r}.items():
    nodes = [n for n in answering if n.startswith(pool + "-") and n.split("@", 1)[1] in pods]
    replies = app.control.cancel_consumer(pool + "-hold", destination=nodes, reply=True, timeout=5) if nodes else []
    out[pool] = sorted(n.split("@", 1)[1] for reply in replies for n in reply)
print(json.dumps(out))
"""
    return json.loads(django(code).splitlines()[-1])


@dataclass
class Run:
    task_id: str
    pod: str
    started: float
    finished: float | None


def runs(ids: list[str]) -> list[Run]:
    """Every run of these side-effect tasks (a task run twice has two rows)."""
    code = ("import json; from jobs.models import Execution; print(json.dumps([[e.task_id, e.hostname, "
            "e.started.timestamp(), e.finished and e.finished.timestamp()] for e in Execution.objects.filter("
            f"task_id__in={ids!r})]))")
    return [Run(*row) for row in json.loads(django(code).splitlines()[-1])]


def running_at(rows: list[Run], pod: str, moment: float) -> int:
    """Runs on `pod` started before `moment` and not finished then (killed runs never finish)."""
    return sum(1 for r in rows if r.pod == pod and r.started <= moment and (r.finished is None or r.finished > moment))


def figures(watch: Watch, pool: str, began: float, burst: list[str], rows: list[Run]) -> dict[str, float]:
    """What the comparison prints for one pool; `rows`: every run of the pool's tasks."""
    pods = watch.of(pool)
    new = sorted(p.ready for p in pods if p.created >= began - 1 and p.ready)
    drained = max(r.finished for r in rows if r.task_id in burst)
    removed = [p for p in pods if p.removed]
    running = {p.name: running_at(rows, p.name, p.removed) for p in removed}
    ran = Counter(r.task_id for r in rows)
    return {
        "most pods ready at once": watch.most[pool],
        "burst -> first new pod created s": round(min(p.created for p in pods if p.created >= began - 1) - began, 1),
        "burst -> first new pod ready s": round(new[0] - began, 1),
        "burst -> 3 new pods ready s": round(new[2] - began, 1),
        "pods removed": len(removed),
        # The burst's tail: the work shrinks while tasks are spread over every pod, so even the least busy
        # pod may be running one. After the drain: half the pods busy, half idle (the goal's case).
        "removed in the burst's tail, running tasks": sum(1 for p in removed if p.removed < drained and running[p.name]),
        "removed after the drain, running tasks": sum(1 for p in removed if p.removed >= drained and running[p.name]),
        "tasks running on a removed pod": sum(running.values()),
        "burst drained -> first pod removed s": round(min(p.removed for p in removed if p.removed >= drained) - drained, 1),
        "burst drained -> last removed pod gone s": round(max(p.gone for p in removed) - drained, 1),
        "tasks run twice": sum(1 for n in ran.values() if n > 1),
    }
