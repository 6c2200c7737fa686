"""The same flows over a real RabbitMQ broker (amqp://), with results in the database (django-db)."""

import io
import os

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

    heartbeat = tmp_path_factory.mktemp("amqp") / "hb"
    env = app_env(CELERY_BROKER_URL=rabbitmq_server.url, CELERY_WORKER_QUEUES="default,io,images",
                  CELERY_WORKER_CONCURRENCY="2", CELERY_WORKER_HEARTBEAT_FILE=heartbeat)
    env.pop("CELERY_RESULT_BACKEND", None)  # amqp:// -> the django-db default
    proc = AppProcess("start-worker", env, logdir, name="amqp-worker").start()
    saved = {"broker_url": os.environ["CELERY_BROKER_URL"], "result_backend": settings.CELERY_RESULT_BACKEND}
    try:
        wait_for(lambda: heartbeat.exists() or proc.proc.poll() is not None, 120, "amqp worker heartbeat")
        assert proc.proc.poll() is None, proc.output()[-3000:]
        switch_broker(app, broker_url=rabbitmq_server.url, result_backend="django-db")
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
