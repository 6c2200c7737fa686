"""Integration: deploykit.unacked requeues the Redis messages of a dead worker, and only those.

Own redis-server and workers (the session worker would pick the tasks up too), so which worker holds
what is known. The Compose-level proof is tests/chaos (Redis restart, kill -9 of a worker).
"""

import os
import signal
from pathlib import Path

import pytest
import redis
from app_services import AppProcess, Redis, app_env, switch_broker, wait_for, wait_state

from deploykit.models import TaskDelivery
from deploykit.unacked import restore_orphans
from jobs import tasks

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory, django_db_setup, redis_server):
    from django.conf import settings

    from config.celery import app

    server = Redis(tmp_path_factory.mktemp("unacked")).start()
    saved = {"broker_url": os.environ["CELERY_BROKER_URL"], "result_backend": settings.CELERY_RESULT_BACKEND}
    switch_broker(app, broker_url=server.url, result_backend=server.url)
    try:
        yield server
    finally:
        switch_broker(app, **saved)
        server.stop()


@pytest.fixture
def start_worker(own_redis, logdir, tmp_path):
    started = []

    def start(name: str, **env) -> AppProcess:
        heartbeat = tmp_path / f"{name}-heartbeat"
        proc = AppProcess("start-worker", app_env(
            CELERY_BROKER_URL=own_redis.url, CELERY_RESULT_BACKEND=own_redis.url, CELERY_WORKER_NAME=name,
            CELERY_WORKER_QUEUES="default", CELERY_WORKER_CONCURRENCY="1", CELERY_WORKER_HEARTBEAT_FILE=heartbeat,
            **env), logdir, name=name).start()
        started.append(proc)
        wait_for(lambda: heartbeat.exists() or proc.proc.poll() is not None, 120, f"{name} heartbeat")
        assert proc.proc.poll() is None, proc.output()[-3000:]
        return proc

    yield start
    for proc in started:
        proc.stop()


def unacked_count(server) -> int:
    return redis.Redis(port=server.port).hlen("unacked")


def kill_worker(proc: AppProcess) -> None:
    """kill -9 of the main process and its pool children: nothing is left to restore the message."""
    pid = proc.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in map(int, children):
        os.kill(child, signal.SIGKILL)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(30)


def test_only_messages_no_live_worker_holds_are_requeued(own_redis, start_worker):
    victim = start_worker("victim")
    stranded = tasks.sleep.delay(1)
    wait_state(stranded, states=("STARTED",), timeout=60)
    kill_worker(victim)
    assert unacked_count(own_redis) == 1  # kombu alone would restore it after the visibility timeout
    # Nobody answers: nothing is touched (a lost broadcast must not look like dead workers).
    assert restore_orphans(tasks.sleep.app, min_age=0)["skipped"] == "no usable answer from the workers"

    start_worker("survivor", CELERY_WORKER_PREFETCH_MULTIPLIER="2")
    running, waiting = tasks.sleep.delay(20), tasks.sleep.delay(1)  # held: one active, one reserved
    wait_state(running, states=("STARTED",), timeout=60)
    wait_for(lambda: unacked_count(own_redis) == 3, 30, "both new messages delivered")
    first = restore_orphans(tasks.sleep.app, min_age=0)
    assert first == {"unacked": 3, "held": 2, "suspected": 1, "restored": 0}, first
    second = restore_orphans(tasks.sleep.app, min_age=0)  # still unheld: requeued now
    assert second == {"unacked": 3, "held": 2, "suspected": 0, "restored": 1}, second

    assert wait_state(stranded, timeout=90).state == "SUCCESS"
    assert wait_state(running).state == "SUCCESS" and wait_state(waiting).state == "SUCCESS"
    assert unacked_count(own_redis) == 0
    # Only the stranded message came back (counted as a redelivery); the held ones ran once.
    assert list(TaskDelivery.objects.values_list("key", "count")) == [(f"{stranded.id}:0", 1)]
