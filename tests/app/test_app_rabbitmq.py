"""The same flows over a real RabbitMQ broker (amqp://), with results in the database (django-db)."""

import io
import os
import re
import signal

import pytest
from app_services import poll_json, switch_broker, wait_for
from PIL import Image

pytestmark = [pytest.mark.integration, pytest.mark.rabbitmq, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def amqp_worker(rabbitmq_server, django_db_setup, django_db_blocker, tmp_path_factory, logdir):
    """A worker on RabbitMQ; the test process's Celery app is pointed at the same broker and backend."""
    from app_services import AppProcess, app_env
    from django.conf import settings

    from config.celery import app
    from deploykit.delivery import rabbitmq

    heartbeat = tmp_path_factory.mktemp("amqp") / "hb"
    env = app_env(CELERY_BROKER_URL=rabbitmq_server.url, CELERY_WORKER_QUEUES="default,io,images",
                  CELERY_WORKER_CONCURRENCY="2", DEPLOYKIT_HEARTBEAT_FILE=heartbeat)
    env.pop("CELERY_RESULT_BACKEND", None)  # amqp:// -> the django-db default
    proc = AppProcess("deploykit-worker", env, logdir, name="amqp-worker").start()
    saved = {"broker_url": os.environ["CELERY_BROKER_URL"], "result_backend": settings.CELERY_RESULT_BACKEND,
             "task_queues": app.conf.task_queues}
    try:
        wait_for(lambda: heartbeat.exists() or proc.proc.poll() is not None, 120, "amqp worker heartbeat")
        assert proc.proc.poll() is None, proc.output()[-3000:]
        # As config/settings.py declares them for an amqp:// broker (this process was configured for Redis).
        switch_broker(app, broker_url=rabbitmq_server.url, result_backend="django-db",
                      task_queues=rabbitmq.queue_declarations(settings.CELERY_TASK_QUEUES, "quorum"))
        assert settings.CELERY_BROKER_URL != rabbitmq_server.url  # only this module talks amqp
        yield proc
    finally:
        switch_broker(app, **saved)
        proc.stop()


def test_tasks_over_amqp(api, amqp_worker):
    response = api.post("/api/tasks/", {"task": "multiply", "args": [7, 6]}, content_type="application/json")
    assert response.status_code == 202
    data = poll_json(api, response.json()["url"], lambda b: b["state"] in ("SUCCESS", "FAILURE"))
    assert data["state"] == "SUCCESS" and data["result"] == 42
    from django_celery_results.models import TaskResult

    stored = TaskResult.objects.get(task_id=data["id"])  # results in the database with amqp://
    assert stored.status == "SUCCESS" and stored.task_name == "jobs.tasks.multiply"


def test_image_chord_over_amqp(api, amqp_worker):
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), "green").save(buffer, "JPEG")
    buffer.seek(0)
    buffer.name = "green.jpg"
    response = api.post("/api/images/", {"file": buffer})
    data = poll_json(api, response.json()["url"], lambda b: b["status"] in ("done", "failed"))
    assert data["status"] == "done", data
    assert set(data["thumbnails"]) == {"64", "128", "256"}


def test_bounded_redelivery_over_amqp(amqp_worker):
    from celery.result import AsyncResult

    from jobs import tasks

    result = tasks.crash.delay()
    wait_for(lambda: AsyncResult(result.id).state == "FAILURE", 120, "crash task to fail", interval=0.5)
    assert "RedeliveryLimitExceeded" in repr(AsyncResult(result.id).result)


def queue_rows(rabbitmq_server, *columns: str) -> dict[str, list[str]]:
    out = rabbitmq_server.ctl("list_queues", "--no-table-headers", "name", *columns)
    return {fields[0]: fields[1:] for line in out.splitlines() if (fields := line.split())}


def test_queues_are_quorum_queues(rabbitmq_server, amqp_worker):
    """The shipped default on RabbitMQ: default, io and images are quorum queues (docs/reliability.md)."""
    types = {name: row[0] for name, row in queue_rows(rabbitmq_server, "type").items()}
    assert {types.get(name) for name in ("default", "io", "images")} == {"quorum"}, types


def test_status_queues_over_amqp(amqp_worker, settings):
    """/status's queues on RabbitMQ: consumers from active_queues, backlog from a passive declare; a queue
    the deployment declares but the broker does not know has no backlog (None), and the others still count."""
    from config.celery import app
    from deploykit.ops import checks

    settings.DEPLOYKIT_CONSUMED_QUEUES = ["never-declared", "default"]
    by_worker = checks.consumers(app, timeout=5)
    assert any(set(queues) >= {"default", "io", "images"} for queues in by_worker.values()), by_worker
    status = checks.queue_status(by_worker, app, timeout=5)
    assert status["never-declared"] == {"consumers": [], "backlog": None}
    assert status["default"]["consumers"] and status["images"]["backlog"] == 0


@pytest.fixture
def held_vhost(rabbitmq_server, amqp_worker, logdir, tmp_path):
    """A vhost of its own with one worker (concurrency 1, prefetch multiplier 3: it holds up to three messages,
    one running) and the test process's Celery app pointed at it; the worker is killed at the end (its held
    messages go back to the broker) and the vhost deleted."""
    from app_services import AppProcess, app_env, wait_heartbeat
    from django.conf import settings

    from config.celery import app
    from deploykit.delivery import rabbitmq

    rabbitmq_server.ctl("add_vhost", "held")
    rabbitmq_server.ctl("set_permissions", "-p", "held", "guest", ".*", ".*", ".*")
    url = rabbitmq_server.url.rstrip("/") + "/held"
    heartbeat = tmp_path / "hb"
    env = {k: v for k, v in app_env(CELERY_BROKER_URL=url, CELERY_WORKER_QUEUES="default,io,images",
                                    CELERY_WORKER_CONCURRENCY="1", CELERY_WORKER_PREFETCH_MULTIPLIER="3",
                                    DEPLOYKIT_HEARTBEAT_FILE=heartbeat).items() if k != "CELERY_RESULT_BACKEND"}
    worker = AppProcess("deploykit-worker", env, logdir, name="amqp-worker-held").start()
    queues = rabbitmq.queue_declarations(settings.CELERY_TASK_QUEUES, "quorum")
    try:
        wait_heartbeat(heartbeat, worker, timeout=120)
        switch_broker(app, broker_url=url, result_backend="django-db", task_queues=queues)
        from deploykit.ops import checks

        # The heartbeat says it consumes; its remote control (what /status's consumers come from) may answer later.
        wait_for(lambda: list(checks.consumers(app, timeout=2).values()) == [["default", "images", "io"]], 60,
                 "the held worker to answer active_queues", interval=0.5)
        yield app
    finally:
        worker.stop(signal.SIGKILL)
        switch_broker(app, broker_url=rabbitmq_server.url, result_backend="django-db", task_queues=queues)
        rabbitmq_server.ctl("delete_vhost", "held")


def test_in_flight_and_oldest_age_from_the_management_api(rabbitmq_server, held_vhost, settings, client):
    """RabbitMQ through its management API (DEPLOYKIT_RABBITMQ_MANAGEMENT_URL): five tasks for a worker holding
    three (one running, two prefetched) show as 3 in flight and 2 waiting, on the collector, /status?queues= and
    /metrics; a task waiting in a classic queue nobody consumes has an age (the AMQP timestamp deploykit sets at
    publish) that grows; quorum queues have none (RabbitMQ does not report it: rabbitmq-server#6813)."""
    from kombu import Exchange, Queue

    from deploykit.ops import checks
    from jobs import tasks

    settings.DEPLOYKIT_RABBITMQ_MANAGEMENT_URL = rabbitmq_server.management_url
    settings.DEPLOYKIT_CONSUMED_QUEUES = ["default", "stalled"]
    by_worker = checks.consumers(held_vhost, timeout=5)
    assert list(by_worker.values()) == [["default", "images", "io"]], by_worker
    for _ in range(5):
        tasks.sleep.delay(60)  # never finishes within the test: the worker is killed at the end
    stalled = Queue("stalled", Exchange("stalled", "direct"), "stalled", queue_arguments={"x-queue-type": "classic"})
    tasks.add.apply_async((1, 1), queue=stalled)

    status: dict = {}

    def settled() -> bool:  # the management API's statistics follow within collect_statistics_interval
        status.update(checks.queue_status(by_worker, held_vhost, timeout=5))
        return (status["default"].get("in_flight"), status["default"]["backlog"]) == (3, 2) \
            and status["stalled"].get("oldest_age_seconds") is not None

    wait_for(settled, 60, "3 in flight and 2 waiting on default, an age on stalled", interval=0.5)
    assert "oldest_age_seconds" not in status["default"]  # quorum queue: RabbitMQ reports no head timestamp
    assert status["stalled"]["in_flight"] == 0 and status["stalled"]["backlog"] == 1
    first = status["stalled"]["oldest_age_seconds"]
    wait_for(lambda: checks.queue_status(by_worker, held_vhost, timeout=5)["stalled"]["oldest_age_seconds"] > first + 1,
             30, "the waiting message's age to grow", interval=0.5)

    work = client.get("/status?queues=default,io", HTTP_HOST="10.42.3.17:8000")
    assert work.status_code == 200, work.content
    assert (work.json()["waiting"], work.json()["in_flight"], work.json()["work"]) == (2, 3, 5), work.json()
    text = client.get("/metrics", HTTP_HOST="10.42.3.17:8000").content.decode()
    assert re.search(r'^deploykit_queue_in_flight_messages\{queue="default"\} 3\.0$', text, re.M), text
    assert re.search(r'^deploykit_queue_oldest_message_age_seconds\{queue="stalled"\} ', text, re.M), text
    assert not re.search(r'^deploykit_queue_oldest_message_age_seconds\{queue="default"\}', text, re.M), text


def test_management_api_down_gives_absent_figures_logged_once(rabbitmq_server, held_vhost, settings, client,
                                                              caplog):
    """The management API not answering (nothing listens on its port) leaves /status and /metrics working:
    the backlog is counted, in_flight is unknown (None on /status, no sample on /metrics, not 0), /status?queues=
    answers 503 (KEDA keeps the replicas rather than scale in under running work), the failure is logged once;
    when the API answers again, so do the figures."""
    import logging

    from app_services import free_port

    from deploykit.ops import checks

    settings.DEPLOYKIT_RABBITMQ_MANAGEMENT_URL = f"http://127.0.0.1:{free_port()}/"
    by_worker = checks.consumers(held_vhost, timeout=5)
    assert list(by_worker.values()) == [["default", "images", "io"]], by_worker
    with caplog.at_level(logging.INFO, logger="deploykit.checks"):
        status = checks.queue_status(by_worker, held_vhost, timeout=2)
        assert status["default"]["backlog"] == 0 and status["default"]["in_flight"] is None
        assert "oldest_age_seconds" not in status["default"]
        body = client.get("/status", HTTP_HOST="10.42.3.17:8000").json()
        assert body["broker"]["ok"] and body["queues"]["default"]["in_flight"] is None
        work = client.get("/status?queues=default", HTTP_HOST="10.42.3.17:8000")
        assert work.status_code == 503 and "in-flight messages are unknown" in work.json()["error"], work.content
        text = client.get("/metrics", HTTP_HOST="10.42.3.17:8000").content.decode()
        assert re.search(r'^deploykit_queue_messages\{queue="default"\} 0\.0$', text, re.M), text
        assert "deploykit_queue_in_flight_messages{" not in text, text
        failures = [r for r in caplog.records if "management API" in r.getMessage() and r.levelno == logging.ERROR]
        assert len(failures) == 1, [r.getMessage() for r in caplog.records]
        assert "unreachable" in failures[0].getMessage() and "guest" not in failures[0].getMessage()
        settings.DEPLOYKIT_RABBITMQ_MANAGEMENT_URL = rabbitmq_server.management_url
        wait_for(lambda: checks.queue_status(by_worker, held_vhost, timeout=5)["default"].get("in_flight") == 0, 60,
                 "in_flight back once the API answers", interval=0.5)
        assert any("answers again" in r.getMessage() for r in caplog.records)


def test_management_api_refuses_a_user_without_the_management_tag(rabbitmq_server, amqp_worker):
    """The broker URL's user logs in to the management API: without RabbitMQ's `management` tag it is refused
    (401), and the reason logged names the tag."""
    import urllib.error

    from kombu import Connection

    from deploykit.ops import rabbitmq_api

    rabbitmq_server.ctl("add_user", "untagged", "untagged-pass")
    rabbitmq_server.ctl("set_permissions", "-p", "/", "untagged", ".*", ".*", ".*")
    try:
        endpoint = rabbitmq_api.Endpoint.from_urls(
            rabbitmq_server.management_url, Connection(rabbitmq_server.url.replace("guest:guest", "untagged:untagged-pass")))
        with pytest.raises(urllib.error.HTTPError) as refused:
            endpoint.queues(5)
        assert refused.value.code == 401
        assert "`management` tag" in rabbitmq_api._reason(refused.value)
        rabbitmq_server.ctl("set_user_tags", "untagged", "management")
        assert {row["name"] for row in endpoint.queues(5)} >= {"default", "io", "images"}
    finally:
        rabbitmq_server.ctl("delete_user", "untagged")


def test_countdown_waits_in_the_broker_and_runs_once(rabbitmq_server, amqp_worker):
    """Native delayed delivery: a countdown task waits in RabbitMQ's celery_delayed_* queues (not in a worker's
    memory, where it would hold a prefetch slot under per-consumer QoS) and runs once when due."""
    import time

    from celery.result import AsyncResult

    from jobs import tasks
    from jobs.models import Execution

    sent = time.time()
    result = tasks.side_effect.apply_async((0,), countdown=12)

    def delayed() -> int:  # queue statistics are refreshed every few seconds: poll
        return sum(int(row[0]) for name, row in queue_rows(rabbitmq_server, "messages").items()
                   if name.startswith("celery_delayed_"))

    wait_for(lambda: delayed() == 1, 9, "the countdown message in a celery_delayed_* queue", interval=0.5)
    assert AsyncResult(result.id).state == "PENDING"  # 12 s = 8 + 4: in celery_delayed_3, then _2
    wait_for(lambda: AsyncResult(result.id).state == "SUCCESS", 90, "the countdown task", interval=0.5)
    runs = list(Execution.objects.filter(task_id=result.id))
    assert len(runs) == 1, runs
    assert runs[0].started.timestamp() - sent >= 11, runs[0].started.timestamp() - sent


def test_retry_with_backoff_completes(amqp_worker):
    """autoretry with exponential backoff (2 s, then 4 s): each retry is a countdown through native delayed
    delivery; the task runs three times under one id and succeeds."""
    from celery.result import AsyncResult

    from jobs import tasks
    from jobs.models import Execution

    result = tasks.side_effect_flaky.delay(2)
    wait_for(lambda: AsyncResult(result.id).state in ("SUCCESS", "FAILURE"), 90, "the flaky task", interval=0.5)
    assert AsyncResult(result.id).state == "SUCCESS" and AsyncResult(result.id).result == 2
    starts = [run.started.timestamp() for run in Execution.objects.filter(task_id=result.id).order_by("started")]
    assert len(starts) == 3, starts
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 1.5 and gaps[1] >= 3.5, gaps  # backoff 2 s, 4 s (countdowns are whole seconds)


def test_upgrade_from_classic_queues_refused_naming_the_way_out(rabbitmq_server, django_db_setup, logdir, tmp_path):
    """A vhost holding an earlier release's classic queues on direct exchanges: RabbitMQ refuses to redeclare
    them as quorum, and the worker exits naming DEPLOYKIT_RABBITMQ_QUEUE_TYPE and the migration; with
    DEPLOYKIT_RABBITMQ_QUEUE_TYPE=classic the same worker consumes there (docs/reliability.md)."""
    from app_services import AppProcess, app_env
    from kombu import Connection, Exchange, Queue

    rabbitmq_server.ctl("add_vhost", "classic-era")
    rabbitmq_server.ctl("set_permissions", "-p", "classic-era", "guest", ".*", ".*", ".*")
    url = rabbitmq_server.url.rstrip("/") + "/classic-era"
    with Connection(url) as conn:
        channel = conn.channel()
        for name in ("default", "io", "images"):  # as the classic-queue releases declared them
            Queue(name, Exchange(name, "direct"), name, channel=channel).declare()
    heartbeat = tmp_path / "hb"
    env = dict(CELERY_BROKER_URL=url, CELERY_WORKER_QUEUES="default", CELERY_WORKER_CONCURRENCY="1",
               DEPLOYKIT_HEARTBEAT_FILE=heartbeat)
    refused = AppProcess("deploykit-worker", {k: v for k, v in app_env(**env).items() if k != "CELERY_RESULT_BACKEND"},
                         logdir, name="amqp-worker-refused").start()
    try:
        wait_for(lambda: refused.proc.poll() is not None, 90, "the worker to refuse the classic-era vhost")
        assert refused.proc.returncode != 0
        assert "or set DEPLOYKIT_RABBITMQ_QUEUE_TYPE=classic until then" in refused.output(), refused.output()[-3000:]
    finally:
        refused.stop()
    classic = AppProcess("deploykit-worker", {k: v for k, v in app_env(**env, DEPLOYKIT_RABBITMQ_QUEUE_TYPE="classic").items()
                                          if k != "CELERY_RESULT_BACKEND"}, logdir, name="amqp-worker-classic").start()
    try:
        wait_for(lambda: heartbeat.exists() or classic.proc.poll() is not None, 90, "the classic worker's heartbeat")
        assert classic.proc.poll() is None, classic.output()[-3000:]
    finally:
        classic.stop()
    types = rabbitmq_server.ctl("list_queues", "-p", "classic-era", "--no-table-headers", "name", "type")
    assert "quorum" not in types, types
