"""Integration: on Redis, a message goes back on its queue only once the lease of the worker process that
received it has expired (deploykit.delivery.lease, deploykit.delivery.unacked); with the publish journal
(deploykit.delivery.redis_transport, deploykit.delivery.lost) also a message popped and never recorded.

Own redis-server and workers (the session worker would pick the tasks up too), so which worker holds
what is known. Runs are counted with jobs.tasks.side_effect (one Execution row per run). The
Compose-level proof is tests/chaos (warm shutdown with long tasks, rate-limited burst, kill -9).
"""

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis
from app_services import AppProcess, Redis, app_env, switch_broker, wait_for, wait_state

from deploykit.delivery import lease, lost, unacked
from deploykit.models import TaskDelivery
from deploykit.delivery.redis_transport import OWNERS_KEY, entries_key, order_key
from jobs import tasks
from jobs.models import Execution

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUES = ("default", "io", "images")


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
def client(own_redis):
    """A raw client on the test's Redis, with no message, journal, lease or owner left by an earlier test."""
    raw = redis.Redis(port=own_redis.port)
    raw.delete(*QUEUES, "unacked", "unacked_index", "unacked_mutex", *raw.keys("deploykit.*"))
    return raw


@pytest.fixture
def start_worker(own_redis, logdir, tmp_path):
    started = []

    def start(name: str, **env) -> AppProcess:
        heartbeat = tmp_path / f"{name}-heartbeat"
        proc = AppProcess("deploykit-worker", app_env(**{
            "CELERY_BROKER_URL": own_redis.url, "CELERY_RESULT_BACKEND": own_redis.url, "CELERY_WORKER_NAME": name,
            "CELERY_WORKER_QUEUES": "default", "CELERY_WORKER_CONCURRENCY": "1",
            "DEPLOYKIT_HEARTBEAT_FILE": heartbeat, **env}), logdir, name=name).start()
        started.append(proc)
        wait_for(lambda: heartbeat.exists() or proc.proc.poll() is not None, 120, f"{name} heartbeat")
        assert proc.proc.poll() is None, proc.output()[-3000:]
        return proc

    yield start
    for proc in started:
        proc.stop()


def kill_worker(proc: AppProcess) -> None:
    """kill -9 of the main process and its pool children: nothing is left to restore the message."""
    pid = proc.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in map(int, children):
        os.kill(child, signal.SIGKILL)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(30)


def runs(*results) -> dict[str, int]:
    return {r.id: Execution.objects.filter(task_id=r.id).count() for r in results}


def owners(client) -> set[str]:
    return {owner.decode() for owner in client.hvals(OWNERS_KEY)}


def test_a_draining_worker_keeps_what_it_holds_however_long_rounds_run_meanwhile(client, start_worker):
    """A warm shutdown waits for a task that outlasts several rounds and leases: no round may requeue it,
    nor the prefetched, ETA and rate-limited messages the draining worker holds (kombu gives those back
    at shutdown). The other worker runs a round every second; the test runs its own too."""
    fast = {"DEPLOYKIT_RECOVERY_INTERVAL": "1", "DEPLOYKIT_LEASE_TTL": "3"}
    drainer = start_worker("drainer", CELERY_WORKER_PREFETCH_MULTIPLIER="4", **fast)
    # 20 s: what is left of it after the survivor's start (seconds on a busy machine) must span 5 rounds.
    long = tasks.side_effect.delay(20)
    wait_for(lambda: Execution.objects.filter(task_id=long.id).exists(), 60, "the long task to start")
    later = tasks.side_effect.apply_async((0,), countdown=6)
    limited = [tasks.side_effect_limited.delay(0) for _ in range(3)]
    wait_for(lambda: client.hlen("unacked") == 5, 30, "every message received by the drainer")
    assert len(owners(client)) == 1 and client.exists(lease.key(owners(client).pop()))

    start_worker("survivor", **fast)
    drainer.proc.send_signal(signal.SIGTERM)  # warm shutdown: waits for the running task
    rounds = []
    while drainer.proc.poll() is None:
        rounds.append(unacked.restore_orphans(tasks.side_effect.app))
        time.sleep(1)
    assert drainer.proc.returncode == 0, drainer.output()[-3000:]
    assert len(rounds) >= 5 and all(r.get("restored", 0) == 0 for r in rounds), rounds

    for result in (long, later, *limited):
        assert wait_state(result, timeout=120).state == "SUCCESS"
    assert runs(long, later, *limited) == {r.id: 1 for r in (long, later, *limited)}
    assert not TaskDelivery.objects.filter(key=f"{long.id}:0").exists()  # never redelivered
    wait_for(lambda: client.hlen("unacked") == 0 and client.hlen(OWNERS_KEY) == 0, 30, "the acks")


def test_a_killed_workers_messages_come_back_once_its_lease_expired_under_a_new_tag(client, start_worker):
    victim = start_worker("victim", DEPLOYKIT_LEASE_TTL="4")
    stranded = tasks.side_effect.delay(30)
    wait_for(lambda: Execution.objects.filter(task_id=stranded.id).exists(), 60, "the task to start")
    (old_tag,) = client.hkeys("unacked")
    (owner,) = owners(client)
    kill_worker(victim)
    # The lease outlives the process by up to a TTL: nothing moves yet.
    assert client.exists(lease.key(owner)) and unacked.restore_orphans(tasks.sleep.app)["restored"] == 0
    wait_for(lambda: not client.exists(lease.key(owner)), 30, "the dead worker's lease to expire")
    summary = unacked.restore_orphans(tasks.sleep.app)
    assert summary["restored"] == 1 and summary["dead_owners"] == 1, summary
    assert client.hlen("unacked") == 0 and client.hlen(OWNERS_KEY) == 0
    (payload,) = [json.loads(raw) for raw in client.lrange("default", 0, -1)]
    assert payload["headers"]["id"] == stranded.id and payload["headers"]["redelivered"] is True
    assert payload["properties"]["delivery_tag"] != old_tag.decode()
    assert unacked.restore_orphans(tasks.sleep.app)["restored"] == 0  # once

    start_worker("survivor")
    assert wait_state(stranded, timeout=120).state == "SUCCESS"
    # Two runs: the killed one and the redelivery (a crash: duplicates bounded by what was in flight).
    assert runs(stranded) == {stranded.id: 2}
    assert list(TaskDelivery.objects.values_list("key", "count")) == [(f"{stranded.id}:0", 1)]


def test_what_a_worker_held_when_the_broker_went_away_comes_back_after_its_old_lease(client, own_redis, start_worker):
    """Redis goes down while a worker holds a running task and three prefetched ones, and comes back with
    its data (as a restart with persistence does). Celery drops what it held; kombu could not give the
    messages back (Redis was down at channel close), so they are in `unacked` under the worker's owner
    id. The worker reconnects under a new id: the old lease expires and a round requeues them, each run
    once more at most (the running one was cancelled by the connection loss)."""
    fast = {"DEPLOYKIT_RECOVERY_INTERVAL": "1", "DEPLOYKIT_LEASE_TTL": "3"}
    holder = start_worker("holder", CELERY_WORKER_PREFETCH_MULTIPLIER="4", **fast)
    running = tasks.side_effect.delay(20)
    wait_for(lambda: Execution.objects.filter(task_id=running.id).exists(), 60, "the long task to start")
    prefetched = [tasks.side_effect.delay(0) for _ in range(3)]
    wait_for(lambda: client.hlen("unacked") == 4, 30, "every message received by the worker")
    (before,) = owners(client)
    client.save()
    own_redis.stop()
    holder.wait_for_output("Connection to broker lost", 30)
    own_redis.start()  # loads the dump: four messages in `unacked`, owned by `before`

    for result in (running, *prefetched):
        assert wait_state(result, timeout=90).state == "SUCCESS", holder.output()[-3000:]
    assert runs(*prefetched) == {r.id: 1 for r in prefetched}
    assert runs(running) == {running.id: 2}  # cancelled by the connection loss, then run in full
    assert before not in owners(client) and not client.exists(lease.key(before))
    assert "replaces " + before in holder.output()
    wait_for(lambda: client.hlen("unacked") == 0 and client.hlen(OWNERS_KEY) == 0, 30, "the acks")


def test_a_late_ack_of_the_first_copy_leaves_the_requeued_copys_receipt(client):
    app = tasks.sleep.app
    tasks.sleep.delay(0)
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        first = channel.basic_get("default")
        first.reject(requeue=True)  # back on the queue, as a worker's restore does
        second = channel.basic_get("default")
        assert second.delivery_tag != first.delivery_tag
        channel.qos._remove_from_indices(first.delivery_tag).execute()  # the original's late ack
        assert client.hexists("unacked", second.delivery_tag)
        second.ack()
    assert client.hlen("unacked") == 0


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


def test_a_message_popped_and_never_recorded_is_requeued_after_a_lease_ttl_and_nothing_else(client):
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

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        t0 = time.time()
        first = unacked.recover(channel, client, now=t0)  # absent: remembered, not yet requeued
        assert (first["absent"], first["requeued"]) == (1, 0), first
        early = unacked.recover(channel, client, now=t0 + channel.lost_after - 1)  # rounds, not seconds
        assert (early["absent"], early["requeued"]) == (1, 0), early
        due = unacked.recover(channel, client, now=t0 + channel.lost_after)
        assert (due["absent"], due["requeued"]) == (1, 1), due
        (back,) = [json.loads(raw) for raw in client.lrange("io", 0, -1)]  # at the pop end, a new tag
        assert back["headers"]["id"] == doomed.id
        assert back["properties"]["delivery_tag"] != json.loads(requeued_bytes)["properties"]["delivery_tag"]
        after = unacked.recover(channel, client, now=t0 + 10 * channel.lost_after)
        assert (after["absent"], after["requeued"]) == (0, 0), after
        tag = next(iter(journal(client, "io"))).decode()  # the script checks again: a queued one stays
        assert lost.requeue(channel, client, {tag: ("io", doomed.id)}) == []
    assert client.llen("io") == 1 and client.llen("images") == 2000
