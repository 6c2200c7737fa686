from django.db import models


class TaskDelivery(models.Model):
    """How often one task message (task id + retry number) was *redelivered* to a worker.

    Only redelivered messages (the broker's `redelivered` flag: the worker that had it died or lost
    its connection) are counted, so normal traffic costs no database write.
    """

    key = models.CharField(max_length=200, unique=True)  # "<task id>:<retries>"
    task_name = models.CharField(max_length=200, blank=True)
    count = models.PositiveIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        verbose_name_plural = "task deliveries"

    def __str__(self):
        return f"{self.task_name}[{self.key}] x{self.count}"


class IdempotencyKey(models.Model):
    """One row per task id (+ optional suffix) whose guarded side effect committed (deploykit/delivery/idempotency.py).

    Written in the same transaction as the side effect: a redelivered copy of the task finds it and skips.
    """

    key = models.CharField(max_length=255, unique=True)  # "<task id>" or "<task id>:<suffix>"
    task_name = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True)  # what @idempotent returns to a duplicate
    created = models.DateTimeField(auto_now_add=True, db_index=True)  # purge by age

    def __str__(self):
        return f"{self.task_name}[{self.key}]"


class BeatTick(models.Model):
    """Written by the periodic `deploykit.beat_tick` task: proves beat (and a worker) are working; /status
    reads it (deploykit.ops.checks.beat_status)."""

    BEAT = "beat"

    name = models.CharField(max_length=50, unique=True)
    last_run = models.DateTimeField()
    worker = models.CharField(max_length=200, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name} @ {self.last_run:%Y-%m-%d %H:%M:%S}"


def beat_last_run():
    """beat's last tick, or None: /status's default (settings.DEPLOYKIT_BEAT_LAST_RUN may name another)."""
    tick = BeatTick.objects.filter(name=BeatTick.BEAT).only("last_run").first()
    return tick.last_run if tick else None


class TaskName(models.Model):
    """A task name the release deployed last registers (deploykit/ops/task_names.py): the next deploy refuses
    to drop one while messages the running release enqueued may still carry it."""

    name = models.CharField(max_length=255, unique=True)
    recorded = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name
