"""One cached view of the deployment -- database, broker, workers per queue, backlogs, beat -- read by
/status and /metrics, so no request waits on a broadcast of its own.

Collecting costs a broker connection, an `active_queues` broadcast (up to 1 s) and a database query: at a
few requests a second that saturated a web process. Here it runs at most once per DEPLOYKIT_STATUS_MAX_AGE
seconds (default 5) per process, one collection at a time: callers that arrive while one runs wait for
it and share its answer, and a fresh snapshot is served from memory. The autoscaler's read does not wait:
it gets the last snapshot with its age while a thread takes the next.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings

from . import checks

DEFAULT_MAX_AGE = 5.0
# Set on every task message at publish (a header, no round trip): the age of the oldest waiting message.
SENT_AT_HEADER = "deploykit_sent_at"


def stamp_publish_time(headers=None, properties=None, **kwargs) -> None:
    """before_task_publish: record when the message left. A retry is a new publish, with a new time.
    Also the AMQP `timestamp` property (whole seconds, unless the publisher set one): RabbitMQ reports the
    head message's as `head_message_timestamp` (classic queues), the age ops/rabbitmq_api.py reads. Celery and
    kombu do not use the property themselves; on Redis it is one more key of the message's properties."""
    now = time.time()
    if headers is not None:
        headers[SENT_AT_HEADER] = now
    if properties is not None:
        properties.setdefault("timestamp", int(now))


def pool_of(worker: str) -> str:
    """A worker's pool: its node name before `@` (deploykit-worker names workers after their queues)."""
    return worker.split("@", 1)[0]


def collect() -> dict[str, Any]:
    """Everything /status shows, computed now (each check has its own deadline)."""
    database = checks.check_database()
    broker = checks.check_broker()
    by_worker = checks.consumers() if broker["ok"] else {}
    workers = sorted(by_worker)
    # Informational: each queue with its consumers and backlog (a queue without consumers shows it here).
    queues = checks.queue_status(by_worker, age_header=SENT_AT_HEADER) if broker["ok"] else {}
    beat = checks.beat_status() if database["ok"] else {"ok": False, "last_run": None, "error": "database down"}
    ok = database["ok"] and broker["ok"] and bool(workers) and beat["ok"]
    return {"ok": ok, "database": database, "broker": broker, "workers": workers, "queues": queues, "beat": beat}


class Collector:
    """The snapshot, refreshed when older than `max_age` by one caller at a time."""

    def __init__(self, max_age: float | None = None, source=collect):
        self._max_age = max_age
        self._source = source
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] | None = None
        self._taken = 0.0  # time.monotonic() of the snapshot

    @property
    def max_age(self) -> float:
        if self._max_age is not None:
            return self._max_age
        return float(getattr(settings, "DEPLOYKIT_STATUS_MAX_AGE", DEFAULT_MAX_AGE))

    def snapshot(self, wait: bool = True) -> tuple[dict[str, Any], float]:
        """(the snapshot, its age in seconds). `wait=False` (the autoscaler's read: KEDA gives up after 3 s)
        answers a stale snapshot at once and refreshes it in a thread; only a process's first call waits."""
        if not self._fresh():
            if wait or self._snapshot is None:
                with self._lock:  # one collection at a time; who waited here finds it fresh
                    if not self._fresh():
                        self._refresh()
            elif self._lock.acquire(blocking=False):  # else a refresh is running already
                threading.Thread(target=self._refresh, kwargs={"release": True}, daemon=True).start()
        return self._snapshot, round(time.monotonic() - self._taken, 1)

    def _refresh(self, release: bool = False) -> None:
        try:
            self._snapshot = self._source()
            self._taken = time.monotonic()
        finally:
            if release:
                self._lock.release()

    def _fresh(self) -> bool:
        return self._snapshot is not None and time.monotonic() - self._taken < self.max_age


shared = Collector()
