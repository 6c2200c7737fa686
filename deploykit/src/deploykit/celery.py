"""Celery pieces: bounded redeliveries, the worker heartbeat and lease, logging.

`install(app)` wires them into a Celery app, also one created the plain way (`Celery("x")`): it makes
BoundedRedeliveryTask the app's task base class before the app creates its tasks, so every task declared
with `@app.task` or `@shared_task` (without a `base=` of its own) gets the redelivery bound.
`deploykit.celery_app` loads the project's app (DEPLOYKIT_CELERY_APP) and calls it.
"""

from __future__ import annotations

import logging
import logging.config
import os
import time
from pathlib import Path

from celery import bootsteps, signals
from celery.contrib.django.task import DjangoTask

from .delivery import dbconn, lease, rabbitmq, results
from .ops import collector

logger = logging.getLogger(__name__)


class RedeliveryLimitExceeded(Exception):
    """A message kept coming back (its worker died each time): give up instead of looping forever."""


def record_redelivery(task_id: str, retries: int, task_name: str) -> int:
    """Increment and return the redelivery count of one task message (atomic in the database)."""
    from django.db import transaction
    from django.db.models import F

    from .models import TaskDelivery

    key = f"{task_id}:{retries}"
    with transaction.atomic():
        TaskDelivery.objects.get_or_create(key=key, defaults={"task_name": task_name[:200]})
        TaskDelivery.objects.filter(key=key).update(count=F("count") + 1)
        return TaskDelivery.objects.values_list("count", flat=True).get(key=key)


def max_redeliveries() -> int:
    from django.conf import settings

    return int(getattr(settings, "DEPLOYKIT_MAX_REDELIVERIES", 3))


class BoundedRedeliveryTask(DjangoTask):
    """Task base class: with acks_late + reject_on_worker_lost a message whose worker dies is requeued;
    this bounds how often. Past DEPLOYKIT_MAX_REDELIVERIES the task fails with RedeliveryLimitExceeded
    (stored as FAILURE, message acknowledged) instead of killing worker after worker.

    It extends Celery's DjangoTask, so `delay_on_commit()` / `apply_async_on_commit()` are available.
    """

    # A task killed by a connection-loss cancel it was not part of is redelivered, not REVOKED and acked.
    # Its subclass counts each task for the worker's Prometheus endpoint (ops/task_metrics.py).
    Request = "deploykit.ops.task_metrics:MeasuredRequest"

    def __call__(self, *args, **kwargs):
        request = self.request
        delivery_info = request.delivery_info or {}
        if request.id and not request.called_directly and delivery_info.get("redelivered"):
            count = record_redelivery(request.id, request.retries or 0, self.name)
            limit = max_redeliveries()
            logger.warning("task %s[%s] redelivered (%d of at most %d)", self.name, request.id, count, limit)
            if count > limit:
                raise RedeliveryLimitExceeded(
                    f"{self.name}[{request.id}] was redelivered {count} times (its worker died or lost "
                    f"the broker each time); giving up after DEPLOYKIT_MAX_REDELIVERIES={limit}"
                )
        return super().__call__(*args, **kwargs)


class HeartbeatStep(bootsteps.StartStopStep):
    """Consumer bootstep: touches DEPLOYKIT_HEARTBEAT_FILE every few seconds *while consuming*.

    It lives in the consumer blueprint, so it starts only once the worker is connected and consuming,
    stops when the connection is lost (the consumer restarts its steps), and the touch runs on the
    consumer's own timer: a worker whose main loop is stuck stops touching and `deploykit-worker-healthcheck`
    reports it unhealthy after DEPLOYKIT_HEARTBEAT_MAX_AGE seconds.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs):
        from django.conf import settings

        super().__init__(parent, **kwargs)
        self.path = Path(getattr(settings, "DEPLOYKIT_HEARTBEAT_FILE", "/tmp/celery-worker-heartbeat"))
        self.interval = float(getattr(settings, "DEPLOYKIT_HEARTBEAT_INTERVAL", 10))
        self.tref = None
        self.consumer = parent

    def touch(self) -> None:
        connection = getattr(self.consumer, "connection", None)
        if connection is None or not connection.connected:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{time.time():.0f}\n")
        except OSError as exc:  # pragma: no cover - disk full/read-only: the probe will notice
            logger.error("cannot write heartbeat file %s: %s", self.path, exc)

    def start(self, c):
        self.consumer = c
        self.touch()
        self.tref = c.timer.call_repeatedly(self.interval, self.touch)

    def stop(self, c):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def shutdown(self, c):
        self.stop(c)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class LeaseStep(bootsteps.StartStopStep):
    """Consumer bootstep: takes the worker process' lease (deploykit.delivery.lease) before the event loop first
    consumes, on a Redis broker. The lease is not stopped with the consumer: it lives until the process
    exits (a warm shutdown stops the consumer, then acks what the pool finishes). A second start is a
    reconnect after a lost broker, and takes a new owner id (see deploykit.delivery.lease)."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, c):
        from .delivery.redis_transport import Channel

        if isinstance(c.connection.default_channel, Channel):
            options = c.app.conf.broker_transport_options or {}
            reconnect = lease.current_owner() is not None  # this process consumed before
            held = lease.start(c.app, options.get("lease_ttl", lease.DEFAULT_TTL), c.hostname)
            if reconnect:
                held.rotate()


def _configure_logging(**kwargs):
    """Use Django's LOGGING in every Celery process instead of Celery's own set-up."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


TASK_CLASS = "deploykit.celery:BoundedRedeliveryTask"
# install_task_class() resets the app's cached `Task` class and reads `_custom_task_cls_used` (set by
# Celery.__init__, read by Celery's Django fix-up): members of the Celery series deploykit declares,
# checked at import (deploykit.versions).


class MetricsServerStep(bootsteps.StartStopStep):
    """Serves the worker's task metrics (ops/task_metrics.py) on DEPLOYKIT_WORKER_METRICS_PORT from the main
    process, for the worker's whole life (a worker-blueprint step: not restarted with the consumer)."""

    def __init__(self, worker, **kwargs):
        from django.conf import settings

        self.port = int(getattr(settings, "DEPLOYKIT_WORKER_METRICS_PORT", 0) or 0)
        self.server = None
        super().__init__(worker, **kwargs)

    def start(self, worker):
        if self.port:
            from .ops import task_metrics

            self.server = task_metrics.serve(self.port)
            logger.info("task metrics on :%d/metrics", self.port)

    def stop(self, worker):
        if self.server is not None:
            self.server.shutdown()
            self.server = None


class DeletionCostStep(bootsteps.StartStopStep):
    """Keeps the pod's deletion cost at its running task count (ops/deletion_cost.py) every
    DEPLOYKIT_POD_DELETION_COST_INTERVAL seconds (0: off, the default outside the chart's opt-in)."""

    def __init__(self, worker, **kwargs):
        from django.conf import settings

        self.interval = float(getattr(settings, "DEPLOYKIT_POD_DELETION_COST_INTERVAL", 0) or 0)
        self.publisher = None
        super().__init__(worker, **kwargs)

    def start(self, worker):
        if self.interval:
            from .ops import deletion_cost

            try:
                annotator = deletion_cost.PodAnnotator()
            except (OSError, KeyError) as exc:  # no token mounted, not in a pod: the worker still works
                logger.error("DEPLOYKIT_POD_DELETION_COST_INTERVAL is set but this is no pod with a token: %r", exc)
                return
            self.publisher = deletion_cost.DeletionCost(self.interval, deletion_cost.running_tasks, annotator)
            self.publisher.start()
            logger.info("pod deletion cost kept at the running task count, every %.0fs", self.interval)

    def stop(self, worker):
        if self.publisher is not None:
            self.publisher.stop()


def install_task_class(app) -> None:
    """Make BoundedRedeliveryTask (mixed into the project's own task class, if it set one) the base of the
    tasks `app` creates. Celery creates every `@app.task` and `@shared_task` task when the app is finalized
    (the first access to `app.tasks`, a worker's start), from `app.Task`, a cached subclass of
    `app.task_cls`: so the class must be in place before. Refused on an app already finalized: its tasks
    exist already with another base, and a worker would run them unbounded."""
    current = app.Task
    if issubclass(current, BoundedRedeliveryTask):
        return
    if app.finalized:
        raise RuntimeError(
            f"the Celery app {app.main!r} is already finalized (its tasks were created): call "
            "deploykit.celery.install(app) right after creating it, or start it as `--app deploykit.celery_app`")
    base = app.task_cls if isinstance(app.task_cls, type) else None
    if base is None and app._custom_task_cls_used:  # the project's own base class, by name
        from celery.utils.imports import symbol_by_name

        base = symbol_by_name(app.task_cls)
    if base is None or issubclass(BoundedRedeliveryTask, base):
        app.task_cls = TASK_CLASS
    else:  # keep the project's class: ours first in the MRO, so the bound runs before its __call__
        app.task_cls = type(f"Bounded{base.__name__}", (BoundedRedeliveryTask, base), {"__module__": __name__})
    del app.Task  # kombu's cached_property: the next access creates the subclass of the new task_cls


def install(app) -> None:
    """deploykit's pieces on a Celery app (idempotent): the redelivery bound on every task, the heartbeat
    and lease bootsteps, RabbitMQ queue checks, the Redis result backend, worker database connections,
    Django's LOGGING."""
    if getattr(app, "_deploykit_installed", False):
        return
    install_task_class(app)
    app._deploykit_installed = True
    app.steps["consumer"].add(HeartbeatStep)
    app.steps["consumer"].add(LeaseStep)
    app.steps["worker"].add(MetricsServerStep)
    app.steps["worker"].add(DeletionCostStep)
    rabbitmq.install(app)  # RabbitMQ: a worker facing queues of another type says how to migrate
    results.install(app)  # Redis results: a task state in one round trip
    dbconn.install(app)
    signals.setup_logging.connect(_configure_logging, weak=False)
    # The publish time in each message's headers: the collector's oldest-message age (ops/collector.py).
    signals.before_task_publish.connect(collector.stamp_publish_time, weak=False,
                                        dispatch_uid="deploykit.stamp_publish_time")


APP_VARIABLE = "DEPLOYKIT_CELERY_APP"
DEFAULT_APP = "config"


def project_app():
    """The project's Celery app, named by DEPLOYKIT_CELERY_APP as Celery's `--app` names it (default `config`),
    found with Celery's own `find_app` (a module with an `app` or `celery` attribute, its `celery`
    submodule, or `module:attribute`)."""
    from celery.app.utils import find_app

    return find_app(os.environ.get(APP_VARIABLE, "").strip() or DEFAULT_APP)


def project_app_with_tasks(command: str):
    """project_app() with the task modules a worker imports (autodiscovery, CELERY_IMPORTS), for a management
    command; a project app that cannot be loaded is a CommandError naming DEPLOYKIT_CELERY_APP."""
    from django.core.management.base import CommandError

    try:
        app = project_app()
    except (ImportError, AttributeError) as exc:
        raise CommandError(f"{command}: cannot load the Celery app ({APP_VARIABLE}): {exc}") from exc
    app.loader.import_default_modules()
    return app


def heartbeat_age(path: str | os.PathLike) -> float | None:
    """Seconds since the heartbeat file was touched (None when missing). Mirrors deploykit-worker-healthcheck."""
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
