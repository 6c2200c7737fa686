"""deploykit.delivery.results against a real redis-server: a task state is written in one round trip, with
Celery's guarantees kept (a SUCCESS is never overwritten, expiries, the PUBLISH that wakes a waiter)."""

import json

import pytest
from celery import Celery, states
from celery.backends.redis import RedisBackend as CeleryRedisBackend

from deploykit.delivery import results

pytestmark = pytest.mark.integration


@pytest.fixture
def app(redis_server):
    app = Celery("results-test", set_as_current=False)
    app.conf.update(result_backend=redis_server.url, result_serializer="json", result_expires=600,
                    result_failure_expires=60)
    results.install(app)
    return app


def stored(backend, task_id):
    return json.loads(backend.client.get(backend.get_key_for_task(task_id)))


def test_the_redis_backend_is_ours_and_other_backends_are_celerys(app, redis_server):
    assert type(app.backend) is results.RedisBackend
    other = Celery("other", set_as_current=False)
    other.conf.result_backend = "cache+memory://"
    results.install(other)
    assert type(other.backend).__name__ == "CacheBackend"
    for given in ({"backend": "celery.backends.redis:RedisBackend"}, {}):  # a project's own choice is kept
        chosen = Celery("chosen", set_as_current=False, **given)
        chosen.backend_cls = None if given else CeleryRedisBackend
        results.install(chosen)
        assert type(chosen.backend) is CeleryRedisBackend


def test_one_command_per_state_and_the_stored_states_are_celerys(app):
    backend = app.backend
    backend.store_result("warm-up", None, states.STARTED)  # loads the script once
    sent = []
    execute = backend.client.execute_command

    def counting(*args, **options):
        sent.append(args[0])
        return execute(*args, **options)

    backend.client.execute_command = counting
    backend.store_result("t1", None, states.STARTED)
    backend.store_result("t1", 42, states.SUCCESS)
    assert sent == ["EVALSHA", "EVALSHA"]
    meta = stored(backend, "t1")
    assert meta["status"] == "SUCCESS" and meta["result"] == 42 and meta["task_id"] == "t1"
    assert app.AsyncResult("t1").get(timeout=5) == 42
    assert 590 <= backend.client.ttl(backend.get_key_for_task("t1")) <= 600


def test_a_late_write_never_overwrites_a_success(app):
    backend = app.backend
    backend.store_result("t2", "done", states.SUCCESS)
    backend.store_result("t2", None, states.STARTED)  # a lost worker's late write
    backend.store_result("t2", "boom", states.FAILURE)
    assert stored(backend, "t2")["status"] == "SUCCESS" and stored(backend, "t2")["result"] == "done"
    backend.store_result("t3", None, states.STARTED)
    backend.store_result("t3", ValueError("boom"), states.FAILURE)  # other states are overwritten
    assert stored(backend, "t3")["status"] == "FAILURE"
    assert 50 <= backend.client.ttl(backend.get_key_for_task("t3")) <= 60  # result_failure_expires


def test_the_write_is_published_to_waiters(app):
    backend = app.backend
    pubsub = backend.client.pubsub()
    key = backend.get_key_for_task("t4")
    pubsub.subscribe(key)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    backend.store_result("t4", 7, states.SUCCESS)
    message = pubsub.get_message(timeout=5)
    assert message and json.loads(message["data"])["result"] == 7
    pubsub.close()


def test_another_serializer_is_left_to_celery(redis_server):
    app = Celery("pickled", set_as_current=False)
    app.conf.update(result_backend=redis_server.url, result_serializer="pickle",
                    result_accept_content=["pickle", "json"], accept_content=["json", "pickle"])
    results.install(app)
    backend = app.backend
    sent = []
    execute = backend.client.execute_command
    backend.client.execute_command = lambda *a, **o: sent.append(a[0]) or execute(*a, **o)
    backend.store_result("t5", {1, 2}, states.SUCCESS)
    assert "EVALSHA" not in sent and app.AsyncResult("t5").result == {1, 2}
