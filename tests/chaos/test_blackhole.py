"""A black-holed broker on the Compose stack: the broker container frozen (`docker pause`, the cgroup freezer:
every process in it stopped, where `docker kill -s STOP` would stop only PID 1 -- RabbitMQ's Erlang VM is
not PID 1 and went on answering), so its connections stay open and the kernel still accepts new ones, but nothing answers -- unlike a stopped
broker (test_faults.py), which refuses at once. Covers the crash class "broker unreachable", no worker
crashes: accepted tasks are neither lost nor refused, only delayed.

Asserts: a task POST during the black hole answers 503 within DEPLOYKIT_PUBLISH_DEADLINE (default 10 s,
docs/reliability.md#timeouts) plus a margin, and leaves no TaskRecord row; tasks accepted before it all
complete after the unpause (lost = 0); the workers consume again (heartbeat healthy, a new task runs); no
row is left PENDING. Select with `-k blackhole`."""

from __future__ import annotations

import time

from conftest import BROKER, outcome, report, run, wait_for

DEADLINE = 10.0  # DEPLOYKIT_PUBLISH_DEADLINE's default: the stack runs the shipped defaults
MARGIN = 2.0  # the proxy hop and a busy machine


def task_rows(stack) -> set[str]:
    return set(stack.psql("SELECT id FROM jobs_taskrecord").split())


def test_blackholed_broker_post_is_503_within_deadline_no_task_lost_no_row_pending(stack):
    before = [stack.submit("add", [i, i]) for i in range(20)]
    assert all(r.status_code == 202 for r in before), [r.text[:200] for r in before if r.status_code != 202]
    accepted = [r.json()["id"] for r in before]
    rows_before = task_rows(stack)
    assert set(accepted) <= rows_before

    broker = stack.containers(BROKER)[0]
    paused = run("docker", "pause", broker)
    assert paused.returncode == 0, paused.stderr
    try:
        timings = []
        for i in range(3):
            started = time.monotonic()
            refused = stack.submit("add", [100, i])
            took = time.monotonic() - started
            timings.append((refused.status_code, round(took, 2)))
            assert refused.status_code == 503, refused.text[:2000]
            assert "Nothing was queued" in refused.json()["error"], refused.text[:500]
            assert refused.headers.get("Retry-After") == "10"
            assert took < DEADLINE + MARGIN, timings
        # The refused POSTs left no row: no id the API refused can read PENDING later.
        assert task_rows(stack) == rows_before
    finally:
        assert run("docker", "unpause", broker).returncode == 0
    print(f"\nCHAOS {BROKER}-blackholed: POST (status, seconds) {timings}, deadline {DEADLINE} s")
    resumed = time.monotonic()

    # Workers recover: consuming again (heartbeat), and every task accepted before the black hole runs.
    stack.wait_healthy("worker-default", timeout=180)
    completed, lost, states = outcome(stack, accepted, timeout=180)
    fresh = stack.submit("add", [2, 3])
    assert fresh.status_code == 202, fresh.text[:500]
    fresh_id = fresh.json()["id"]
    assert stack.wait_all([fresh_id], timeout=180)[fresh_id] == "SUCCESS"
    recovered = time.monotonic() - resumed
    # A publish that timed out may still have been written to the broker's socket buffer, which the broker
    # reads once it runs again: a request answered 503 can then run once (at least once, never silently
    # zero; docs/reliability.md#timeouts). The refused tasks are add(100, i), results 100..102: counted.
    def runs_with_result(*results: int) -> int:
        """Stored results of jobs.tasks.add equal to one of `results` (the result store, either kind)."""
        code = ("import json; from django.conf import settings; from config.celery import app; "
                f"wanted = {list(results)!r}; "
                "from django_celery_results.models import TaskResult; "
                "print(sum(json.loads(r) in wanted for r in TaskResult.objects.filter(task_name='jobs.tasks.add')"
                ".values_list('result', flat=True)) if settings.CELERY_RESULT_BACKEND == 'django-db' else "
                "sum(json.loads(app.backend.client.get(k))['result'] in wanted "
                "for k in app.backend.client.scan_iter('celery-task-meta-*')))")
        return int(stack.django(code).splitlines()[-1])

    assert runs_with_result(5) >= 1, "no stored result of the fresh task: the count below would be blind"
    refused_ran = runs_with_result(100, 101, 102)
    report(f"{BROKER}-blackhole", sent=len(accepted), completed=completed, lost=len(lost),
           refused_503=len(timings), refused_but_ran=refused_ran, max_503_s=max(t for _, t in timings),
           recovered_s=round(recovered, 1))
    assert not lost, {i: states[i] for i in lost}

    # No row is left PENDING: every task the API accepted is known and finished.
    rows = task_rows(stack)
    assert rows == rows_before | {fresh_id}
    pending = {i: s for i, s in stack.wait_all(sorted(rows), timeout=60).items() if s != "SUCCESS"}
    assert not pending, pending
    wait_for(lambda: stack.get("/readyz").status_code == 200, 60, "/readyz")
