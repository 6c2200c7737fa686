"""Generic (any project): a task round trip on every worker pool, with deploykit's probe task.

`python -m django probe_queues Q...` runs in an app container of the target (SMOKE_EXEC, or `exec -T web`
of SMOKE_COMPOSE): it sends `deploykit.probe` to each queue and waits for the worker's answer through the
result store. A pool that is up but consumes the wrong queue, or cannot reach the broker or result store,
fails here, whatever the project's own tasks are.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from smokelib import QUEUES, exec_command, queues_in_name


@pytest.fixture(scope="module")
def probed() -> dict[str, dict]:
    prefix = exec_command()
    if not prefix:
        pytest.fail("SMOKE_EXEC (or SMOKE_COMPOSE) is required: how to run a command in an app container")
    result = subprocess.run([*prefix, "python", "-m", "django", "probe_queues", "--timeout", "90", *sorted(QUEUES)],
                            capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0, f"probe_queues exited {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}"
    return {line["queue"]: line for line in lines}


def test_every_queue_answers_the_probe(probed):
    assert set(probed) == QUEUES, probed
    assert all(line["ok"] for line in probed.values()), probed


def test_each_answer_comes_from_a_worker_of_that_queue(probed):
    # Worker names start with the queues they consume (deploykit-worker's default CELERY_WORKER_NAME).
    for queue, line in probed.items():
        assert queue in queues_in_name(line["worker"]), (queue, line)


def test_every_declared_pool_does_a_round_trip(probed):
    # SMOKE_POOL_QUEUES (Compose: {service: its CELERY_WORKER_QUEUES}): each pool answered at least one probe,
    # from a worker named after exactly its queue list (deploykit-worker's default CELERY_WORKER_NAME).
    pools = json.loads(os.environ.get("SMOKE_POOL_QUEUES") or "{}")
    if not pools:
        pytest.skip("SMOKE_POOL_QUEUES not set (the target does not say which queues each pool consumes)")
    answered = {line["worker"].split("@", 1)[0] for line in probed.values() if line.get("ok")}
    silent = {pool: queues for pool, queues in pools.items() if queues.replace(",", "-") not in answered}
    assert not silent, f"pools without a round trip: {silent}; answers from {sorted(answered)}"
