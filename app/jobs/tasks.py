"""Background tasks. Each is idempotent (safe to run twice: acks_late means a message can be redelivered)
and retries with exponential backoff + jitter only where failure is transient.

Queues (routes in settings.CELERY_TASK_ROUTES): default (demo, reports, housekeeping), io (e-mail),
images (CPU-bound Pillow work).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import smtplib
import socket
import time
import warnings
from datetime import datetime, timedelta
from datetime import time as datetime_time

from celery import chain, group, shared_task
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from deploykit.celery import BoundedRedeliveryTask
from PIL import Image, ImageOps

from .models import Execution, Report, SentEmail, Status, TaskRecord, UploadedImage

logger = logging.getLogger(__name__)

RETRY_BACKOFF_MAX = 600  # == settings.TASK_RETRY_BACKOFF_MAX (checked against the visibility timeout)
TRANSIENT_ERRORS = (smtplib.SMTPException, ConnectionError, socket.timeout, TimeoutError, OSError)


def _storage_transient_errors() -> tuple[type[BaseException], ...]:
    """Network errors of the storage backend (an object store that is briefly unreachable)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        errors += [BotoConnectionError, HTTPClientError]
    except ImportError:  # pragma: no cover - botocore is installed with django-storages[s3]
        pass
    return tuple(errors)


STORAGE_TRANSIENT_ERRORS = _storage_transient_errors()
STORAGE_RETRY = {"autoretry_for": STORAGE_TRANSIENT_ERRORS, "retry_backoff": 1, "retry_jitter": True,
                 "retry_backoff_max": RETRY_BACKOFF_MAX, "max_retries": 5}


# --- demo tasks (started through POST /api/tasks/) ---------------------------------------------------
# The API reports their state, `STARTED` included: they record it (task_track_started is off by default,
# so no other task pays a round trip for a state nothing reads).
@shared_task(track_started=True)
def add(x: int, y: int) -> int:
    return x + y


@shared_task(track_started=True)
def multiply(x: int, y: int) -> int:
    return x * y


@shared_task(track_started=True)
def sleep(seconds: float) -> float:
    """A long task on the default queue: for graceful-shutdown and kill tests."""
    time.sleep(seconds)
    return seconds


@shared_task(track_started=True)
def noop() -> None:
    return None


@shared_task
def crash(exit_code: int = 1) -> None:
    """Kills the worker process running it (not exposed in the API): demonstrates the redelivery bound.

    With acks_late + reject_on_worker_lost the message is requeued each time; after
    DEPLOYKIT_MAX_REDELIVERIES redeliveries it ends FAILED (RedeliveryLimitExceeded).
    """
    logger.warning("crash task: killing this worker process")
    os._exit(exit_code)


def _record_execution(task, seconds: float) -> float:
    run = Execution.objects.create(task_id=task.request.id or "", hostname=socket.gethostname(), pid=os.getpid())
    time.sleep(seconds)
    Execution.objects.filter(pk=run.pk).update(finished=timezone.now())
    return seconds


@shared_task(bind=True)
def side_effect(self, seconds: float = 0) -> float:
    """A task with a side effect, for fault tests: appends one Execution row per run (its task id), then
    sleeps. Not exposed in the API: the tests count runs, not results."""
    return _record_execution(self, seconds)


@shared_task(bind=True, rate_limit="20/m")
def side_effect_limited(self, seconds: float = 0) -> float:
    """side_effect behind a rate limit: a burst waits in the worker's token bucket, held but not running."""
    return _record_execution(self, seconds)


class FlakyError(Exception):
    """Raised by side_effect_flaky's first runs: a stand-in for a transient error."""


@shared_task(bind=True, autoretry_for=(FlakyError,), retry_backoff=2, retry_jitter=False,
             retry_backoff_max=RETRY_BACKOFF_MAX, max_retries=5)
def side_effect_flaky(self, failures: int = 2) -> int:
    """side_effect that fails its first `failures` runs and is retried with exponential backoff (2 s, 4 s,
    ...), as the e-mail and storage tasks are: one Execution row per run, same task id. For fault tests."""
    _record_execution(self, 0)
    if (self.request.retries or 0) < failures:
        raise FlakyError(f"run {(self.request.retries or 0) + 1}, failing {failures} times")
    return self.request.retries or 0


DEMO_TASKS = {"add": add, "multiply": multiply, "sleep": sleep, "noop": noop}


# --- e-mail ------------------------------------------------------------------------------------------
@shared_task(
    bind=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=8,
)
def send_email(self, to: list[str], subject: str, body: str, key: str | None = None) -> str:
    """Send one e-mail through Django's mail API (SMTP in deployments). Idempotent per `key`
    (default: the task id), so a redelivered message does not send it twice."""
    key = key or self.request.id or f"{subject}:{','.join(to)}"
    if SentEmail.objects.filter(key=key).exists():
        logger.info("e-mail %s already sent; skipping", key)
        return "already-sent"
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, list(to), fail_silently=False)
    SentEmail.objects.get_or_create(key=key, defaults={"to": ",".join(to), "subject": subject[:300]})
    return "sent"


@shared_task
def send_digest() -> str:
    """Periodic (beat) digest of the last day's activity, to DIGEST_RECIPIENTS."""
    recipients = list(settings.DIGEST_RECIPIENTS)
    if not recipients:
        return "skipped: DIGEST_RECIPIENTS is empty"
    since = timezone.now() - timedelta(days=1)
    lines = [
        f"Tasks started: {TaskRecord.objects.filter(created__gte=since).count()}",
        f"Images uploaded: {UploadedImage.objects.filter(created__gte=since).count()}",
        f"Images failed: {UploadedImage.objects.filter(created__gte=since, status=Status.FAILED).count()}",
        f"Reports built: {Report.objects.filter(created__gte=since, status=Status.DONE).count()}",
    ]
    day = timezone.now().date().isoformat()
    send_email.delay(recipients, f"Daily digest {day}", "\n".join(lines) + "\n", key=f"digest:{day}")
    return "queued"


# --- images: resize, then thumbnails in parallel (a chord), then finalize ----------------------------
class ImageTask(BoundedRedeliveryTask):
    """Marks the image failed whatever ends the task (bad file, time limit, redelivery limit)."""

    abstract = True

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        image_id = args[0] if args else kwargs.get("image_id")
        if isinstance(image_id, list):  # finalize_image(results, image_id)
            image_id = args[1] if len(args) > 1 else kwargs.get("image_id")
        if image_id:
            mark_image_failed(image_id, describe_error(exc))
        super().on_failure(exc, task_id, args, kwargs, einfo)


class ImageRejected(Exception):
    """The uploaded file cannot be processed (not an image, corrupt, too many pixels)."""


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ImageRejected):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def mark_image_failed(image_id, error: str) -> None:
    UploadedImage.objects.filter(id=image_id).exclude(status=Status.DONE).update(
        status=Status.FAILED, error=error[:2000], updated=timezone.now()
    )


def replace_file(name: str, content: bytes) -> str:
    """Save `content` under exactly `name` (idempotent re-runs overwrite instead of adding suffixes)."""
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(content))


def open_image(fileobj) -> Image.Image:
    """Open and fully decode an image with the pixel limit enforced; ImageRejected with a reason."""
    Image.MAX_IMAGE_PIXELS = settings.IMAGE_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fileobj)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            f"image has too many pixels (limit IMAGE_MAX_PIXELS={settings.IMAGE_MAX_PIXELS}): {exc}"
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageRejected("not an image: Pillow cannot identify the file format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"corrupt or truncated image: {exc}") from None
    return image


def image_workflow(image_id) -> chain:
    """resize -> thumbnails (group, in parallel) -> finalize: a chain whose group+task is a chord."""
    image_id = str(image_id)
    sizes = settings.IMAGE_THUMBNAIL_SIZES
    return chain(
        resize_image.si(image_id),
        group(make_thumbnail.si(image_id, size) for size in sizes),
        finalize_image.s(image_id),
    )


@shared_task(base=ImageTask, bind=True, **STORAGE_RETRY)
def resize_image(self, image_id: str) -> str:
    image = UploadedImage.objects.get(id=image_id)
    if image.status == Status.DONE:
        return image.resized.name  # idempotent: already processed
    UploadedImage.objects.filter(id=image_id).update(status=Status.PROCESSING, error="")
    with image.original.open("rb") as fileobj:
        picture = open_image(fileobj)
    width, height = picture.size
    fmt = image.format or (picture.format or "")[:10]  # uploads stored before the field existed
    picture = ImageOps.exif_transpose(picture)
    picture.thumbnail(settings.IMAGE_RESIZED_SIZE)
    if picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    name = replace_file(f"images/{image_id}/resized.jpg", buffer.getvalue())
    UploadedImage.objects.filter(id=image_id).update(resized=name, width=width, height=height, format=fmt)
    return name


@shared_task(base=ImageTask, bind=True, **STORAGE_RETRY)
def make_thumbnail(self, image_id: str, size: int) -> list:
    image = UploadedImage.objects.get(id=image_id)
    with default_storage.open(image.resized.name, "rb") as fileobj:
        picture = open_image(fileobj)
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return [str(size), replace_file(f"images/{image_id}/thumb-{size}.jpg", buffer.getvalue())]


@shared_task(base=ImageTask, bind=True, **STORAGE_RETRY)
def finalize_image(self, results: list, image_id: str) -> dict:
    thumbnails = {size: name for size, name in results}
    UploadedImage.objects.filter(id=image_id).update(
        thumbnails=thumbnails, status=Status.DONE, error="", updated=timezone.now()
    )
    return thumbnails


# --- reports -----------------------------------------------------------------------------------------
# Aggregates only (no ids, no names: an image's id is what downloads it). One GROUP BY query over the last
# REPORT_DAYS days (the indexed `created` column bounds it), at most REPORT_MAX_ROWS rows.
REPORT_DAYS = 31
REPORT_MAX_ROWS = 5000
REPORT_COLUMNS = {
    "tasks": ("day", "task", "tasks"),
    "images": ("day", "format", "status", "images", "bytes"),
}
# A cell a spreadsheet would run as a formula (CSV injection) gets a leading single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def report_since():
    """Midnight (TIME_ZONE) at the start of the first of the report's REPORT_DAYS days, today included."""
    first_day = timezone.localdate() - timedelta(days=REPORT_DAYS - 1)
    return timezone.make_aware(datetime.combine(first_day, datetime_time.min))


def report_rows(kind: str):
    """The report's rows, in the order of REPORT_COLUMNS[kind]: one GROUP BY query, REPORT_MAX_ROWS at most."""
    if kind == "tasks":
        model, groups, counts = TaskRecord, ("day", "task"), {"tasks": Count("id")}
    else:
        model, groups = UploadedImage, ("day", "format", "status")
        counts = {"images": Count("id"), "bytes": Coalesce(Sum("size"), 0)}
    rows = model.objects.filter(created__gte=report_since()).annotate(day=TruncDate("created"))
    rows = rows.values(*groups).annotate(**counts).order_by(*groups)
    return rows.values_list(*REPORT_COLUMNS[kind])[:REPORT_MAX_ROWS]


def csv_safe(value):
    """The cell as text a spreadsheet shows as text: a formula-like start is prefixed with a single quote."""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_STARTS) else text


class ReportTask(BoundedRedeliveryTask):
    """Marks the report failed whatever ends the task."""

    abstract = True

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        report_id = args[0] if args else kwargs.get("report_id")
        Report.objects.filter(id=report_id).exclude(status=Status.DONE).update(
            status=Status.FAILED, error=describe_error(exc)[:2000], updated=timezone.now())
        super().on_failure(exc, task_id, args, kwargs, einfo)


@shared_task(base=ReportTask, bind=True, **STORAGE_RETRY)
def generate_report(self, report_id: str) -> str:
    report = Report.objects.get(id=report_id)
    if report.status == Status.DONE:
        return report.file.name
    Report.objects.filter(id=report_id).update(status=Status.PROCESSING)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REPORT_COLUMNS[report.kind])
    rows = 0
    for row in report_rows(report.kind):
        writer.writerow([csv_safe(cell) for cell in row])
        rows += 1
    name = replace_file(
        f"reports/{report_id}/{report.kind}-{timezone.now():%Y%m%d-%H%M%S}.csv",
        buffer.getvalue().encode(),
    )
    Report.objects.filter(id=report_id).update(file=name, rows=rows, status=Status.DONE, error="")
    return name


# --- housekeeping (beat) -----------------------------------------------------------------------------
@shared_task
def cleanup() -> dict:
    """Remove expired results, images, reports (with their files) and bookkeeping rows."""
    from celery import current_app
    from deploykit.models import TaskDelivery
    from deploykit.ops.storage import abort_stale_uploads

    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.CLEANUP_MAX_AGE_SECONDS)
    removed = {"images": 0, "reports": 0, "files": 0}
    for image in UploadedImage.objects.filter(created__lt=cutoff).iterator():
        names = [image.original.name, image.resized.name, *image.thumbnails.values()]
        removed["files"] += _delete_files(names)
        image.delete()
        removed["images"] += 1
    for report in Report.objects.filter(created__lt=cutoff).iterator():
        removed["files"] += _delete_files([report.file.name])
        report.delete()
        removed["reports"] += 1
    expires = timedelta(seconds=settings.CELERY_RESULT_EXPIRES)
    removed["task_records"] = TaskRecord.objects.filter(created__lt=now - expires).delete()[0]
    removed["deliveries"] = TaskDelivery.objects.filter(updated__lt=now - expires).delete()[0]
    removed["emails"] = SentEmail.objects.filter(sent_at__lt=cutoff).delete()[0]
    # Parts of multipart uploads left by crashed writers (object storage only; 0 on the filesystem).
    removed["stale_uploads"] = abort_stale_uploads()
    try:
        current_app.backend.cleanup()  # django-db results: delete expired rows (Redis expires by TTL)
    except NotImplementedError:  # pragma: no cover - backends without cleanup
        pass
    logger.info("cleanup removed %s", removed)
    return removed


def _delete_files(names) -> int:
    count = 0
    for name in filter(None, names):
        try:
            if default_storage.exists(name):
                default_storage.delete(name)
                count += 1
        except OSError as exc:  # pragma: no cover - retried at the next run
            logger.warning("cannot delete %s: %s", name, exc)
    return count
