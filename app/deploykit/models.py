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
