"""Compose-only: `--scale worker-default=3` gives three registered default workers that share a burst of tasks;
then stopping them is a warm shutdown -- SIGTERM reaches each Celery main process through tini, the
running task finishes (no redelivery, no SIGKILL after the grace period) and the workers exit 0."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from smokelib import poll
from test_flower import flower_workers

# disruptive: stops workers, so conftest runs these after every other test.
pytestmark = [pytest.mark.compose, pytest.mark.disruptive, pytest.mark.reference]
SCALE = 3
BURST = 24  # sleep(0.5) tasks: a few rounds of 2 processes x 3 workers
TASK_SECONDS = 6


def compose(compose_cmd, *args) -> str:
    return subprocess.run([*compose_cmd, *args], check=True, capture_output=True, text=True).stdout


def scale_workers(compose_cmd, n: int, wait: bool = True) -> None:
    waiting = ["--wait", "--wait-timeout", "180"] if wait else []
    compose(compose_cmd, "up", "-d", *waiting, "--no-recreate", "--scale", f"worker-default={n}", "worker-default")


def default_workers(workers: dict) -> dict:
    return {name: info for name, info in workers.items() if name.startswith("default@") and info.get("stats")}


def sleep_totals(workers: dict) -> dict[str, int]:
    return {name: (info["stats"].get("total") or {}).get("jobs.tasks.sleep", 0) for name, info in workers.items()}


def start_task(http, target, name: str, args: list) -> str:
    response = http.post(target.url("/api/tasks/"), json={"task": name, "args": args}, timeout=10)
    assert response.status_code == 202, response.text
    return target.url(response.json()["url"])


@pytest.fixture(scope="module")
def three_workers(compose_cmd):
    scale_workers(compose_cmd, SCALE)
    yield
    # Back to the Compose file's default. Nothing runs after this module, so do not wait for health.
    scale_workers(compose_cmd, 1, wait=False)


def test_three_default_workers_register_and_share_a_burst(three_workers, http, target, flower_auth):
    # Flower also remembers workers that are gone; the live ones are those that answer `stats` now.
    workers = poll(lambda: default_workers(flower_workers(http, target, flower_auth)),
                   lambda w: len(w) >= SCALE, 120, interval=2, what=f"{SCALE} default workers in Flower")
    before = sleep_totals(workers)

    urls = [start_task(http, target, "sleep", [0.5]) for _ in range(BURST)]
    for url in urls:
        poll(lambda: http.get(url, timeout=10).json(), lambda b: b["state"] == "SUCCESS", 120, what=f"task {url}")

    after = sleep_totals(default_workers(flower_workers(http, target, flower_auth)))
    ran = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    assert sum(ran.values()) >= BURST, ran
    busy = [name for name, count in ran.items() if count > 0]
    assert len(busy) >= SCALE, f"the burst was not shared by {SCALE} workers: {ran}"


def test_stopping_the_workers_lets_the_running_task_finish(three_workers, compose_cmd, http, target):
    containers = compose(compose_cmd, "ps", "-q", "worker-default").split()
    url = start_task(http, target, "sleep", [TASK_SECONDS])
    poll(lambda: http.get(url, timeout=10).json(), lambda b: b["state"] == "STARTED", 60, interval=0.2,
         what="the sleep task to start")

    started = time.monotonic()
    subprocess.run(["docker", "stop", *containers], check=True, capture_output=True, timeout=200)
    stopped_after = time.monotonic() - started
    states = [c["State"] for c in json.loads(subprocess.run(["docker", "inspect", *containers], check=True,
                                                             capture_output=True, text=True).stdout)]
    body = http.get(url, timeout=10).json()

    assert body["state"] == "SUCCESS", f"the running task did not finish during shutdown: {body}"
    assert [s["ExitCode"] for s in states] == [0] * len(states), "not a clean warm shutdown"
    # Waited for the task, yet far below the 330 s grace period (no SIGKILL fallback).
    assert stopped_after < 60, f"stop took {stopped_after:.0f} s: SIGTERM did not reach Celery"
    print(f"warm shutdown: {len(containers)} workers stopped {stopped_after:.1f} s after SIGTERM, "
          f"the running {TASK_SECONDS} s task done")
