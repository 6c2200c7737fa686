"""deploykit on a project of its own (tests/app/test_deploykit_settings.py's `mysite`: settings ending in
apply(globals()), a plain Celery app) against a real PostgreSQL and Redis, in production mode: what
`make test-matrix` proves at each end of the supported range besides the unit tests it reuses.
Each step runs in a subprocess of the matrix environment, as a deployment runs it."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest

from app_services import Abort, stop_process, wait_for
from test_deploykit_settings import project, project_env, run  # noqa: F401  (project: the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def live(project, postgres_server, redis_server, tmp_path_factory):  # noqa: F811
    """The project's environment on the real services (production mode)."""
    return {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "shop.example.com", "DATABASE_URL": postgres_server.url,
            "CELERY_BROKER_URL": redis_server.url, "MEDIA_ROOT": str(tmp_path_factory.mktemp("media"))}


def shell(project, live, code: str) -> dict:
    """`manage.py shell -c CODE` in the project; CODE prints one JSON object last."""
    result = run(project, "manage.py", "shell", "-c", code, **live)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def migrated(project, live):  # noqa: F811
    for command in (["check"], ["migrate", "--noinput"]):
        result = run(project, "manage.py", *command, **live)
        assert result.returncode == 0, f"manage.py {' '.join(command)}:\n{result.stderr}"
    return live


def test_check_and_migrate_on_postgresql(project, migrated):  # noqa: F811
    seen = shell(project, migrated, """
import json
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
applied = MigrationRecorder(connection).applied_migrations()
tables = set(connection.introspection.table_names())
print(json.dumps({"vendor": connection.vendor, "applied": sorted(app for app, _ in applied),
                  "tables": sorted(t for t in tables if t.startswith(("deploykit_", "django_celery_beat_")))}))
""")
    assert seen["vendor"] == "postgresql"
    assert {"deploykit", "django_celery_beat"} <= set(seen["applied"])
    assert {"deploykit_taskdelivery", "deploykit_idempotencykey", "deploykit_beattick",
            "django_celery_beat_periodictask"} <= set(seen["tables"])


def test_probes_through_the_test_client(project, migrated):  # noqa: F811
    # Any Host over plain HTTP (ProbeMiddleware), though production mode allows only shop.example.com.
    seen = shell(project, migrated, """
import json
from django.test import Client
client = Client(HTTP_HOST="10.1.2.3:8000")
print(json.dumps({path: [r.status_code, r.json()] for path in ("/healthz", "/readyz") for r in [client.get(path)]}))
""")
    assert seen == {"/healthz": [200, {"status": "ok"}], "/readyz": [200, {"database": "ok"}]}


@pytest.fixture(scope="module")
def worker(project, migrated, tmp_path_factory):  # noqa: F811
    """deploykit-worker (the start script the wheel installs) on the project's queues (`celery`, and `io` for ship_order)."""
    logs = tmp_path_factory.mktemp("worker")
    heartbeat = logs / "heartbeat"
    env = project_env(project, **migrated, CELERY_WORKER_QUEUES="celery,io", CELERY_WORKER_CONCURRENCY="1",
                      DEPLOYKIT_HEARTBEAT_FILE=str(heartbeat))
    log = logs / "worker.log"
    proc = subprocess.Popen([f"{sys.prefix}/bin/deploykit-worker"], cwd=project, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def consuming():
        if proc.poll() is not None:
            raise Abort(f"worker exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        return heartbeat.exists()

    wait_for(consuming, 90, f"worker heartbeat {heartbeat}", interval=0.3)
    yield proc
    stop_process(proc)


def test_task_round_trip_through_a_real_worker_with_leases(project, migrated, worker, redis_server):  # noqa: F811
    seen = shell(project, migrated, """
import json
from deploykit.celery import BoundedRedeliveryTask
from deploykit.celery_app import app
from shop.tasks import ship_order
result = ship_order.delay(7)
print(json.dumps({"result": result.get(timeout=60), "bounded": isinstance(ship_order, BoundedRedeliveryTask)}))
""")
    assert seen == {"result": 7, "bounded": True}
    import redis

    client = redis.Redis(port=redis_server.port)
    # deploykit's Redis transport carried it: the publish journal counted it and the worker holds a lease.
    assert int(client.get("deploykit.journal_seq") or 0) >= 1
    assert client.keys("deploykit.lease:*"), "the worker holds no lease"
