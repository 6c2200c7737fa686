"""Compose-only: `--scale worker=3` gives three registered default workers that share a burst of tasks."""

from __future__ import annotations

import subprocess

import pytest

from smokelib import poll
from test_flower import flower_workers

pytestmark = pytest.mark.compose
SCALE = 3
BURST = 24  # sleep(0.5) tasks: a few rounds of 2 processes x 3 workers


def default_workers(workers: dict) -> dict:
    return {name: info for name, info in workers.items() if name.startswith("default-io@") and info.get("stats")}


def sleep_totals(workers: dict) -> dict[str, int]:
    return {name: (info["stats"].get("total") or {}).get("jobs.tasks.sleep", 0) for name, info in workers.items()}


@pytest.fixture
def three_workers(compose_cmd):
    def scale(n: int):
        subprocess.run([*compose_cmd, "up", "-d", "--wait", "--wait-timeout", "180", "--no-recreate",
                        "--scale", f"worker={n}", "worker"], check=True, capture_output=True, text=True)

    scale(SCALE)
    yield
    scale(1)


def test_three_default_workers_register_and_share_a_burst(three_workers, http, target, flower_auth):
    workers = poll(lambda: default_workers(flower_workers(http, target, flower_auth)),
                   lambda w: len(w) >= SCALE, 120, interval=2, what=f"{SCALE} default workers in Flower")
    # Flower keeps workers it saw before (e.g. of an earlier run of this test); keep the live ones:
    # those that answer `stats` now.
    assert len(workers) >= SCALE, sorted(workers)
    before = sleep_totals(workers)

    ids = []
    for _ in range(BURST):
        response = http.post(target.url("/api/tasks/"), json={"task": "sleep", "args": [0.5]}, timeout=10)
        assert response.status_code == 202, response.text
        ids.append(response.json()["url"])
    for url in ids:
        poll(lambda: http.get(target.url(url), timeout=10).json(), lambda b: b["state"] == "SUCCESS", 120,
             what=f"burst task {url}")

    after = sleep_totals(default_workers(flower_workers(http, target, flower_auth)))
    ran = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    assert sum(ran.values()) >= BURST, ran
    busy = [name for name, count in ran.items() if count > 0]
    assert len(busy) >= SCALE, f"the burst was not shared by {SCALE} workers: {ran}"
