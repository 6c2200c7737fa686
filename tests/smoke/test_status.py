"""Generic (any project): deploykit's /status through the proxy sees the database, the broker, a worker for
every queue, and beat's tick, which deploykit itself schedules (no project code involved)."""

from __future__ import annotations

from smokelib import QUEUES, poll, served_queues

TIMEOUT = 90


def test_beat_periodic_task_ran_within_its_interval(http, target):
    # /status reads the last run of beat's periodic tick task (executed by a worker).
    def beat():
        return http.get(target.url("/status"), timeout=15).json()["beat"]

    body = poll(beat, lambda b: b.get("ok") and b.get("last_run"), TIMEOUT, interval=2, what="beat's tick")
    assert body["age_seconds"] <= 60, body


def test_status_sees_database_broker_and_workers(http, target):
    body = poll(lambda: http.get(target.url("/status"), timeout=15).json(), lambda b: b["ok"], TIMEOUT,
                interval=2, what="/status ok")
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert served_queues(body["workers"]) >= QUEUES, body["workers"]
