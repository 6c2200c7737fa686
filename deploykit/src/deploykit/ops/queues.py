"""No silent queues: every queue a task or beat entry is routed to has a worker pool consuming it.

Celery's default queue is `celery`: a deployment whose pools consume other names stays "healthy" while
nothing runs (PITFALLS.md). `check(app, consumed)` resolves, through Celery's own router (the one
`apply_async` and `send_task` use), the queue of every registered task and of every beat entry, and
compares them with the queues the deployment's pools consume (DEPLOYKIT_CONSUMED_QUEUES). Used by
`manage.py check_queues`, which the migrate step runs before `migrate`.

What counts as routed:
- every registered task, with its decorator options (`queue=`, `routing_key=`, `exchange=`), then
  `task_routes` (mappings, glob patterns, functions), else the default queue -- as `apply_async` routes it;
- every beat entry: the entry's options first (`queue`, `routing_key`, `exchange`), then its task's
  route (as beat's `send_task` does); the CELERY_BEAT_SCHEDULE entries, and the enabled entries stored by
  django-celery-beat's database scheduler when its table exists;
- not: tasks sent only with an explicit queue (`deploykit.probe`), and Celery's built-in `celery.*` tasks
  (chord and backend housekeeping) unless `task_routes` or their options route them somewhere.
Queues the project sends to only with `apply_async(queue=...)` are invisible to a router: the project names
them (DEPLOYKIT_EXPLICIT_QUEUES) and a pool may consume them with nothing routed there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from celery.app.task import extract_exec_options

EXPLICIT_ONLY = frozenset({"deploykit.probe"})  # always sent with queue=<a pool's queue>
ROUTING_OPTIONS = ("queue", "routing_key", "exchange")
SHOWN = 8  # senders named per queue before "and N more"


@dataclass
class Report:
    consumed: list[str]
    consumed_from: str  # where the consumed list came from, e.g. "DEPLOYKIT_CONSUMED_QUEUES=default,io"
    explicit: frozenset[str] = frozenset()  # sent to only with an explicit queue=: no route expected
    routed: dict[str, list[str]] = field(default_factory=dict)  # queue -> who routes to it, in order
    undeclared: set[str] = field(default_factory=set)  # routed queues Celery would refuse to publish to

    @property
    def problems(self) -> list[str]:
        lines = []
        for queue, senders in sorted(self.routed.items()):
            if queue not in self.consumed:
                lines.append(f"queue {queue!r} gets {_names(senders)} but no worker pool consumes it "
                             f"({self.consumed_from})")
            if queue in self.undeclared:
                lines.append(f"queue {queue!r} gets {_names(senders)} but is not declared in CELERY_TASK_QUEUES "
                             "(and CELERY_TASK_CREATE_MISSING_QUEUES is off): publishing to it fails")
        for queue in self.consumed:
            if queue not in self.routed and queue not in self.explicit:
                lines.append(f"queue {queue!r} is consumed by a worker pool ({self.consumed_from}) but no task "
                             "or beat entry is routed to it")
        return lines

    @property
    def summary(self) -> str:
        senders = sum(len(names) for names in self.routed.values())
        return (f"{senders} tasks and beat entries routed to {len(self.routed)} queues "
                f"({', '.join(sorted(self.routed))}), each consumed by a worker pool ({self.consumed_from})")


def _names(senders: list[str]) -> str:
    shown = ", ".join(senders[:SHOWN])
    return shown + (f" and {len(senders) - SHOWN} more" if len(senders) > SHOWN else "")


def queue_of(app, task_name: str, options: Mapping | None = None) -> str:
    """The queue `app` publishes `task_name` to with these call options, as apply_async/send_task route it:
    the task's own options (decorator), overridden by `options`, then Celery's router."""
    task = app.tasks.get(task_name)
    opts = {}
    if task is not None:
        opts = {k: v for k, v in extract_exec_options(task).items() if k in ROUTING_OPTIONS and v is not None}
    opts.update({k: v for k, v in (options or {}).items() if k in ROUTING_OPTIONS and v is not None})
    # Unknown queue names are created here (as Celery would with task_create_missing_queues), so that the
    # check names them instead of stopping at the first; `undeclared()` tells them apart.
    router = app.amqp.Router(queues=app.amqp.Queues(app.conf.task_queues, create_missing=True), create_missing=True)
    routed = router.route(opts, task_name, (), {}, task)
    return _destination(app, routed)


def _destination(app, routed: Mapping) -> str:
    """The queue a routed message lands in: its queue, unless a routing key (and exchange) of its own
    points at another declared queue (then that queue; else the routing key, a direct exchange's queue)."""
    queue = routed.get("queue")
    name = getattr(queue, "name", queue) or app.conf.task_default_queue
    key = routed.get("routing_key")
    if key is None or key == getattr(queue, "routing_key", key):
        return name
    exchange = routed.get("exchange")
    exchange = getattr(exchange, "name", exchange)
    for declared in app.amqp.queues.values():
        if declared.routing_key == key and (exchange is None or declared.exchange.name == exchange):
            return declared.name
    return key


def beat_entries(app) -> dict[str, tuple[str, dict]]:
    """name -> (task, options) of the beat schedule in the settings, then the database scheduler's
    enabled rows (when django-celery-beat is installed and migrated; the settings' entry wins a name)."""
    entries = {name: (entry["task"], dict(entry.get("options") or {}))
               for name, entry in (app.conf.beat_schedule or {}).items()}
    for name, entry in _stored_beat_entries().items():
        entries.setdefault(name, entry)
    return entries


def _stored_beat_entries() -> dict[str, tuple[str, dict]]:
    from django.apps import apps
    from django.db import DatabaseError, connection

    if not apps.is_installed("django_celery_beat"):
        return {}
    from django_celery_beat.models import PeriodicTask

    try:
        if PeriodicTask._meta.db_table not in connection.introspection.table_names():
            return {}  # the first migrate has not run yet
        rows = PeriodicTask.objects.filter(enabled=True).values_list("name", "task", *ROUTING_OPTIONS)
        return {name: (task, {k: v or None for k, v in zip(ROUTING_OPTIONS, options)})
                for name, task, *options in rows}
    except DatabaseError:  # the database is checked by migrate itself, right after
        return {}


def check(app, consumed: Iterable[str], consumed_from: str, beat: Mapping[str, tuple[str, dict]] | None = None,
          explicit: Iterable[str] = ()) -> Report:
    """Resolve every task's and beat entry's queue (the app's tasks must be imported: a worker's modules)."""
    report = Report(consumed=list(dict.fromkeys(consumed)), consumed_from=consumed_from, explicit=frozenset(explicit))
    declared = set(app.amqp.queues) if not app.conf.task_create_missing_queues else None
    has_route = app.amqp.Router().lookup_route
    for name, task in sorted(app.tasks.items()):
        if name in EXPLICIT_ONLY:
            continue
        builtin = name.startswith("celery.")
        if builtin and not has_route(name, (), {}, {}, task) and not extract_exec_options(task).get("queue"):
            continue
        report.routed.setdefault(queue_of(app, name), []).append(name)
    for entry, (task_name, options) in (beat_entries(app) if beat is None else beat).items():
        report.routed.setdefault(queue_of(app, task_name, options), []).append(f"beat entry {entry!r}")
    if declared is not None:
        report.undeclared = set(report.routed) - declared
    return report
