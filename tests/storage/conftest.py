"""Storage tests against a REAL S3-compatible server (versitygw, built by `make s3-server`), never a mock.

The session starts the server on 127.0.0.1 on a free port with a temporary data directory and random root
credentials, points the app's settings at it through the environment contract (DEPLOYKIT_STORAGE_BACKEND=s3 ...),
sets Django up on a temporary SQLite database, and stops the server at the end.

Run: `make test-storage` (or `.venv/bin/pytest -p no:django -c tests/storage/pytest.ini tests/storage`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from polling import wait_until

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "app"
DEPLOYKIT_DIR = REPO / "deploykit" / "src"
SERVER_START_TIMEOUT = 30


@dataclass
class S3Server:
    endpoint: str  # what the app uses (127.0.0.1)
    public_endpoint: str  # what browsers get in presigned URLs (same server, another host name)
    access_key: str
    secret_key: str
    data_dir: Path
    log_file: Path
    process: subprocess.Popen

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, method: str = "GET", data: bytes | None = None) -> int:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_server(workdir: Path) -> S3Server:
    binary = Path(os.environ.get("S3_SERVER_BIN") or REPO / ".tools/bin/versitygw")
    if not os.access(binary, os.X_OK):
        pytest.exit(f"{binary} is missing: run `make s3-server` first", returncode=2)
    data_dir = workdir / "data"
    data_dir.mkdir()
    log_file = workdir / "versitygw.log"
    port = free_port()
    access_key, secret_key = "test" + secrets.token_hex(8), secrets.token_urlsafe(30)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ROOT_ACCESS_KEY_ID": access_key,
        "ROOT_SECRET_ACCESS_KEY": secret_key,
    }
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "--port", f"127.0.0.1:{port}", "--health", "/health", "posix", str(data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = S3Server(
        endpoint=f"http://127.0.0.1:{port}",
        public_endpoint=f"http://localhost:{port}",
        access_key=access_key,
        secret_key=secret_key,
        data_dir=data_dir,
        log_file=log_file,
        process=process,
    )

    def healthy():
        if process.poll() is not None:
            raise RuntimeError(f"versitygw exited with {process.returncode}:\n{server.log_tail()}")
        try:
            return http_status(f"{server.endpoint}/health") == 200
        except OSError:
            return False

    wait_until(healthy, SERVER_START_TIMEOUT, "versitygw to answer /health")
    return server


def stop_server(server: S3Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def app_environment(server: S3Server, workdir: Path, bucket: str) -> dict[str, str]:
    """The environment contract of an app process using the test server (debug mode, SQLite)."""
    return {
        "DJANGO_DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
        "CELERY_RESULT_BACKEND": "django-db",
        "DEPLOYKIT_STORAGE_BACKEND": "s3",
        "DEPLOYKIT_STORAGE_S3_ENDPOINT_URL": server.endpoint,
        "DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL": server.public_endpoint,
        "DEPLOYKIT_STORAGE_S3_BUCKET": bucket,
        "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": server.access_key,
        "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": server.secret_key,
        "DEPLOYKIT_STORAGE_S3_REGION": "us-east-1",
        "MEDIA_ROOT": str(workdir / "media"),
        "LOG_LEVEL": "WARNING",
    }


def pytest_configure(config):
    if config.option.collectonly or config.option.help:
        return
    workdir = Path(tempfile.mkdtemp(prefix="test-storage-"))
    server = start_server(workdir)
    config._storage_test = (workdir, server)
    bucket = "uploads-" + secrets.token_hex(4)
    os.environ.update(app_environment(server, workdir, bucket))
    sys.path[:0] = [str(APP_DIR), str(DEPLOYKIT_DIR)]
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def pytest_unconfigure(config):
    state = getattr(config, "_storage_test", None)
    if state:
        workdir, server = state
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(pytestconfig) -> S3Server:
    return pytestconfig._storage_test[1]


@pytest.fixture(scope="session")
def workdir(pytestconfig) -> Path:
    return pytestconfig._storage_test[0]


@pytest.fixture(scope="session")
def default_bucket():
    """The app's configured bucket, created once the way every deploy target does (ensure_bucket)."""
    from django.core.management import call_command

    call_command("ensure_bucket", verbosity=0)
    return os.environ["DEPLOYKIT_STORAGE_S3_BUCKET"]


@pytest.fixture
def make_storage(s3_server):
    """Build a storage from an environment-contract mapping, exactly as settings.py does."""
    from django.utils.module_loading import import_string

    from deploykit.config.env import Env
    from deploykit.ops.storage import build_storages

    def make(**overrides: str):
        environ = {
            "DJANGO_DEBUG": "true",
            "DEPLOYKIT_STORAGE_BACKEND": "s3",
            "DEPLOYKIT_STORAGE_S3_ENDPOINT_URL": s3_server.endpoint,
            "DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL": s3_server.public_endpoint,
            "DEPLOYKIT_STORAGE_S3_BUCKET": os.environ["DEPLOYKIT_STORAGE_S3_BUCKET"],
            "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": s3_server.access_key,
            "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": s3_server.secret_key,
        }
        environ.update(overrides)
        env = Env(environ)
        config = build_storages(env, media_root=overrides.get("MEDIA_ROOT", ""), debug=True)["default"]
        assert not env.errors, env.errors
        return import_string(config["BACKEND"])(**config.get("OPTIONS", {}))

    return make


@pytest.fixture
def s3_client(s3_server):
    """A plain boto3 client with the root credentials: looks at the bucket behind the app's back."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"),
    )
