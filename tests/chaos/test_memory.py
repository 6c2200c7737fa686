"""Sustained load with bounded worker memory: prints resident memory per worker container and per pool
process. The bounds asserted are the ones the stack ships: the containers' memory limits (no worker is
OOM-killed or restarted) and no error response to the steady traffic."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

from PIL import Image

from conftest import MIXED, Load, image_status, outcome, report, upload

SECONDS = float(os.environ.get("CHAOS_LOAD_SECONDS", "120"))
WORKERS = ("worker-default", "worker-io", "worker-images")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(stack, peaks: dict) -> None:
    """Peak resident memory of each worker container (its processes' RSS summed) and of any one process."""
    for service in WORKERS:
        for cid in stack.containers(service):
            try:
                main = stack.container_pid(service, cid)
                pids = [main, *map(int, Path(f"/proc/{main}/task/{main}/children").read_text().split())]
                sizes = [rss_mib(pid) for pid in pids]
            except (OSError, ValueError):
                continue  # a pool process replaced between two reads
            peaks[f"{service} total"] = max(peaks.get(f"{service} total", 0), sum(sizes))
            peaks[f"{service} process"] = max(peaks.get(f"{service} process", 0), max(sizes))


def test_sustained_load_keeps_worker_memory_bounded_and_answers_every_request(stack):
    limits = {s: stack.inspect(stack.containers(s)[0])["HostConfig"]["Memory"] / 2**20 for s in WORKERS}
    before = {s: stack.restarts(s) for s in WORKERS}
    start, peaks, stop = {}, {}, threading.Event()
    sample(stack, start)
    images = {"ok": 0}

    def sampler():
        while not stop.wait(3):
            sample(stack, peaks)

    def uploader():  # an image every few seconds keeps the images pool busy too
        while not stop.wait(4):
            colour = tuple(random.randrange(256) for _ in range(3))
            if image_status(stack, upload(stack, Image.new("RGB", (1600, 1200), colour), "load.png"))["status"] == "done":
                images["ok"] += 1

    helpers = [threading.Thread(target=f, daemon=True) for f in (sampler, uploader)]
    for thread in helpers:
        thread.start()
    mix = [*MIXED, ("sleep", lambda: [random.uniform(0.1, 1)])]
    with Load(stack, mix=mix, threads=3, pause=0.1) as load:
        time.sleep(SECONDS)  # the load period itself
    stop.set()
    for thread in helpers:
        thread.join(240)
    completed, lost, states = outcome(stack, load.accepted, timeout=300)
    figures = " ".join(f"{k.replace(' ', '_')}_MiB={start.get(k, 0):.0f}->{v:.0f}" for k, v in sorted(peaks.items()))
    report("sustained-load", len(load.accepted), completed, len(lost), seconds=int(SECONDS), images=images["ok"],
           refused=sum(load.refused.values()), limits_MiB=limits, peaks=figures)
    assert not load.refused and not load.tracebacks, load.refused
    assert not lost, f"{len(lost)} lost, e.g. {[states[i] for i in lost[:5]]}"
    for service in WORKERS:
        assert stack.restarts(service) == before[service], f"{service} restarted or was OOM-killed"
        assert peaks[f"{service} total"] < limits[service], (service, peaks, limits)
