"""Fast unit tests (in-process, `Task.apply()` where a task runs): error paths that the integration tests
reach only through a real worker, plus small helpers. Never the only proof of a behaviour."""

import io
import logging
import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from deploykit import celery as dk_celery
from deploykit.ops.logging import TaskContextFilter, build_logging
from deploykit.models import TaskDelivery
from jobs import tasks
from deploykit.models import BeatTick
from deploykit.tasks import beat_tick
from jobs.models import Report, SentEmail, Status, TaskRecord, UploadedImage

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    return tmp_path


def new_image(data: bytes, name="x.png") -> UploadedImage:
    image = UploadedImage(original_name=name)
    image.original.save(name, ContentFile(data), save=False)
    image.save()
    return image


def png(size=(40, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def test_image_tasks_in_process_and_idempotent():
    image = new_image(png(mode="RGBA"))
    name = tasks.resize_image.apply(args=[str(image.id)]).get()
    assert name == f"images/{image.id}/resized.jpg"
    result = tasks.make_thumbnail.apply(args=[str(image.id), 64]).get()
    thumbs = tasks.finalize_image.apply(args=[[result], str(image.id)]).get()
    assert thumbs == {"64": f"images/{image.id}/thumb-64.jpg"}
    # a second run (a redelivered message) changes nothing and adds no files
    assert tasks.resize_image.apply(args=[str(image.id)]).get() == name
    assert sorted(default_storage.listdir(f"images/{image.id}")[1]) == ["resized.jpg", "thumb-64.jpg"]


def test_image_failure_marks_failed_via_on_failure():
    image = new_image(png((400, 300))[:120], "broken.png")
    outcome = tasks.resize_image.apply(args=[str(image.id)])
    assert outcome.failed()
    image.refresh_from_db()
    assert image.status == Status.FAILED and image.error.startswith("corrupt or truncated image")


def test_finalize_failure_marks_the_image():
    image = new_image(png())
    task = tasks.finalize_image
    task.on_failure(RuntimeError("boom"), "tid", ([], str(image.id)), {}, None)
    image.refresh_from_db()
    assert image.status == Status.FAILED and image.error == "RuntimeError: boom"


def test_open_image_rejects_non_images():
    with pytest.raises(tasks.ImageRejected, match="not an image"):
        tasks.open_image(io.BytesIO(b"plain text"))


def test_storage_errors_are_retried():
    for task in (tasks.resize_image, tasks.make_thumbnail, tasks.finalize_image, tasks.generate_report):
        assert ConnectionError in task.autoretry_for and task.retry_jitter
    assert tasks.send_email.retry_backoff_max == tasks.RETRY_BACKOFF_MAX


def test_report_failure_is_recorded(monkeypatch):
    report = Report.objects.create(kind="tasks")
    monkeypatch.setattr(tasks, "REPORT_COLUMNS", {})
    outcome = tasks.generate_report.apply(args=[str(report.id)])
    assert outcome.failed()
    report.refresh_from_db()
    assert report.status == Status.FAILED and "KeyError" in report.error


def test_report_idempotent():
    TaskRecord.objects.create(task="add", args=[1, 2])
    report = Report.objects.create(kind="tasks")
    name = tasks.generate_report.apply(args=[str(report.id)]).get()
    assert tasks.generate_report.apply(args=[str(report.id)]).get() == name
    report.refresh_from_db()
    assert report.rows == 1 and default_storage.open(name).read().startswith(b"day,task,tasks\r\n")


def test_cleanup_in_process(settings):
    old = timezone.now() - timedelta(days=30)
    image = new_image(png())
    report = Report.objects.create(kind="tasks")
    report.file.save("r.csv", ContentFile(b"x"))
    UploadedImage.objects.filter(id=image.id).update(created=old)
    Report.objects.filter(id=report.id).update(created=old)
    TaskRecord.objects.create(task="noop")
    TaskRecord.objects.update(created=old)
    TaskDelivery.objects.create(key="a:0", count=1)
    TaskDelivery.objects.update(updated=old)
    SentEmail.objects.create(key="k", to="a@example.com", subject="s")
    SentEmail.objects.update(sent_at=old)
    settings.CELERY_RESULT_BACKEND = "django-db"
    removed = tasks.cleanup.apply().get()
    expected = {"images": 1, "reports": 1, "files": 2, "task_records": 1, "deliveries": 1, "emails": 1}
    assert {key: removed[key] for key in expected} == expected


def test_beat_tick_counts():
    beat_tick.apply()
    beat_tick.apply()
    assert BeatTick.objects.get(name="beat").count == 2


def test_digest_skipped_without_recipients(settings):
    settings.DIGEST_RECIPIENTS = []
    assert tasks.send_digest.apply().get().startswith("skipped")


def test_crash_task_exits(monkeypatch):
    exits = []
    monkeypatch.setattr(tasks.os, "_exit", exits.append)
    tasks.crash.run(7)
    assert exits == [7]


# --- deploykit.celery --------------------------------------------------------------------------------
def test_redelivery_counter_and_limit(settings):
    settings.DEPLOYKIT_MAX_REDELIVERIES = 2
    key = str(uuid.uuid4())
    assert [dk_celery.record_redelivery(key, 0, "t") for _ in range(3)] == [1, 2, 3]
    assert dk_celery.record_redelivery(key, 1, "t") == 1  # a retry is a new message
    with pytest.raises(dk_celery.RedeliveryLimitExceeded, match="DEPLOYKIT_MAX_REDELIVERIES=2"):
        redelivered(tasks.add, key)  # the 4th redelivery of this message
    assert redelivered(tasks.add, str(uuid.uuid4())) == 3  # first redelivery of another message: runs
    assert tasks.add.apply(args=[1, 2], task_id=key).get() == 3  # not redelivered: never counted


def redelivered(task, task_id):
    """Run `task` as a worker would for a message carrying the broker's redelivered flag."""
    task.push_request(id=task_id, retries=0, called_directly=False, delivery_info={"redelivered": True})
    try:
        return task(1, 2)
    finally:
        task.pop_request()


def test_heartbeat_step_touches_only_while_connected(tmp_path, settings):
    settings.DEPLOYKIT_HEARTBEAT_FILE = str(tmp_path / "hb")

    class Timer:
        def call_repeatedly(self, interval, fun):
            self.fun = fun
            return type("T", (), {"cancel": lambda self: None})()

    class Consumer:
        timer = Timer()
        connection = type("C", (), {"connected": False})()

    consumer = Consumer()
    step = dk_celery.HeartbeatStep(consumer)
    step.start(consumer)
    assert not (tmp_path / "hb").exists()  # not connected: no heartbeat
    consumer.connection.connected = True
    consumer.timer.fun()
    assert dk_celery.heartbeat_age(tmp_path / "hb") < 5
    step.shutdown(consumer)
    assert dk_celery.heartbeat_age(tmp_path / "hb") is None
    step.shutdown(consumer)  # idempotent


# --- deploykit.ops.logging -------------------------------------------------------------------------------
def test_json_logging_config_and_task_filter():
    config = build_logging("json", "nonsense")
    assert config["root"]["level"] == "INFO"
    assert config["handlers"]["stdout"]["formatter"] == "json"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert TaskContextFilter().filter(record) and record.task_id == ""


def test_task_id_on_log_lines_inside_a_task():
    from celery._state import _task_stack

    tasks.add.push_request(id="abc-123")
    _task_stack.push(tasks.add)
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "inside", None, None)
        TaskContextFilter().filter(record)
    finally:
        _task_stack.pop()
        tasks.add.pop_request()
    assert record.task_id == "abc-123" and record.task_name == "jobs.tasks.add"


# --- storage start-up checks (filesystem backend) ----------------------------------------------------
def test_check_storage_and_ensure_bucket_on_filesystem(media, capsys):
    call_command("check_storage")
    call_command("ensure_bucket")
    assert "storage OK" in capsys.readouterr().out


# --- deploykit.ops.beat on SQLite (the PostgreSQL lock is tested with real processes) ---------------------
def test_file_lock_single_holder(tmp_path):
    from deploykit.ops.beat import FileLock

    first, second = FileLock(tmp_path / "beat.lock"), FileLock(tmp_path / "beat.lock")
    assert first.acquire(wait=False)
    assert not second.try_acquire()
    assert second.holder().startswith("beat ") and first.alive()
    assert not second.acquire(wait=False)  # refuses, logging the holder
    first.release()
    assert second.acquire(wait=True, poll=0.01)
    second.release()


def test_file_lock_standby_then_takeover(tmp_path, caplog):
    import threading

    from deploykit.ops.beat import FileLock

    holder = FileLock(tmp_path / "beat.lock")
    assert holder.try_acquire()
    threading.Timer(0.3, holder.release).start()
    standby = FileLock(tmp_path / "beat.lock")
    with caplog.at_level(logging.WARNING, logger="deploykit.beat"):
        assert standby.acquire(wait=True, poll=0.05)
    assert "waiting as standby" in caplog.text
    standby.release()


def test_run_beat_refuses_without_wait():
    from deploykit.ops import beat

    lock = beat.lock_for_database()
    assert isinstance(lock, beat.FileLock) and lock.try_acquire()
    try:
        assert beat.run_beat(app=None, beat_args=[], wait=False) == 3
    finally:
        lock.release()


def test_watchdog_stops_the_process_when_the_lock_is_lost(monkeypatch):
    from deploykit.ops import beat

    kills, exits = [], []
    monkeypatch.setattr(beat.os, "kill", lambda pid, sig: kills.append(sig))
    monkeypatch.setattr(beat.os, "_exit", lambda code: exits.append(code))
    lost = type("Lost", (beat.BeatLock,), {"alive": lambda self: False, "description": "test"})()
    beat.watchdog(lost, interval=0.01, grace=0.01).join(timeout=5)
    assert kills == [beat.signal.SIGTERM] and exits == [1]
