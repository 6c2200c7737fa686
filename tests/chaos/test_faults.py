"""Faults against the running Compose stack (tests/chaos/conftest.py): each prints the counts of tasks
sent, completed and lost. Order matters little; each test leaves the stack healthy again."""

from __future__ import annotations

import os
import random
import signal
import threading
from collections import Counter
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BROKER, report
from seclib import wait_for

BURST = int(os.environ.get("CHAOS_BURST", "300"))
MIXED = [("add", lambda: [random.randint(-1000, 1000), random.randint(-1000, 1000)]),
         ("multiply", lambda: [random.randint(-100, 100), random.randint(-100, 100)]),
         ("noop", lambda: [])]


def send_burst(stack, count: int, during=None, after: int = 0):
    """Send `count` mixed tasks from 6 threads; call `during()` once `after` were accepted."""
    accepted, refused, lock = [], [], threading.Lock()
    fired = threading.Event()

    def one(_):
        task, args = random.choice(MIXED)
        try:
            response = stack.submit(task, args())
        except Exception as exc:  # noqa: BLE001 - a refused request, counted
            with lock:
                refused.append(type(exc).__name__)
            return
        with lock:
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                refused.append(f"HTTP {response.status_code}")
                assert "Traceback" not in response.text, response.text[:2000]
            if during and len(accepted) >= after and not fired.is_set():
                fired.set()
                threading.Thread(target=during, daemon=True).start()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(count)))
    return accepted, refused


def test_broker_restart_during_a_burst_loses_no_accepted_task(stack):
    restarted = threading.Event()

    def restart_broker():
        stack.compose("restart", BROKER, timeout=180)
        restarted.set()

    accepted, refused = send_burst(stack, BURST, during=restart_broker, after=BURST // 3)
    assert restarted.wait(180), f"{BROKER} restart did not finish"
    states = stack.wait_all(accepted, timeout=180)
    completed = sum(s == "SUCCESS" for s in states.values())
    lost = [i for i, s in states.items() if s != "SUCCESS"]
    report(f"{BROKER}-restart", len(accepted), completed, len(lost), refused=len(refused),
           refused_as=dict(Counter(refused)))
    assert not lost, f"{len(lost)} accepted tasks never completed, e.g. {[states[i] for i in lost[:5]]}"
    # Workers kept consuming after the restart (the heartbeat/consumption check): a fresh task runs.
    fresh = stack.submit("add", [20, 22]).json()["id"]
    assert stack.wait_all([fresh], timeout=120)[fresh] == "SUCCESS"


def test_killing_a_pool_child_mid_task_redelivers_it(stack):
    """kill -9 of the process running a long task: acks_late + reject_on_worker_lost requeue it."""
    ids = [stack.submit("sleep", [6]).json()["id"] for _ in range(4)]
    wait_for(lambda: any(stack.state(i) == "STARTED" for i in ids), 60, "a sleep task to start", interval=0.5)
    main = stack.container_pid("worker")
    children = open(f"/proc/{main}/task/{main}/children").read().split()
    assert children, "no pool children"
    for child in children:  # every child: whatever runs right now dies
        os.kill(int(child), signal.SIGKILL)
    states = stack.wait_all(ids, timeout=180)
    completed = sum(s == "SUCCESS" for s in states.values())
    report("kill-9-pool-children", len(ids), completed, len(ids) - completed, killed=len(children))
    assert completed == len(ids), states


@pytest.mark.xfail(BROKER == "redis", strict=True,
                   reason="Redis transport: messages unacked by a dead worker come back only after "
                          "CELERY_VISIBILITY_TIMEOUT (3600 s); see docs/reliability.md")
def test_killing_the_worker_main_process_mid_task_completes_everything_soon(stack):
    ids = [stack.submit("sleep", [6]).json()["id"] for _ in range(4)]
    wait_for(lambda: any(stack.state(i) == "STARTED" for i in ids), 60, "a sleep task to start", interval=0.5)
    os.kill(stack.container_pid("worker"), signal.SIGKILL)  # the container exits; restart: unless-stopped
    states = stack.wait_all(ids, timeout=float(os.environ.get("CHAOS_REDELIVERY_WAIT", "90")))
    completed = sum(s == "SUCCESS" for s in states.values())
    report("kill-9-worker-main", len(ids), completed, len(ids) - completed)
    wait_for(lambda: stack.compose("ps", "--format", "{{.Health}}", "worker").stdout.strip() == "healthy",
             120, "the worker to be healthy again", interval=1)
    assert completed == len(ids), states


def test_postgres_stop_turns_readyz_503_naming_the_database_and_recovers(stack):
    stack.compose("stop", "postgres", timeout=120)
    try:
        seen = []

        def not_ready():
            started = time.monotonic()
            response = stack.get("/readyz")
            seen.append((response.status_code, round(time.monotonic() - started, 1), response.text[:200]))
            return [response] if response.status_code == 503 else None  # a 503 Response is falsy

        try:
            response = wait_for(not_ready, 60, "/readyz to turn 503", interval=0.5)[0]
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last responses (status, seconds, body): {seen[-5:]}") from None
        assert "database" in response.json(), response.text
        api = stack.get("/api/tasks/00000000-0000-0000-0000-000000000000/")
        assert api.status_code >= 400 and "Traceback" not in api.text and "File \"/" not in api.text, api.text[:2000]
        print(f"\nCHAOS postgres-down: /readyz {response.status_code} {response.json()}; API {api.status_code}")
    finally:
        stack.compose("start", "postgres", timeout=120)
    started = time.monotonic()
    wait_for(lambda: stack.get("/readyz").status_code == 200, 120, "/readyz to recover", interval=0.5)
    task = stack.submit("add", [1, 2])
    assert task.status_code == 202, task.text
    task_id = task.json()["id"]
    assert stack.wait_all([task_id], timeout=120)[task_id] == "SUCCESS"
    print(f"CHAOS postgres-recovered: ready again {time.monotonic() - started:.1f} s after start; a new task ran")
