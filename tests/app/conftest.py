"""Test set-up for app/: production-mode settings from the environment, and real services.

The environment is prepared *before* Django reads its settings (pytest-django sets Django up after this
conftest is imported), in production mode (DJANGO_DEBUG off) like a deployment. The test database is
a SQLite file so the worker/beat subprocesses the integration tests start can share it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from app_services import (AppProcess, Postgres, RabbitMQ, Redis, SMTPServer, app_env, free_port, wait_for,
                          wait_heartbeat)

WORKDIR = Path(tempfile.mkdtemp(prefix="app-tests-"))
TEST_DB = WORKDIR / "test.sqlite3"
REDIS = Redis(WORKDIR)
SMTP_PORT = free_port()

TEST_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
    "DJANGO_ALLOWED_HOSTS": "testserver,localhost,app.example.com",
    "DATABASE_URL": f"sqlite:///{TEST_DB}",
    "CELERY_BROKER_URL": REDIS.url,
    "MEDIA_ROOT": str(WORKDIR / "media"),
    "EMAIL_URL": f"smtp://127.0.0.1:{SMTP_PORT}",
    "DEFAULT_FROM_EMAIL": "app@example.com",
    "DEPLOYKIT_HEARTBEAT_FILE": str(WORKDIR / "worker-heartbeat"),
    "DEPLOYKIT_MAX_REDELIVERIES": "1",
    "DEPLOYKIT_BEAT_TICK_SECONDS": "1",
    "UPLOAD_MAX_BYTES": "200000",
    "IMAGE_MAX_PIXELS": "4000000",
    "LOG_LEVEL": "INFO",
}
for _name in list(os.environ):  # nothing from the caller's shell leaks into the contract
    if _name.startswith(("DJANGO_", "CELERY_", "FLOWER_", "STORAGE_", "EMAIL_", "DATABASE_", "API_")):
        del os.environ[_name]
os.environ.update(TEST_ENV)

import django  # noqa: E402  (pytest-django found no settings at start-up: they are set just above)

django.setup()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(WORKDIR, ignore_errors=True)


# --- Django --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Test database = a file that subprocess workers open through DATABASE_URL."""
    from django.conf import settings
    from django.db import connections

    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = str(TEST_DB)
    connections["default"].settings_dict["TEST"]["NAME"] = str(TEST_DB)


@pytest.fixture(autouse=True)
def _media_and_static(settings, tmp_path):
    """Plain static storage in tests (no collectstatic manifest)."""
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture(autouse=True)
def _status_uncached(monkeypatch):
    """/status and /metrics share one cached snapshot (deploykit.ops.collector): each test collects anew."""
    from deploykit.ops import collector

    monkeypatch.setattr(collector, "shared", collector.Collector(max_age=0))


@pytest.fixture
def api():
    """A test client that talks HTTPS to an allowed host (production mode redirects plain HTTP)."""
    from django.test import Client

    class HttpsClient(Client):
        def generic(self, *args, secure=True, **kwargs):
            return super().generic(*args, secure=True, **kwargs)

    return HttpsClient(HTTP_HOST="app.example.com")


# --- real services -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server():
    REDIS.start()
    yield REDIS
    REDIS.stop()


@pytest.fixture(scope="session")
def smtp_server():
    server = SMTPServer(SMTP_PORT).start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(smtp_server):
    smtp_server.messages.clear()
    return smtp_server.messages


@pytest.fixture(scope="session")
def rabbitmq_server():
    server = RabbitMQ(WORKDIR)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    server = Postgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def logdir():
    path = WORKDIR / "logs"
    path.mkdir(exist_ok=True)
    return path


def _starter(logdir):
    started: list[AppProcess] = []

    def start(script: str, *args: str, name: str | None = None, **env) -> AppProcess:
        proc = AppProcess(script, app_env(**env), logdir, list(args), name=name).start()
        started.append(proc)
        return proc

    return start, started


@pytest.fixture
def start_app(logdir):
    """Start app/bin/<script> with the test environment (+ overrides); stopped when the test ends."""
    start, started = _starter(logdir)
    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="session")
def start_session_app(logdir):
    """Like start_app, for processes shared by the whole session."""
    start, started = _starter(logdir)
    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, redis_server, smtp_server, start_session_app):
    """A real prefork worker (deploykit-worker) consuming default, io and images."""
    heartbeat = WORKDIR / "worker-heartbeat"
    metrics_port = free_port()
    proc = start_session_app(
        "deploykit-worker", name="worker",
        CELERY_WORKER_QUEUES="default,io,images", CELERY_WORKER_CONCURRENCY="2",
        DEPLOYKIT_HEARTBEAT_FILE=heartbeat, DEPLOYKIT_WORKER_METRICS_PORT=str(metrics_port),
    )
    wait_heartbeat(heartbeat, proc)
    proc.heartbeat = heartbeat
    proc.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    return proc
