"""A prefork worker keeps its database connection across tasks that succeeded.

Celery's Django fixup closes every database connection before and after every task: Django's
`close_if_unusable_or_obsolete` cannot see a connection left broken by a time limit that interrupted
a query (celery/celery#9824). On PostgreSQL that is a new connection per task (TCP, SCRAM
authentication, a forked backend process): with results in PostgreSQL (the RabbitMQ variant) the
benchmark found connect and close to be the largest cost of a short task (docs/benchmarks/).

Here, in prefork pools only, the fixup's per-task close is switched off and replaced by:
- after a task that ended in SUCCESS: Django's own rules, as after a web request (CONN_MAX_AGE; with
  CONN_HEALTH_CHECKS the connection is pinged before its next use and replaced when it is gone);
- after any other outcome (failure, retry, a soft time limit, a revoke): every connection is closed,
  exactly as Celery does, since that is where a query may have been interrupted.
Thread pools keep Celery's behaviour: Django's connections are per thread, and keeping one per
thread would multiply an io pool's connections by its concurrency. A hard time limit kills the
whole child process, and its connection with it.
"""
from __future__ import annotations

from functools import partial

from celery import signals, states

# Celery's fixup closes after this many tasks even when reuse is on; larger than any child's life.
NEVER = 2**62


def install(app) -> None:
    def take_over(sender=None, **_):
        for fixup in getattr(app, "_fixups", None) or ():
            worker_fixup = getattr(fixup, "_worker_fixup", None)
            if worker_fixup is not None and worker_fixup._is_prefork():
                worker_fixup.db_reuse_max = NEVER
                signals.task_postrun.connect(partial(after_task, worker_fixup), weak=False,
                                             dispatch_uid="deploykit.dbconn")

    # Connected after the fixup's own worker_init handler (the app object exists first), so the
    # worker fixup is in place when this runs.
    signals.worker_init.connect(take_over, weak=False)


def after_task(worker_fixup, state=None, **_) -> None:
    from django.db import close_old_connections

    if state == states.SUCCESS:
        close_old_connections()
    else:  # the fixup's own close, as Celery runs it after every task (errors handled its way)
        worker_fixup._close_database()
