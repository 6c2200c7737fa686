"""RabbitMQ variant only (CHAOS_BROKER=rabbitmq): the stack runs quorum queues (docs/reliability.md#rabbitmq-quorum-queues),
workers use per-consumer QoS, and delayed work (countdowns, retries with backoff) waits in the broker's
celery_delayed_* queues and still runs once when due. Class: no crash (duplicated must be 0)."""

from __future__ import annotations

import time

import pytest
from conftest import BROKER, count_runs, report_runs, runs, send_side_effects
from seclib import wait_for

pytestmark = pytest.mark.skipif(BROKER != "rabbitmq", reason="quorum queues: RabbitMQ variant only")


def queues(stack, *columns: str) -> dict[str, list[str]]:
    out = stack.exec("rabbitmq", "rabbitmqctl", "-q", "list_queues", "--no-table-headers", "name", *columns)
    return {fields[0]: fields[1:] for line in out.splitlines() if (fields := line.split())}


def test_task_queues_are_quorum_queues_and_workers_use_per_consumer_qos(stack):
    types = {name: row[0] for name, row in queues(stack, "type").items()}
    print(f"\nCHAOS rabbitmq-queue-types: { {n: types.get(n) for n in ('default', 'io', 'images')} }")
    assert {name: types.get(name) for name in ("default", "io", "images")} == dict.fromkeys(("default", "io", "images"), "quorum"), types
    # Native delayed delivery's 28 levels (celery_delayed_0..27), declared by the workers, quorum too.
    assert {types.get(f"celery_delayed_{level}") for level in range(28)} == {"quorum"}, types
    # compose/rabbitmq.yaml caps the quorum queues' in-memory write-ahead log (512 MiB by default) at 64 MiB.
    wal = stack.exec("rabbitmq", "rabbitmqctl", "-q", "eval", "application:get_env(ra, wal_max_size_bytes).").strip()
    assert wal == "{ok,67108864}", wal
    for service in ("worker-default", "worker-io", "worker-images"):
        assert "Global QoS is disabled" in stack.logs(service), service  # Celery saw the quorum queues


def test_countdowns_and_a_retry_with_backoff_run_once_on_quorum_queues(stack):
    """Three 20 s countdowns and a task that fails twice and is retried with backoff (2 s, 4 s): each
    countdown runs once, the retried task three times under one id and succeeds. A 600 s countdown (the
    app's longest retry backoff) is seen waiting in the broker (celery_delayed_9: 512 s <= 600 s < 1024 s),
    not in a worker."""
    (long_delayed,) = send_side_effects(stack, 1, countdown=600)
    sent = send_side_effects(stack, 3, countdown=20)
    (flaky,) = send_side_effects(stack, 1, seconds=2, task="side_effect_flaky")  # arg: failures=2
    started = time.monotonic()

    def waiting_in_broker():  # queue statistics are refreshed every few seconds: poll
        rows = queues(stack, "messages")
        return int(rows.get("celery_delayed_9", ["0"])[0]) >= 1 and rows

    rows = wait_for(waiting_in_broker, 15, "the 600 s countdown in celery_delayed_9", interval=1)
    counts = count_runs(stack, sent, timeout=120)
    flaky_runs = wait_for(lambda: (row := runs(stack).get(flaky)) and row[1] == 3 and row, 120,
                          "three runs of the retried task", interval=1)
    state = wait_for(lambda: (s := stack.psql(f"SELECT status FROM django_celery_results_taskresult WHERE task_id = '{flaky}'"))
                     in ("SUCCESS", "FAILURE") and s, 60, "the retried task's stored state", interval=1)
    report_runs("rabbitmq-countdown-and-retry", counts, retried_runs=flaky_runs[0], retried_state=state,
                seconds=round(time.monotonic() - started),
                delayed_levels={k: v[0] for k, v in rows.items() if k.startswith("celery_delayed_") and v[0] != "0"})
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    assert flaky_runs[:2] == (3, 3) and state == "SUCCESS", (flaky_runs, state)
    assert long_delayed not in runs(stack)  # still waiting: due in 600 s
