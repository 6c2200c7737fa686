"""CSV reports are aggregates only: counts (and bytes) per day and task, or per day, image format and status;
no ids or names (an image's id was enough to download anyone's upload), formula-like cells neutralised, one
GROUP BY query over the last 31 days on the indexed `created` column, at most REPORT_MAX_ROWS rows."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from jobs import tasks
from jobs.models import Report, Status, TaskRecord, UploadedImage

pytestmark = pytest.mark.django_db
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def build(kind: str) -> tuple[list[list[str]], str]:
    """Run generate_report in process; the CSV's rows (header first) and its text."""
    report = Report.objects.create(kind=kind)
    name = tasks.generate_report.apply(args=[str(report.id)]).get()
    report.refresh_from_db()
    assert report.status == Status.DONE, report.error
    text = default_storage.open(name).read().decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert report.rows == len(rows) - 1
    return rows, text


def picture(fmt: str, color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, fmt)
    return buffer.getvalue()


def upload(api, data: bytes, name: str) -> str:
    file = io.BytesIO(data)
    file.name = name
    response = api.post("/api/images/", {"file": file})
    assert response.status_code == 202, response.content
    return response.json()["id"]


def age(model, days: float, **lookup) -> None:
    model.objects.filter(**lookup).update(created=timezone.now() - timedelta(days=days))


def test_tasks_report_counts_per_day_and_task_over_the_last_31_days():
    for task in ("add", "add", "add", "sleep"):
        TaskRecord.objects.create(task=task, args=[1, 2])
    yesterday = [TaskRecord.objects.create(task="add", args=[5, 6]).id for _ in range(2)]
    old = TaskRecord.objects.create(task="multiply", args=[7, 8])
    age(TaskRecord, 1, id__in=yesterday)
    age(TaskRecord, 40, id=old.id)
    today = timezone.localdate()
    rows, text = build("tasks")
    assert rows == [["day", "task", "tasks"], [str(today - timedelta(days=1)), "add", "2"],
                    [str(today), "add", "3"], [str(today), "sleep", "1"]]
    assert not UUID.search(text) and "[1, 2]" not in text  # no ids, no arguments


def test_images_report_counts_and_bytes_per_day_format_and_status_without_ids_or_names(api):
    png_a, png_b, jpeg = picture("PNG", "red"), picture("PNG", "blue"), picture("JPEG", "green")
    ids = [upload(api, png_a, "holiday-a.png"), upload(api, png_b, "secret-b.png"), upload(api, jpeg, "c.jpg")]
    stored = UploadedImage.objects.get(id=ids[0])
    assert (stored.format, stored.size) == ("PNG", len(png_a))  # filled when the upload is stored
    UploadedImage.objects.filter(id=ids[1]).update(status=Status.FAILED)
    old = upload(api, jpeg, "old.jpg")
    age(UploadedImage, 32, id=old)
    today = str(timezone.localdate())
    rows, text = build("images")
    assert rows == [["day", "format", "status", "images", "bytes"],
                    [today, "JPEG", "pending", "1", str(len(jpeg))],
                    [today, "PNG", "failed", "1", str(len(png_b))],
                    [today, "PNG", "pending", "1", str(len(png_a))]]
    assert not UUID.search(text), text
    assert "holiday" not in text and "secret" not in text and ".png" not in text


def test_images_report_sums_bytes_of_several_uploads(api):
    data = picture("PNG", "red")
    for number in range(3):
        upload(api, data, f"{number}.png")
    rows, _ = build("images")
    assert rows[1:] == [[str(timezone.localdate()), "PNG", "pending", "3", str(3 * len(data))]]


@pytest.mark.parametrize("value,cell", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+2", "'+1+2"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tcmd", "'\tcmd"), ("\rcmd", "'\rcmd"), ("add", "add"), ("a=b", "a=b"),
])
def test_formula_like_cells_are_neutralised(value, cell):
    TaskRecord.objects.create(task=value)
    rows, _ = build("tasks")
    assert rows[1][1:] == [cell, "1"]


def test_numbers_and_days_are_not_quoted():
    assert [tasks.csv_safe(v) for v in (-3, 0, timezone.localdate(), "-x", "")] == [
        "-3", "0", str(timezone.localdate()), "'-x", ""]


def test_report_is_capped_at_report_max_rows(monkeypatch):
    monkeypatch.setattr(tasks, "REPORT_MAX_ROWS", 2)
    for task in ("add", "multiply", "noop", "sleep"):
        TaskRecord.objects.create(task=task)
    rows, _ = build("tasks")
    assert [row[1] for row in rows[1:]] == ["add", "multiply"]


@pytest.mark.parametrize("kind,table", [("tasks", "jobs_taskrecord"), ("images", "jobs_uploadedimage")])
def test_one_group_by_query_bounded_by_the_created_index(kind, table):
    TaskRecord.objects.create(task="add")
    with CaptureQueriesContext(connection) as queries:
        list(tasks.report_rows(kind))
    [query] = queries.captured_queries
    sql = query["sql"]
    assert "GROUP BY" in sql and f'"{table}"."created" >=' in sql and "LIMIT 5000" in sql, sql
    indexed = [c["columns"] for c in connection.introspection.get_constraints(connection.cursor(), table).values()
               if c["index"]]
    assert ["created"] in indexed
    plan = tasks.report_rows(kind).explain()
    assert "USING INDEX" in plan and "created" in plan, plan  # SQLite's plan: a range search on the index
