"""Compose-only: stopping a worker is a warm shutdown -- SIGTERM reaches the Celery main process through
tini, the running task finishes (no redelivery, no SIGKILL after the grace period), the worker exits 0."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from smokelib import poll

pytestmark = pytest.mark.compose
TASK_SECONDS = 6


def compose(compose_cmd, *args) -> str:
    return subprocess.run([*compose_cmd, *args], check=True, capture_output=True, text=True).stdout


def test_stopping_a_worker_lets_its_running_task_finish(compose_cmd, http, target):
    # One default-queue worker, so the task is certainly running in the container we stop.
    compose(compose_cmd, "up", "-d", "--wait", "--wait-timeout", "180", "--no-recreate", "--scale", "worker=1", "worker")
    (container,) = compose(compose_cmd, "ps", "-q", "worker").split()

    response = http.post(target.url("/api/tasks/"), json={"task": "sleep", "args": [TASK_SECONDS]}, timeout=10)
    assert response.status_code == 202, response.text
    url = target.url(response.json()["url"])
    poll(lambda: http.get(url, timeout=10).json(), lambda b: b["state"] == "STARTED", 60, interval=0.2,
         what="the sleep task to start")

    started = time.monotonic()
    try:
        subprocess.run(["docker", "stop", container], check=True, capture_output=True, timeout=120)
        stopped_after = time.monotonic() - started
        state = json.loads(subprocess.run(["docker", "inspect", container], check=True, capture_output=True,
                                          text=True).stdout)[0]["State"]
        body = http.get(url, timeout=10).json()
    finally:
        compose(compose_cmd, "up", "-d", "--wait", "--wait-timeout", "180", "worker")

    assert body["state"] == "SUCCESS", f"the running task did not finish during shutdown: {body}"
    assert state["ExitCode"] == 0, f"worker exit code {state['ExitCode']} (not a clean warm shutdown)"
    assert not state["OOMKilled"]
    # Waited for the task (not killed at once), yet far below the grace period (no SIGKILL fallback).
    assert stopped_after < 60, f"stop took {stopped_after:.0f} s: SIGTERM did not reach Celery"
    print(f"warm shutdown: worker stopped {stopped_after:.1f} s after SIGTERM with its {TASK_SECONDS} s task done")
