"""deploykit.delivery.idempotency: a task id's guarded side effect commits once.

Units on the suite's SQLite database; then a real prefork worker on PostgreSQL + Redis running the tasks of
idem_tasks.py: a pool child SIGKILLed after its transaction committed but before the ack (the crash class:
Celery requeues the message, reject_on_worker_lost) runs again and skips; two copies of one id at once
run the side effect once."""

import os
import re
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from app_services import APP, BIN, app_env, wait_for, wait_heartbeat
from django.db import transaction
from django.utils import timezone

from deploykit.delivery import idempotency
from deploykit.models import IdempotencyKey

TESTS = Path(__file__).resolve().parent


class FakeRequest:
    def __init__(self, task_id):
        self.id = task_id


class FakeTask:  # what claim() reads of a bound task: .name and .request.id
    name = "tests.fake"

    def __init__(self, task_id="t-1"):
        self.request = FakeRequest(task_id)


# --- units ---------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # no test-case transaction around the call
def test_claim_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        idempotency.claim(FakeTask())
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_second_claim_of_a_committed_id_skips_and_a_rolled_back_claim_frees_it():
    task = FakeTask("id-1")
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        assert idempotency.claim(task)
        1 / 0  # the side effect failed: the claim rolls back with it
    with transaction.atomic():
        assert idempotency.claim(task)  # so a retry/redelivery runs it
    with transaction.atomic():
        assert not idempotency.claim(task)  # committed: a duplicate skips
        assert idempotency.claim(task, "step-2")  # another guarded step of the same task
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["id-1", "id-1:step-2"]


@pytest.mark.django_db
def test_decorator_returns_the_stored_result_to_a_duplicate_and_retries_share_the_key():
    calls = []

    @idempotency.idempotent
    def body(self, x):
        calls.append(x)
        return {"value": x}

    task = FakeTask("id-2")
    assert body(task, 1) == {"value": 1}
    task.request.retries = 1  # a retry of the same id: the committed side effect is not done again
    assert body(task, 2) == {"value": 1}
    assert calls == [1]
    called_directly = FakeTask(None)  # task() called in-process: nothing to guard against
    assert body(called_directly, 3) == {"value": 3} and body(called_directly, 4) == {"value": 4}


@pytest.mark.django_db
def test_purge_removes_only_rows_older_than_the_retention(settings):
    settings.DEPLOYKIT_IDEMPOTENCY_RETENTION = 3600
    old = IdempotencyKey.objects.create(key="old")
    IdempotencyKey.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(hours=2))
    IdempotencyKey.objects.create(key="new")
    assert idempotency.purge_idempotency_keys() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_a_retention_shorter_than_redeliveries_can_arrive_is_refused():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=TESTS.parent.parent / "app",
                            env=app_env(DEPLOYKIT_IDEMPOTENCY_RETENTION="600"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "DEPLOYKIT_IDEMPOTENCY_RETENTION (600s) must be at least" in result.stderr


# --- a real worker on PostgreSQL -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_worker(postgres_server, redis_server, start_session_app, tmp_path_factory):
    """A migrated database of its own with the side-effect table; a worker (2 pool children) on it."""
    database = "idempotency"
    with psycopg.connect(postgres_server.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    url = postgres_server.url.rsplit("/", 1)[0] + f"/{database}"
    broker = f"redis://127.0.0.1:{redis_server.port}/6"  # no other worker consumes here
    env = {"DATABASE_URL": url, "CELERY_BROKER_URL": broker, "MEDIA_ROOT": str(tmp_path_factory.mktemp("idem")),
           "PYTHONPATH": str(TESTS)}
    import subprocess

    migrate = subprocess.run([str(BIN / "deploykit-migrate")], env=app_env(**env), cwd=APP, capture_output=True,
                             text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    sql = psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True)
    sql.execute("CREATE TABLE idem_side_effect (id serial PRIMARY KEY, task_id text NOT NULL)")
    heartbeat = tmp_path_factory.mktemp("idem-hb") / "hb"
    worker = start_session_app("deploykit-worker", "--include", "idem_tasks", name="idem-worker",
                               CELERY_WORKER_QUEUES="default", CELERY_WORKER_CONCURRENCY="2",
                               DEPLOYKIT_HEARTBEAT_FILE=heartbeat, **env)
    wait_heartbeat(heartbeat, worker, timeout=120)

    from celery import Celery

    producer = Celery(broker=broker, set_as_current=False, fixups=[])
    yield type("W", (), {"proc": worker, "sql": sql, "producer": producer, "broker": broker})
    sql.close()


def side_effects(pg_worker, task_id) -> int:
    return pg_worker.sql.execute("SELECT count(*) FROM idem_side_effect WHERE task_id = %s", (task_id,)).fetchone()[0]


def attempts(directory: Path) -> list[list[str]]:
    path = directory / "attempts"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.integration
@pytest.mark.postgres
def test_pool_child_killed_after_commit_before_ack_runs_again_and_skips(pg_worker, tmp_path, monkeypatch):
    """Crash class: the child is SIGKILLed after the guarded transaction committed, before the ack.
    Celery requeues the message (acks_late + reject_on_worker_lost); the second execution skips."""
    monkeypatch.setenv("CELERY_BROKER_URL", pg_worker.broker)  # Celery prefers it to the broker= argument
    task_id = str(uuid.uuid4())
    pg_worker.producer.send_task("idem_tests.commit_then_wait", args=[str(tmp_path)], task_id=task_id,
                                 queue="default")
    wait_for(lambda: any(a[0] == "ran" for a in attempts(tmp_path)), 60, "the guarded transaction to commit")
    assert side_effects(pg_worker, task_id) == 1
    [child] = [int(a[2]) for a in attempts(tmp_path) if a[0] == "ran"]
    os.kill(child, signal.SIGKILL)  # committed, not acknowledged

    try:
        wait_for(lambda: any(a[0] == "skipped" for a in attempts(tmp_path)), 90, "the redelivered copy to run")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{pg_worker.proc.output()[-4000:]}") from None
    runs = attempts(tmp_path)
    assert [a[0] for a in runs] == ["start", "ran", "start", "skipped"], runs  # the task ran twice ...
    assert int(runs[2][2]) != child  # ... the second time in another pool child
    assert side_effects(pg_worker, task_id) == 1  # ... and its side effect happened once
    # The worker logs the result after the task body wrote "skipped": wait for the line, not assume it.
    wait_for(lambda: re.search(rf"commit_then_wait\[{task_id}\] succeeded in [0-9.]+s: 'skipped'", pg_worker.proc.output()),
             30, "the worker to log the skipped copy's success")


@pytest.mark.integration
@pytest.mark.postgres
def test_two_copies_of_one_id_at_once_run_the_side_effect_once(pg_worker, tmp_path, monkeypatch):
    """Both pool children get the same task id; the second's claim waits on the unique index until the
    first commits, then returns the first's stored result without running the body."""
    monkeypatch.setenv("CELERY_BROKER_URL", pg_worker.broker)
    task_id = str(uuid.uuid4())
    for _ in range(2):
        pg_worker.producer.send_task("idem_tests.slow_decorated", args=[str(tmp_path), 3.0], task_id=task_id,
                                     queue="default")
    pattern = rf"slow_decorated\[{task_id}\] succeeded in ([0-9.]+)s: (.*)"
    try:
        wait_for(lambda: len(re.findall(pattern, pg_worker.proc.output())) == 2, 90, "both copies to finish")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{pg_worker.proc.output()[-4000:]}") from None
    [(pid_ran,)] = [(a[2],) for a in attempts(tmp_path) if a[0] == "ran"]  # the body ran once
    finished = re.findall(pattern, pg_worker.proc.output())
    assert [result for _, result in finished] == [f"{{'pid': {pid_ran}}}"] * 2  # both return its result
    assert all(float(seconds) >= 2.5 for seconds, _ in finished)  # the duplicate waited for the commit
    assert side_effects(pg_worker, task_id) == 1
    assert f"already committed its side effect ({task_id})" in pg_worker.proc.output()
