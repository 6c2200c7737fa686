"""Idempotency guard for tasks: a task id's database side effect commits at most once.

Late acks (`task_acks_late` + `task_reject_on_worker_lost`) mean a worker killed after the task's
transaction committed but before the ack gets the message again: without a guard, the side effect
happens twice. The guard records the task id in `deploykit.IdempotencyKey` *inside the same transaction*
as the side effect, so both commit together or not at all; a redelivered copy finds the row and skips.

    from django.db import transaction
    from deploykit.delivery import idempotency

    @shared_task(bind=True)
    @idempotency.idempotent            # the whole body runs in one transaction with the claim
    def charge(self, order_id, cents):
        Payment.objects.create(order_id=order_id, cents=cents)
        return "charged"               # a duplicate returns this stored result instead of charging again

    @shared_task(bind=True)
    def ship(self, order_id):
        with transaction.atomic():     # or guard just one step; the key gets an optional suffix
            if not idempotency.claim(self, "label"):
                return "already done"
            Label.objects.create(order_id=order_id)
        notify_carrier(order_id, idempotency_key=self.request.id)  # outside: pass the id on

Decisions (docs/reliability.md, "Idempotency guard"):
- The key is the task id (+ the optional suffix), *not* the retry number: a retry is the same logical
  task, so a side effect that committed before `self.retry()` is not done again; one that raised rolled
  back with its claim, and the retry runs it.
- Two copies running at once (a duplicate delivered while the first still runs): the second's INSERT
  waits on the unique index until the first transaction ends, then skips (first committed) or runs (it
  rolled back). No copy skips work that did not commit.
- Rows are kept DEPLOYKIT_IDEMPOTENCY_RETENTION seconds (longer than any redelivery can arrive), then
  removed by the periodic `deploykit.purge_idempotency_keys`.
- Only the database is covered: an e-mail or an HTTP call can still happen twice; hand the task id to the
  provider as its idempotency key.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import timedelta

from celery import shared_task
from django.db import IntegrityError, connections, transaction

logger = logging.getLogger("deploykit.idempotency")  # the logger keeps its name from before the sub-packages


def task_key(task, suffix: str | None = None) -> str | None:
    """The guard key of the task's current execution: its id (+ suffix); None when called directly."""
    task_id = getattr(task.request, "id", None)
    if not task_id:
        return None
    return f"{task_id}:{suffix}" if suffix else str(task_id)


def claim(task, suffix: str | None = None, *, using: str = "default") -> bool:
    """Record this task id inside the current transaction: True when this execution owns it (do the
    work), False when a committed execution already did (skip). Must run inside transaction.atomic():
    a claim committed apart from the side effect guards nothing."""
    from ..models import IdempotencyKey

    if not connections[using].in_atomic_block:
        raise RuntimeError("idempotency.claim() must be called inside transaction.atomic(), in the same "
                           "transaction as the side effect it guards")
    key = task_key(task, suffix)
    if key is None:  # task() called directly, not through a worker: nothing can redeliver it
        return True
    try:
        with transaction.atomic(using=using):  # a savepoint: the caller's transaction survives a conflict
            IdempotencyKey.objects.using(using).create(key=key, task_name=(task.name or "")[:200])
    except IntegrityError:
        logger.warning("task %s[%s] already committed its side effect (%s); skipping this duplicate",
                       task.name, task.request.id, key)
        return False
    return True


def idempotent(func=None, *, suffix: str | None = None, using: str = "default"):
    """Decorator for a bound task (`bind=True`): runs the body in one transaction with the claim; a
    duplicate returns the first execution's (JSON) result without running the body."""
    if func is None:
        return functools.partial(idempotent, suffix=suffix, using=using)

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        from ..models import IdempotencyKey

        with transaction.atomic(using=using):
            if not claim(self, suffix, using=using):
                return (IdempotencyKey.objects.using(using).filter(key=task_key(self, suffix))
                        .values_list("result", flat=True).first())
            result = func(self, *args, **kwargs)
            key = task_key(self, suffix)
            if key is not None and _jsonable(result):
                IdempotencyKey.objects.using(using).filter(key=key).update(result=result)
            return result

    return wrapper


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@shared_task(name="deploykit.purge_idempotency_keys", ignore_result=True)
def purge_idempotency_keys() -> int:
    """Delete guard rows older than DEPLOYKIT_IDEMPOTENCY_RETENTION (scheduled hourly by beat)."""
    from django.conf import settings
    from django.utils import timezone

    from ..models import IdempotencyKey

    cutoff = timezone.now() - timedelta(seconds=settings.DEPLOYKIT_IDEMPOTENCY_RETENTION)
    removed = IdempotencyKey.objects.filter(created__lt=cutoff).delete()[0]
    logger.info("removed %d idempotency key(s) older than %s", removed, cutoff.isoformat())
    return removed
