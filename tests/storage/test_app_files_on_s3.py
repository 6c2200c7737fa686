"""The app's own file code (image resize, reports, the periodic cleanup) running on the real S3 server.

The tasks run in this process (their bodies, no broker): what is under test is that they read and write
through the storage API. The Compose/Ansible suites prove the same with real workers on other hosts.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

pytestmark = pytest.mark.usefixtures("default_bucket")


def keys(s3_client, bucket: str, prefix: str) -> set[str]:
    return {item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", ())}


def png_bytes(size=(640, 480)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def uploaded_image(name: str = "photo.png"):
    from jobs.models import UploadedImage

    image = UploadedImage(original_name=name)
    image.original.save(name, ContentFile(png_bytes()), save=False)
    image.save()
    return image


def test_upload_resize_and_thumbnails_are_objects_in_the_bucket(default_bucket, s3_client):
    from PIL import Image

    from jobs.models import Status, UploadedImage
    from jobs.tasks import finalize_image, make_thumbnail, resize_image

    image = uploaded_image()
    resized = resize_image(str(image.id))
    results = [make_thumbnail(str(image.id), size) for size in (64, 128)]
    finalize_image(results, str(image.id))

    image = UploadedImage.objects.get(id=image.id)
    assert image.status == Status.DONE
    assert (image.width, image.height) == (640, 480)
    stored = keys(s3_client, default_bucket, f"images/{image.id}/")
    assert {image.original.name, resized, *image.thumbnails.values()} <= stored
    body = s3_client.get_object(Bucket=default_bucket, Key=resized)
    assert body["ContentType"] == "image/jpeg"
    assert Image.open(io.BytesIO(body["Body"].read())).format == "JPEG"


def test_report_is_written_to_the_bucket_as_a_csv_attachment(default_bucket, s3_client):
    from jobs.models import Report, Status
    from jobs.tasks import generate_report

    report = Report.objects.create(kind="images")
    name = generate_report(str(report.id))
    report.refresh_from_db()
    assert report.status == Status.DONE and report.file.name == name
    head = s3_client.head_object(Bucket=default_bucket, Key=name)
    assert head["ContentType"] == "text/csv"
    assert head["ContentDisposition"].startswith("attachment;")
    first_line = s3_client.get_object(Bucket=default_bucket, Key=name)["Body"].read().splitlines()[0]
    assert first_line == b"day,format,status,images,bytes"  # aggregates only: no ids, no names


def test_periodic_cleanup_removes_expired_files_from_the_bucket_and_keeps_fresh_ones(default_bucket, s3_client):
    from django.conf import settings

    from jobs.models import Report, UploadedImage
    from jobs.tasks import cleanup, generate_report, resize_image

    old_image, fresh_image = uploaded_image("old.png"), uploaded_image("fresh.png")
    resize_image(str(old_image.id))
    old_report = Report.objects.create(kind="tasks")
    generate_report(str(old_report.id))
    expired = timezone.now() - timedelta(seconds=settings.CLEANUP_MAX_AGE_SECONDS + 60)
    UploadedImage.objects.filter(id=old_image.id).update(created=expired)
    Report.objects.filter(id=old_report.id).update(created=expired)
    assert len(keys(s3_client, default_bucket, f"images/{old_image.id}/")) == 2  # original + resized
    assert keys(s3_client, default_bucket, f"reports/{old_report.id}/")

    removed = cleanup()

    assert removed["images"] >= 1 and removed["reports"] >= 1 and removed["files"] >= 3
    assert removed["stale_uploads"] == 0  # the task also aborts day-old multipart uploads (none here)
    assert keys(s3_client, default_bucket, f"images/{old_image.id}/") == set()
    assert keys(s3_client, default_bucket, f"reports/{old_report.id}/") == set()
    assert not UploadedImage.objects.filter(id=old_image.id).exists()
    assert keys(s3_client, default_bucket, f"images/{fresh_image.id}/") == {fresh_image.original.name}
    assert UploadedImage.objects.filter(id=fresh_image.id).exists()


def test_stale_multipart_uploads_are_aborted(default_bucket, s3_client):
    from deploykit.ops.storage import abort_stale_uploads

    upload = s3_client.create_multipart_upload(Bucket=default_bucket, Key="uploads/crashed-writer.bin")
    s3_client.upload_part(Bucket=default_bucket, Key="uploads/crashed-writer.bin", UploadId=upload["UploadId"],
                          PartNumber=1, Body=b"x" * 1024)
    assert abort_stale_uploads(older_than=timedelta(days=1)) == 0  # a young upload may still be running
    assert abort_stale_uploads(older_than=timedelta(seconds=0)) >= 1
    remaining = s3_client.list_multipart_uploads(Bucket=default_bucket).get("Uploads", [])
    assert all(item["UploadId"] != upload["UploadId"] for item in remaining)


def test_download_views_redirect_to_a_presigned_url_with_safe_headers(default_bucket, s3_server):
    import urllib.request

    from django.test import Client

    from jobs.models import Report, UploadedImage
    from jobs.tasks import generate_report, resize_image

    image = uploaded_image("holiday.png")
    resize_image(str(image.id))
    UploadedImage.objects.filter(id=image.id).update(status="done")
    report = Report.objects.create(kind="tasks")
    generate_report(str(report.id))
    client = Client(HTTP_HOST="localhost")

    cases = [
        (f"/api/images/{image.id}/download", "image/jpeg", f'inline; filename="{image.id}.jpg"'),
        (f"/api/reports/{report.id}/download", "text/csv", f'attachment; filename="tasks-report-{report.id}.csv"'),
    ]
    for path, content_type, disposition in cases:
        response = client.get(path)
        assert response.status_code == 302, (path, response.status_code)
        location = response["Location"]
        assert location.startswith(f"{s3_server.public_endpoint}/{default_bucket}/")
        with urllib.request.urlopen(location, timeout=10) as download:
            assert download.status == 200
            assert download.headers["Content-Type"] == content_type
            assert download.headers["Content-Disposition"].startswith(disposition)
            assert download.read()
