"""Outages answer 503 + Retry-After with a readable message, never a 500 or the driver's text: a real
redis-server (broker and result store) stopped while the API publishes, a real PostgreSQL stopped under
gunicorn. A request whose publish failed leaves no row waiting "pending" forever (docs/api.md)."""

import io
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from app_services import APP, BIN, Postgres, Redis, app_env, free_port, http, port_open, switch_broker, wait_for
from PIL import Image

from jobs.models import Report, Status, TaskRecord, UploadedImage

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
INTERNALS = ("Traceback", "Error 111", "Connection refused", "127.0.0.1", "kombu", "psycopg")


@pytest.fixture
def stopped_broker(tmp_path):
    """The test process's Celery app on its own redis-server, which is stopped once a publish worked."""
    from django.conf import settings

    from config.celery import app

    server = Redis(tmp_path).start()
    saved = {"broker_url": os.environ["CELERY_BROKER_URL"], "result_backend": settings.CELERY_RESULT_BACKEND}
    switch_broker(app, broker_url=server.url, result_backend=server.url)
    try:
        yield server
    finally:
        server.stop()
        switch_broker(app, **saved)


def assert_unavailable(response, service: str):
    assert response.status_code == 503, response.content[:2000]
    assert response["Retry-After"] == "10"
    error = response.json()["error"]
    assert error.startswith(f"The {service} is temporarily unavailable"), error
    assert not any(text in error for text in INTERNALS), error


def png() -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "blue").save(buffer, "PNG")
    buffer.seek(0)
    buffer.name = "pic.png"
    return buffer


def test_broker_down_post_is_503_and_nothing_stays_pending(api, stopped_broker):
    accepted = api.post("/api/tasks/", {"task": "add", "args": [1, 2]}, content_type="application/json")
    assert accepted.status_code == 202  # the broker works: the 503s below are caused by stopping it
    stopped_broker.stop()

    refused = api.post("/api/tasks/", {"task": "add", "args": [3, 4]}, content_type="application/json")
    assert_unavailable(refused, "task broker")
    assert "Nothing was queued" in refused.json()["error"]
    assert list(TaskRecord.objects.values_list("id", flat=True)) == [uuid.UUID(accepted.json()["id"])]

    image = api.post("/api/images/", {"file": png()})
    assert_unavailable(image, "task broker")
    failed = UploadedImage.objects.get()
    assert failed.status == Status.FAILED and failed.error.startswith("broker unavailable")

    report = api.post("/api/reports/", {"kind": "tasks"}, content_type="application/json")
    assert_unavailable(report, "task broker")
    assert Report.objects.get().status == Status.FAILED

    # Reading a task's state needs the (stopped) result store: 503 as well, not 500.
    assert_unavailable(api.get(accepted.json()["url"]), "task broker/result store")


@pytest.fixture
def web_on_postgres(start_app, redis_server, tmp_path):
    """gunicorn (deploykit-web) on its own PostgreSQL, migrated by deploykit-migrate."""
    database = Postgres().start()
    env = {"DATABASE_URL": database.url.replace("postgres@", "postgres:db-pass-never-shown@"),
           "MEDIA_ROOT": str(tmp_path / "media"), "CELERY_BROKER_URL": redis_server.url}
    migrate = subprocess.run([str(BIN / "deploykit-migrate")], cwd=APP, env=app_env(**env), capture_output=True, text=True,
                             timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "storage OK" not in migrate.stdout  # filesystem storage: the storage check is skipped
    port = free_port()
    start_app("deploykit-web", name="web-pg", PORT=port, GUNICORN_WORKERS=1, GUNICORN_THREADS=2, **env)
    wait_for(lambda: port_open(port), 90, "gunicorn")
    try:
        yield f"http://127.0.0.1:{port}", database
    finally:
        database.stop()


def test_database_down_api_and_readyz_are_503_without_internals(web_on_postgres):
    base, database = web_on_postgres
    headers = {"Host": "app.example.com", "X-Forwarded-Proto": "https"}
    url = f"{base}/api/tasks/{uuid.uuid4()}/"
    assert http(url, headers)[0] == 404  # up: an unknown id
    database.stop()

    status, response_headers, body = http(url, headers)
    assert status == 503, body[:2000]
    assert response_headers["Retry-After"] == "10"
    error = json.loads(body)["error"]
    assert error == "The database is temporarily unavailable; retry in 10 seconds.", error

    status, _, body = http(f"{base}/readyz", {"Host": "10.1.2.3:8000"})
    message = json.loads(body)["database"]
    assert status == 503
    assert message == f"database postgresql 127.0.0.1:{database.port}/app is unavailable (details in the web process log)"
    assert "db-pass-never-shown" not in body.decode()


def test_start_migrate_checks_object_storage_before_migrating(tmp_path):
    """A wrong S3 endpoint fails the deploy naming the variable, before any migration runs."""
    database = tmp_path / "never-created.sqlite3"
    env = app_env(DATABASE_URL=f"sqlite:///{database}", DEPLOYKIT_STORAGE_BACKEND="s3", DEPLOYKIT_STORAGE_S3_BUCKET="media",
                  DEPLOYKIT_STORAGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID="app-key-id",
                  DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY="a-long-s3-secret-value")
    result = subprocess.run([str(BIN / "deploykit-migrate")], cwd=APP, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "DEPLOYKIT_STORAGE_S3_ENDPOINT_URL" in result.stderr, result.stderr[-2000:]
    assert "a-long-s3-secret-value" not in result.stdout + result.stderr
    assert not database.exists()  # migrate never ran


def test_worker_runs_without_gossip_and_is_still_seen(worker):
    """deploykit-worker disables gossip (docs/app.md); /status still finds the worker (its queues broadcast)."""
    from deploykit.ops.checks import consumers

    assert b"--without-gossip" in open(f"/proc/{worker.proc.pid}/cmdline", "rb").read()
    assert any(name.startswith("default-io-images@") for name in consumers(timeout=5))


def test_broker_down_under_gunicorn_post_is_503_within_seconds(start_app, tmp_path):
    """The web tier retries the Redis result store briefly (config/wsgi.py): Celery's default, 20 retries a
    second apart, kept clients ~19 s waiting for their 503."""
    broker = Redis(tmp_path).start()
    port = free_port()
    start_app("deploykit-web", name="web-broker-down", PORT=port, GUNICORN_WORKERS=1, GUNICORN_THREADS=2,
              CELERY_BROKER_URL=broker.url, MEDIA_ROOT=str(tmp_path / "media"))
    wait_for(lambda: port_open(port), 90, "gunicorn")
    broker.stop()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/tasks/", data=b'{"task": "add", "args": [1, 2]}',
                                     headers={"Host": "app.example.com", "X-Forwarded-Proto": "https",
                                              "Content-Type": "application/json"}, method="POST")
    started = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    took = time.monotonic() - started
    print(f"broker down: POST /api/tasks/ answered {refused.value.code} in {took:.1f} s")
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "10"
    assert took < 10, f"{took:.1f} s"
