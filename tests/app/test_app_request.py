"""deploykit.delivery.request: a task killed by a connection-loss cancel it was not part of is redelivered, while a
real revoke still ends REVOKED. Real Celery requests on real messages (kombu's in-memory broker) and the
real result backend (redis-server); the Compose-level proof is tests/chaos (redis-restart)."""

import uuid

import pytest
from billiard.einfo import ExceptionInfo
from billiard.exceptions import Terminated
from celery.worker.request import revoked_tasks
from kombu import Connection
from kombu.utils import symbol_by_name

from deploykit.delivery.request import RedeliverUnrevokedRequest
from jobs import tasks

pytestmark = pytest.mark.integration


def request_for(task_id: str):
    """The worker's request object for one `sleep` task message, as the worker's strategy builds it."""
    app = tasks.sleep.app
    with Connection("memory://") as conn:
        queue = conn.SimpleQueue(f"request-{task_id}")
        headers, properties, body, _ = app.amqp.as_task_v2(task_id, tasks.sleep.name, args=(0,))
        queue.put(body, headers=headers, serializer="json", **properties)
        message = queue.get(timeout=5)
        queue.close()
        assert issubclass(symbol_by_name(tasks.sleep.Request), RedeliverUnrevokedRequest)  # every task of the app
        request = RedeliverUnrevokedRequest(message, on_ack=message.ack_log_error, app=app, task=tasks.sleep)
        return request, message


def terminated() -> ExceptionInfo:
    try:
        raise Terminated(15)
    except Terminated:
        return ExceptionInfo()


def test_a_task_killed_without_a_revoke_is_left_for_redelivery(redis_server):
    task_id = str(uuid.uuid4())
    request, message = request_for(task_id)
    request.on_failure(terminated())
    assert not request.acknowledged and not message.acknowledged  # the broker redelivers it
    assert tasks.sleep.AsyncResult(task_id).state == "PENDING"  # not REVOKED


def test_a_revoked_task_still_ends_revoked_and_acknowledged(redis_server):
    task_id = str(uuid.uuid4())
    request, message = request_for(task_id)
    revoked_tasks.add(task_id)
    try:
        request.on_failure(terminated())
    finally:
        revoked_tasks.discard(task_id)
    assert request.acknowledged and message.acknowledged
    assert tasks.sleep.AsyncResult(task_id).state == "REVOKED"
