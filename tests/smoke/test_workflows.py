"""End to end through the proxy: the work really happens in Celery workers and comes back."""

from __future__ import annotations

import csv
import io

from PIL import Image

import pytest

from smokelib import png_bytes, poll

pytestmark = pytest.mark.reference
TIMEOUT = 90


def submit_and_wait(http, target, path: str, what: str, **post) -> dict:
    """POST a job (202 + its URL), then poll that URL until its status is final; return the body."""
    response = http.post(target.url(path), timeout=30, **post)
    assert response.status_code == 202, response.text
    url = target.url(response.json()["url"])
    return poll(lambda: http.get(url, timeout=10).json(), lambda b: b["status"] in ("done", "failed"),
                TIMEOUT, what=what)


def test_demo_task_result_comes_back(http, target):
    response = http.post(target.url("/api/tasks/"), json={"task": "add", "args": [2, 3]}, timeout=10)
    assert response.status_code == 202, response.text
    url = target.url(response.json()["url"])
    body = poll(lambda: http.get(url, timeout=10).json(), lambda b: b["state"] in ("SUCCESS", "FAILURE"),
                TIMEOUT, what="the add task")
    assert body["state"] == "SUCCESS", body
    assert body["result"] == 5


def test_bad_task_input_is_a_4xx_naming_the_field(http, target):
    response = http.post(target.url("/api/tasks/"), json={"task": "add", "args": [2]}, timeout=10)
    assert response.status_code == 400
    assert "args" in response.json()["error"]


def test_uploaded_image_is_resized_by_a_worker_and_downloadable(http, target):
    body = submit_and_wait(http, target, "/api/images/", "the image to be processed",
                           files={"file": ("smoke.png", png_bytes(1600, 1200), "image/png")})
    assert body["status"] == "done", body
    download = http.get(target.url(body["resized_url"]), timeout=30)
    assert download.status_code == 200
    resized = Image.open(io.BytesIO(download.content))
    assert resized.format == "JPEG"
    assert max(resized.size) < 1600 and resized.size[0] > resized.size[1]  # smaller, aspect kept
    assert body["thumbnails"], body  # the parallel thumbnail step (a chord) finished too


def test_report_is_generated_and_downloadable(http, target):
    body = submit_and_wait(http, target, "/api/reports/", "the report", json={"kind": "tasks"})
    assert body["status"] == "done", body
    download = http.get(target.url(body["download_url"]), timeout=30)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows and rows[0], "the CSV has a header row"


def test_s3_mode_downloads_are_presigned_urls_through_the_proxy_and_the_bucket_is_private(http, target):
    import os
    import urllib.parse

    import pytest

    if os.environ.get("SMOKE_STORAGE") != "s3":
        pytest.skip("filesystem storage: the web process streams the file itself")
    body = submit_and_wait(http, target, "/api/images/", "the image to be processed",
                           files={"file": ("page.html", png_bytes(200, 100), "text/html")})
    assert body["status"] == "done", body
    redirect = http.get(target.url(body["original_url"]), timeout=10, allow_redirects=False)
    assert redirect.status_code == 302
    location = urllib.parse.urlsplit(redirect.headers["Location"])
    assert location.netloc == urllib.parse.urlsplit(target.url("/")).netloc  # the proxy, not s3:9000
    assert "X-Amz-Signature=" in location.query and "X-Amz-Expires=300" in location.query
    download = http.get(redirect.headers["Location"], timeout=10)
    assert download.status_code == 200
    # An upload named .html (claimed text/html) is never served as HTML.
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    unsigned = target.url(location.path)
    assert http.get(unsigned, timeout=10).status_code == 403  # no anonymous reads
