"""The worker's task request: a task killed as a side effect of a connection-loss cancel is redelivered.

With `worker_cancel_long_running_tasks_on_connection_loss` (on, see config/settings.py) a worker that
loses the broker cancels its running late-ack tasks: it kills their pool processes by pid and leaves
the messages unacknowledged, to be redelivered. But a pool process may already have finished the
cancelled task and taken the next one, which the worker has not yet seen start. That task dies with
`Terminated`, and Celery takes every `Terminated` it did not cancel for a revoke: it stores `REVOKED`
and acknowledges the message, so a task nobody revoked never runs. Seen in `make chaos`
(redis-restart: one task ended `REVOKED`, nothing left in Redis).

This request treats a `Terminated` that no revoke asked for (the task id is not in the worker's revoked
set and the request was not revoked) as a cancel: the message stays unacknowledged, so the broker
redelivers it -- on Redis through kombu's restore or deploykit.delivery.unacked's rounds. A real revoke with
`terminate=True` is unchanged.
"""

from __future__ import annotations

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import Terminated
from celery.worker.request import Request, revoked_tasks


class RedeliverUnrevokedRequest(Request):
    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, Terminated) and not self._already_revoked and self.id not in revoked_tasks:
            self._already_cancelled = True  # Celery's own flag: no REVOKED, no ack; the message comes back
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
