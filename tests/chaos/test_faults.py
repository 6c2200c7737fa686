"""Faults against the running Compose stack (tests/chaos/conftest.py): each prints the counts of tasks
sent, completed and lost. Order matters little; each test leaves the stack healthy again."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from conftest import BROKER, outcome, redis_cli, report, send_burst
from seclib import wait_for

from polling import wait_until

BURST = int(os.environ.get("CHAOS_BURST", "300"))
# Redis: a message the worker held when the broker went away, or whose worker died, is requeued once that
# worker's lease expired (DEPLOYKIT_LEASE_TTL 30 s + a round of DEPLOYKIT_RECOVERY_INTERVAL 10 s): allow a
# few rounds beyond the time the tasks need. Kills of workers: test_delivery.py, which counts runs.
REDELIVERY_WAIT = float(os.environ.get("CHAOS_REDELIVERY_WAIT", "180"))


def unacked_task_ids(stack) -> set[str]:
    """Redis only: the task ids in kombu's `unacked` hash (delivered, not yet acknowledged)."""
    if BROKER != "redis":
        return set()
    out = redis_cli(stack, "hvals", "unacked")
    return {json.loads(line)[0]["headers"]["id"] for line in out.splitlines() if line.startswith("[")}


def test_broker_restart_during_a_burst_loses_no_accepted_task(stack):
    restarted = threading.Event()

    def restart_broker():
        stack.compose("restart", BROKER, timeout=180)
        restarted.set()

    accepted, refused, tracebacks = send_burst(stack, BURST, during=restart_broker, after=BURST // 3)
    assert restarted.wait(180), f"{BROKER} restart did not finish"
    assert not tracebacks, tracebacks[0]
    completed, lost, states = outcome(stack, accepted, timeout=REDELIVERY_WAIT)
    report(f"{BROKER}-restart", len(accepted), completed, len(lost), refused=sum(refused.values()),
           refused_as=dict(refused))
    stranded = set(lost) & unacked_task_ids(stack)
    assert not lost, (f"{len(lost)} accepted tasks never completed, e.g. {[states[i] for i in lost[:5]]}; "
                      f"{len(stranded)} of them still in Redis' unacked hash")
    # Workers kept consuming after the restart (the heartbeat/consumption check): a fresh task runs.
    fresh = stack.submit("add", [20, 22]).json()["id"]
    assert stack.wait_all([fresh], timeout=120)[fresh] == "SUCCESS"


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


def test_broker_stopped_readiness_stays_up_and_status_and_api_answer_fast_and_clean(stack):
    """Readiness checks only what serving needs (not the broker); /status and the API say which service
    is down in a sentence, without internals. Durations are printed (the 503s of the API are bounded by
    Celery's publish and result-store retries)."""
    stack.compose("stop", BROKER, timeout=120)
    try:
        timings = {}
        for name, call in (("readyz", lambda: stack.get("/readyz")), ("post", lambda: stack.submit("add", [1, 1]))):
            started = time.monotonic()
            response = call()
            timings[name] = (response.status_code, round(time.monotonic() - started, 1))
            assert "Traceback" not in response.text and "Error 111" not in response.text, response.text[:2000]
        # /status (read inside: the front door refuses it) serves a snapshot at most DEPLOYKIT_STATUS_MAX_AGE
        # (5 s) old: the outage shows within that plus one collection.
        started = time.monotonic()
        code, body = wait_until(stack.status, 30, "/status to report the broker down", interval=1,
                                done=lambda answer: answer[0] == 503)
        timings["status"] = (code, round(time.monotonic() - started, 1))
        assert body["broker"]["error"].endswith("is unavailable (details in the web process log)"), body
        assert "Traceback" not in json.dumps(body) and "Error 111" not in json.dumps(body), body
        print(f"\nCHAOS {BROKER}-stopped: (status, seconds) {timings}")
        assert timings["readyz"][0] == 200 and timings["status"][0] == 503, timings
        assert timings["post"][0] == 503, timings
    finally:
        stack.compose("start", BROKER, timeout=120)
    stack.wait_healthy(BROKER)
    stack.wait_healthy("worker-default")
    fresh = stack.submit("add", [2, 3])
    assert fresh.status_code == 202, f"{fresh.status_code} {fresh.text[:500]}"
    assert stack.wait_all([fresh.json()["id"]], timeout=120)[fresh.json()["id"]] == "SUCCESS"
