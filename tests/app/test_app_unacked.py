"""Integration: deploykit.unacked requeues the Redis messages of a dead worker, and only those; with the
publish journal (deploykit.redis_transport, deploykit.lost) also a message popped and never recorded.

Own redis-server and workers (the session worker would pick the tasks up too), so which worker holds
what is known. The Compose-level proof is tests/chaos (Redis restart, kill -9 of a worker).
"""

import json
import os
import signal
from pathlib import Path

import pytest
import redis
from app_services import AppProcess, Redis, app_env, switch_broker, wait_for, wait_state

from deploykit import lost
from deploykit.models import TaskDelivery
from deploykit.redis_transport import entries_key, order_key
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
        proc = AppProcess("start-worker", app_env(**{
            "CELERY_BROKER_URL": own_redis.url, "CELERY_RESULT_BACKEND": own_redis.url, "CELERY_WORKER_NAME": name,
            "CELERY_WORKER_QUEUES": "default", "CELERY_WORKER_CONCURRENCY": "1",
            "CELERY_WORKER_HEARTBEAT_FILE": heartbeat, **env}), logdir, name=name).start()
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
    assert first == {"unacked": 3, "held": 2, "suspected": 1, "restored": 0, "absent": 0, "requeued": 0}, first
    second = restore_orphans(tasks.sleep.app, min_age=0)  # still unheld: requeued now
    assert second == {"unacked": 3, "held": 2, "suspected": 0, "restored": 1, "absent": 0, "requeued": 0}, second

    assert wait_state(stranded, timeout=90).state == "SUCCESS"
    assert wait_state(running).state == "SUCCESS" and wait_state(waiting).state == "SUCCESS"
    wait_for(lambda: unacked_count(own_redis) == 0, 30, "the acks (late: just after the results)")
    # Only the stranded message came back (counted as a redelivery); the held ones ran once.
    assert list(TaskDelivery.objects.values_list("key", "count")) == [(f"{stranded.id}:0", 1)]


QUEUES = ("default", "io", "images")


@pytest.fixture
def client(own_redis):
    """A raw client on the test's Redis, with no message, journal or suspect left by an earlier test."""
    raw = redis.Redis(port=own_redis.port)
    raw.delete(*QUEUES, "unacked", "unacked_index", *raw.keys("deploykit.*"))
    return raw


def journal(client, queue: str) -> dict[bytes, bytes]:
    assert client.zcard(order_key(queue)) == client.hlen(entries_key(queue))
    return client.hgetall(entries_key(queue))


def test_the_journal_holds_a_task_message_from_publish_to_receipt(client, start_worker):
    queued = tasks.sleep.delay(0)
    (payload,) = client.lrange("default", 0, -1)
    assert list(journal(client, "default").values()) == [payload]  # the exact bytes pushed
    assert json.loads(payload)["headers"]["id"] == queued.id

    tasks.sleep.apply_async((0,), queue="images")
    with tasks.sleep.app.connection_for_write() as conn:
        assert conn.default_channel.queue_purge("images") == 1
    assert journal(client, "images") == {} and len(journal(client, "default")) == 1

    start_worker("receiver")
    assert wait_state(queued).state == "SUCCESS"
    assert journal(client, "default") == {}  # the receipt took it out, before the task ran
    wait_for(lambda: client.hlen("unacked") == 0, 30, "the ack")
    assert client.llen("default") == 0


def test_a_message_popped_and_never_recorded_is_requeued_once_and_nothing_else(client, start_worker):
    app = tasks.sleep.app
    with app.producer_or_acquire() as producer:  # a backlog nobody consumes: never absent, never touched
        for _ in range(2000):
            tasks.sleep.apply_async((0,), queue="images", producer=producer)
    # The message to lose went through a receipt and a reject(requeue) first, as on a worker that died
    # under its pool: restored messages are journaled again, with the bytes kombu pushes back.
    doomed = tasks.sleep.apply_async((0,), queue="io")
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        message = channel.basic_get("io")
        assert journal(client, "io") == {} and client.hlen("unacked") == 1
        message.reject(requeue=True)
    (requeued_bytes,) = client.lrange("io", 0, -1)
    assert json.loads(requeued_bytes)["headers"]["redelivered"] is True
    assert list(journal(client, "io").values()) == [requeued_bytes]
    # The window of celery/kombu#305: BRPOP took it, the worker died before writing `unacked`.
    assert client.brpop("io", timeout=5) == (b"io", requeued_bytes)

    first = restore_orphans(app, min_age=0)  # absent once: remembered, nobody asked
    assert first == {"unacked": 0, "restored": 0, "absent": 1, "requeued": 0}, first

    start_worker("holder")
    running = tasks.sleep.delay(20)
    wait_state(running, states=("STARTED",), timeout=60)
    second = restore_orphans(app, min_age=0)  # absent twice and held by no worker: requeued
    assert second == {"unacked": 1, "held": 1, "suspected": 0, "restored": 0, "absent": 1, "requeued": 1}, second
    assert client.lrange("io", 0, -1) == [requeued_bytes]  # the exact message, at the pop end
    third = restore_orphans(app, min_age=0)
    assert third == {"unacked": 1, "held": 1, "suspected": 0, "restored": 0, "absent": 0, "requeued": 0}, third
    with app.connection_for_write() as conn:  # the script checks again: a queued message is left alone
        tag = next(iter(journal(client, "io"))).decode()
        assert lost.requeue(conn.default_channel, client, {tag: ("io", doomed.id)}) == []
    assert client.llen("io") == 1 and client.llen("images") == 2000 and client.hlen("unacked") == 1

    start_worker("io-worker", CELERY_WORKER_QUEUES="io")
    assert wait_state(doomed, timeout=90).state == "SUCCESS"
    assert wait_state(running).state == "SUCCESS"
    assert journal(client, "io") == {} and client.llen("images") == 2000
