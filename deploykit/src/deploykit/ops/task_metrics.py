"""Task metrics of a worker, counted in its main process and served by it for Prometheus
(DEPLOYKIT_WORKER_METRICS_PORT; 0, the default: not served).

The main process sees every task of its pool through the request object (prefork children report back to
it), so nothing here needs prometheus_client's multi-process files or a broker round trip. A task is
counted once its message is acknowledged (late ack, deploykit's default): success, failure, retry or
ignored; a message given back for redelivery (a lost worker, a cancel) is not finished. Run time is from
the pool's start to the acknowledgement; queue wait is from the publish time (the `deploykit_sent_at`
header, ops/collector.py) to the start, so it includes clock skew between hosts.

Labels: the task name (bounded by the code) and the queue, never a task id.
"""

from __future__ import annotations

import time

from billiard.einfo import ExceptionWithTraceback
from celery.exceptions import Ignore
from celery.worker import state
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from ..delivery.request import RedeliverUnrevokedRequest
from .collector import SENT_AT_HEADER

REGISTRY = CollectorRegistry(auto_describe=True)
FINISHED = Counter("deploykit_tasks_finished", "Tasks finished by this worker, by outcome (success, failure, retry, "
                   "ignored)", ["task", "outcome"], registry=REGISTRY)
REDELIVERIES = Counter("deploykit_task_redeliveries", "Redelivered task messages this worker started (their "
                       "previous worker died or lost the broker)", ["queue"], registry=REGISTRY)
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
WAIT = Histogram("deploykit_task_queue_wait_seconds", "From publish to start (enqueue-to-start)", ["task"],
                 buckets=SECONDS, registry=REGISTRY)
RUNTIME = Histogram("deploykit_task_runtime_seconds", "From start to acknowledgement", ["task"], buckets=SECONDS,
                    registry=REGISTRY)


class _WorkerLoad:
    """Tasks this worker runs now and holds waiting for a pool slot: with the broker's backlog, the whole
    work an autoscaler must see (a reserved task is in no queue)."""

    def describe(self):
        return []

    def collect(self):
        running = len(state.active_requests)
        reserved = max(0, len(state.reserved_requests) - running)  # reserved_requests includes the active ones
        gauge = GaugeMetricFamily("deploykit_worker_tasks", "Tasks held by this worker", labels=["state"])
        gauge.add_metric(["running"], running)
        gauge.add_metric(["reserved"], reserved)
        yield gauge


REGISTRY.register(_WorkerLoad())


class MeasuredRequest(RedeliverUnrevokedRequest):
    """The worker's request for every deploykit task: counts what the main process sees of each task.
    Celery generates a subclass per task that overrides on_success; it calls task_ready(successful=True)
    and then acknowledge(), which is where a success is recognised (Celery 5.7, checked at import)."""

    _outcome: str | None = None

    def on_accepted(self, pid, time_accepted):
        super().on_accepted(pid, time_accepted)
        sent = (self._request_dict or {}).get(SENT_AT_HEADER)
        if sent is not None:
            try:
                WAIT.labels(self.name).observe(max(0.0, self.time_start - float(sent)))
            except (TypeError, ValueError):
                pass
        if (self.delivery_info or {}).get("redelivered"):
            REDELIVERIES.labels((self.delivery_info or {}).get("routing_key") or "").inc()

    def on_retry(self, exc_info):
        self._outcome = "retry"
        return super().on_retry(exc_info)

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, Ignore):
            self._outcome = "ignored"
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def acknowledge(self):
        finished = not self.acknowledged and self.task.acks_late and self.time_start is not None
        super().acknowledge()
        if finished:
            outcome = "success" if self.id in state.successful_requests else (self._outcome or "failure")
            FINISHED.labels(self.name, outcome).inc()
            RUNTIME.labels(self.name).observe(max(0.0, time.time() - self.time_start))


def serve(port: int, address: str = "0.0.0.0"):
    """Serve REGISTRY on http://address:port/metrics from a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=REGISTRY)
    return server
