import uuid

from django.db import models


class TaskRecord(models.Model):
    """One row per demo task started through the API, so unknown ids answer 404 (not PENDING)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.CharField(max_length=50)
    args = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return f"{self.task}{tuple(self.args)} [{self.id}]"


class Status(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


def original_upload_to(instance, filename):
    return f"images/{instance.id}/original/{filename}"


def report_upload_to(instance, filename):
    return f"reports/{instance.id}/{filename}"


class BackgroundJob(models.Model):
    """What every record of background work shows the API: its id, where it stands, why it failed, when."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class UploadedImage(BackgroundJob):
    original = models.FileField(upload_to=original_upload_to, max_length=300)
    original_name = models.CharField(max_length=255, blank=True)
    resized = models.FileField(upload_to=original_upload_to, max_length=300, blank=True)
    # {"64": "images/<id>/thumb-64.png", ...}: storage names of the thumbnails, filled by the workflow.
    thumbnails = models.JSONField(default=dict, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # For the aggregate report (day, format, status: count and bytes): filled when the upload is stored.
    # As Pillow names it: PNG, JPEG, ... The database default lets the previous release, which does not
    # write this column, keep inserting rows during a rolling deploy.
    format = models.CharField(max_length=10, blank=True, db_default="")
    size = models.PositiveBigIntegerField(null=True, blank=True)  # bytes of the original

    def __str__(self):
        return f"{self.original_name or self.id} ({self.status})"


class Report(BackgroundJob):
    kind = models.CharField(max_length=20)
    file = models.FileField(upload_to=report_upload_to, max_length=300, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self):
        return f"{self.kind} report ({self.status})"


class SentEmail(models.Model):
    """Idempotency record of send_email: a redelivered or retried task does not send twice."""

    key = models.CharField(max_length=200, unique=True)
    to = models.TextField()
    subject = models.CharField(max_length=300)
    sent_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return f"{self.subject} -> {self.to}"


class Execution(models.Model):
    """One row per run of jobs.tasks.side_effect, written when it starts: the fault tests count runs per
    task id, so a task that ran twice shows as duplicated = rows - distinct task ids (tests/chaos), and
    done = distinct task ids with a finished run."""

    task_id = models.CharField(max_length=64, db_index=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    started = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)  # empty: the run was killed

    def __str__(self):
        return f"{self.task_id} on {self.hostname}:{self.pid}"
