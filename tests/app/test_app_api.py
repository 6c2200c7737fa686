"""The JSON API: happy paths (enqueue captured on commit) and every bad-input case -> 4xx, never 500."""

import io
import uuid

import pytest
from PIL import Image

from jobs.models import Report, TaskRecord, UploadedImage

pytestmark = pytest.mark.django_db


def png_bytes(size=(64, 48), color="red", fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt)
    return buffer.getvalue()


def upload(api, data: bytes, name="picture.png"):
    file = io.BytesIO(data)
    file.name = name
    return api.post("/api/images/", {"file": file})


@pytest.mark.parametrize(
    "task,args",
    [("add", [2, 3]), ("multiply", [4, -5]), ("sleep", [1]), ("sleep", [0.5]), ("noop", []), ("noop", None)],
)
def test_start_task_202(api, django_capture_on_commit_callbacks, task, args):
    body = {"task": task} if args is None else {"task": task, "args": args}
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/api/tasks/", body, content_type="application/json")
    assert response.status_code == 202, response.content
    data = response.json()
    assert data["url"] == f"/api/tasks/{data['id']}/"
    assert TaskRecord.objects.filter(id=data["id"], task=task).exists()
    assert len(callbacks) == 1  # enqueued only after the transaction commits


@pytest.mark.parametrize(
    "body,field",
    [
        ({"task": "add", "args": [1]}, "args"),
        ({"task": "add", "args": [1, 2, 3]}, "args"),
        ({"task": "add", "args": ["1", 2]}, "args"),
        ({"task": "add", "args": [1.5, 2]}, "args"),
        ({"task": "add", "args": [True, 2]}, "args"),
        ({"task": "add", "args": [2**70, 1]}, "args"),
        ({"task": "multiply", "args": None}, "args"),
        ({"task": "add", "args": "1,2"}, "args"),
        ({"task": "sleep", "args": [0]}, "args"),
        ({"task": "sleep", "args": [121]}, "args"),
        ({"task": "sleep", "args": ["5"]}, "args"),
        ({"task": "sleep", "args": []}, "args"),
        ({"task": "noop", "args": [1]}, "args"),
        ({"task": "crash", "args": []}, "task"),
        ({"task": "rm -rf", "args": []}, "task"),
        ({"task": 5}, "task"),
        ({"args": [1, 2]}, "task"),
        ({}, "task"),
    ],
)
def test_start_task_bad_input_400(api, body, field):
    response = api.post("/api/tasks/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["error"] and field in data["details"], data
    assert not TaskRecord.objects.exists()


@pytest.mark.parametrize(
    "raw,content_type,status",
    [
        ("{not json", "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ('"add"', "application/json", 400),
        ("task=add", "application/x-www-form-urlencoded", 415),
        ("", "application/json", 400),
    ],
)
def test_start_task_malformed_body(api, raw, content_type, status):
    response = api.generic("POST", "/api/tasks/", raw, content_type=content_type)
    assert response.status_code == status, response.content
    assert response.json()["error"]


def test_wrong_method_405(api):
    response = api.delete("/api/tasks/")
    assert response.status_code == 405
    assert "DELETE" in response.json()["error"]


@pytest.mark.parametrize("path", ["/api/tasks/{}/", "/api/images/{}/", "/api/reports/{}/",
                                  "/api/images/{}/download", "/api/reports/{}/download"])
@pytest.mark.parametrize("ident", [str(uuid.uuid4()), "not-a-uuid", "123"])
def test_unknown_ids_404(api, path, ident):
    response = api.get(path.format(ident))
    assert response.status_code == 404
    assert ident in response.json()["error"]


def test_unknown_api_path_is_json_404(api):
    response = api.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"].startswith("Not found")


@pytest.mark.integration
def test_task_state_pending_until_run(api, django_capture_on_commit_callbacks, redis_server):
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post("/api/tasks/", {"task": "add", "args": [1, 1]}, content_type="application/json")
    data = api.get(response.json()["url"]).json()
    assert data == {"id": response.json()["id"], "task": "add", "state": "PENDING", "result": None, "error": None}


# --- images ----------------------------------------------------------------------------------------
def test_upload_image_202(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(api, png_bytes())
    assert response.status_code == 202, response.content
    image_id = response.json()["id"]
    assert response.json()["url"] == f"/api/images/{image_id}/"
    assert len(callbacks) == 1
    data = api.get(f"/api/images/{image_id}/").json()
    assert data["status"] == "pending" and data["error"] is None
    assert data["original_url"] == f"/api/images/{image_id}/download?variant=original"
    assert data["resized_url"] is None and data["thumbnails"] == {}
    original = api.get(data["original_url"])
    assert original.status_code == 200 and b"".join(original.streaming_content) == png_bytes()
    not_ready = api.get(f"/api/images/{image_id}/download")
    assert not_ready.status_code == 409 and "pending" in not_ready.json()["error"]
    bad_variant = api.get(f"/api/images/{image_id}/download?variant=huge")
    assert bad_variant.status_code == 400 and "huge" in bad_variant.json()["error"]


def test_upload_too_large_413(api, settings):
    response = upload(api, b"\x89PNG" + b"0" * (settings.UPLOAD_MAX_BYTES + 1))
    assert response.status_code == 413
    assert str(settings.UPLOAD_MAX_BYTES) in response.json()["error"]
    assert not UploadedImage.objects.exists()


def test_upload_declared_too_large_413_before_reading(api, settings):
    response = api.generic("POST", "/api/images/", b"x", content_type="multipart/form-data; boundary=xyz",
                           CONTENT_LENGTH=str(settings.UPLOAD_MAX_BYTES * 2))
    assert response.status_code == 413


@pytest.mark.parametrize(
    "data,name,message",
    [
        (b"hello, I am text", "notes.txt", "Not an image"),
        (b"%PDF-1.4 fake", "doc.pdf", "Not an image"),
        (b"", "empty.png", "empty"),
    ],
)
def test_upload_non_image_400(api, data, name, message):
    response = upload(api, data, name)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]
    assert not UploadedImage.objects.exists()


def test_upload_unsupported_format_400(api):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PPM")
    response = upload(api, buffer.getvalue(), "x.ppm")
    assert response.status_code == 400 and "Unsupported image format PPM" in response.json()["error"]


def test_upload_missing_field_400(api):
    response = api.post("/api/images/", {"other": "x"})
    assert response.status_code == 400 and "'file'" in response.json()["error"]


def test_upload_json_instead_of_multipart_415(api):
    response = api.post("/api/images/", {"file": "x"}, content_type="application/json")
    assert response.status_code == 415


# --- reports ---------------------------------------------------------------------------------------
def test_request_report_202(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/api/reports/", {"kind": "tasks"}, content_type="application/json")
    assert response.status_code == 202
    report_id = response.json()["id"]
    assert len(callbacks) == 1
    data = api.get(f"/api/reports/{report_id}/").json()
    assert data["status"] == "pending" and data["download_url"] is None
    assert api.get(f"/api/reports/{report_id}/download").status_code == 409


@pytest.mark.parametrize("body", [{}, {"kind": "nope"}, {"kind": 3}, {"kind": None}])
def test_request_report_bad_input_400(api, body):
    response = api.post("/api/reports/", body, content_type="application/json")
    assert response.status_code == 400 and "kind" in response.json()["details"]
    assert not Report.objects.exists()


def test_report_body_must_be_object(api):
    response = api.post("/api/reports/", [1], content_type="application/json")
    assert response.status_code == 400


def test_schema(api):
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/api/tasks/", "/api/images/", "/api/reports/", "/api/tasks/{task_id}/"} <= set(schema["paths"])


def test_index_page(api):
    response = api.get("/")
    assert response.status_code == 200
    assert b"/api/images/" in response.content and b'type="file"' in response.content


@pytest.mark.parametrize("raw", ['{"task": "sleep", "args": [NaN]}', '{"task": "sleep", "args": [Infinity]}'])
def test_sleep_non_finite_400(api, raw):
    response = api.generic("POST", "/api/tasks/", raw, content_type="application/json")
    assert response.status_code == 400


def test_oversized_json_body_is_4xx(api, settings):
    body = '{"task": "noop", "pad": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    response = api.generic("POST", "/api/tasks/", body, content_type="application/json")
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("exc,status,message", [
    ("RequestDataTooBig", 413, "Request body too large: the limit is"),
    ("TooManyFieldsSent", 400, "too many fields"),
])
def test_django_request_limits_are_json_errors(settings, exc, status, message):
    """Django's own request limits (form bodies) are JSON errors of the API, not Django's HTML 400."""
    from django.core import exceptions as django_exceptions

    from jobs.api.errors import exception_handler

    response = exception_handler(getattr(django_exceptions, exc)("The number of GET/POST parameters exceeded "
                                                                 "settings.DATA_UPLOAD_MAX_NUMBER_FIELDS: too many "
                                                                 "fields."), {"request": None})
    assert response.status_code == status and message in response.data["error"], response.data
