"""A black-holed broker: redis-server SIGSTOPped (its sockets stay open and the kernel still accepts
connections, but nothing answers: a half-open connection, a frozen VM, a network partition that drops
packets). Unlike a refused connection nothing fails fast here; only the socket timeouts
(config/settings.py, docs/reliability.md#timeouts) turn the wait into an error. A task POST must answer
503 within the publish deadline (DEPLOYKIT_PUBLISH_DEADLINE), leave no TaskRecord behind (so no
id the API refused can later read PENDING), and the API must work again once Redis is resumed."""

import json
import os
import signal
import time
import urllib.request
import uuid

import pytest
from app_services import Redis, free_port, port_open, wait_for

from jobs.models import TaskRecord

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
HEADERS = {"Host": "app.example.com", "X-Forwarded-Proto": "https", "Content-Type": "application/json"}
MARGIN = 1.5  # seconds over the deadline: process scheduling on a busy test machine


def post_task(port: int, args=(1, 2), timeout: float = 120) -> tuple[int, dict, float]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/tasks/", method="POST", headers=HEADERS,
                                     data=json.dumps({"task": "add", "args": list(args)}).encode())
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read() or b"{}")
    return status, body, time.monotonic() - started


def get(port: int, path: str, timeout: float = 120) -> tuple[int, dict, float]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=HEADERS)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read() or b"{}")
    return status, body, time.monotonic() - started


def blackholed(broker: Redis):
    """SIGSTOP the redis-server until the block ends: connections stay open, the kernel still accepts new
    ones, nothing answers."""
    import contextlib

    @contextlib.contextmanager
    def frozen():
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)

    return frozen()


def assert_refused_in_time(port: int, deadline: float, what: str) -> float:
    before = set(TaskRecord.objects.values_list("id", flat=True))
    status, refused, took = post_task(port, (3, 4))
    print(f"broker black-holed ({what}): POST /api/tasks/ answered {status} in {took:.2f} s (deadline {deadline} s)")
    assert status == 503, refused
    assert "Nothing was queued" in refused["error"], refused
    assert took < deadline + MARGIN, f"{took:.2f} s"
    # The refused POST left no row behind, so no id can later read PENDING.
    assert set(TaskRecord.objects.values_list("id", flat=True)) == before
    return took


def test_blackholed_broker_post_is_503_within_deadline_and_leaves_no_row(start_app, tmp_path):
    from django.conf import settings

    deadline = settings.DEPLOYKIT_PUBLISH_DEADLINE
    broker = Redis(tmp_path).start()
    assert broker.ping()  # it answers: what follows is the black hole's doing
    port = free_port()
    start_app("deploykit-web", name="web-blackhole", PORT=port, GUNICORN_WORKERS=1, GUNICORN_THREADS=2,
              CELERY_BROKER_URL=broker.url, MEDIA_ROOT=str(tmp_path / "media"))
    wait_for(lambda: port_open(port), 90, "gunicorn")

    # Worst case first: a fresh web process, whose first publish also connects to the result store.
    with blackholed(broker):
        assert_refused_in_time(port, deadline, "first request of a process")

    def accepted():
        status, body, took = post_task(port, (5, 6), timeout=30)
        accepted.body, accepted.took = body, took
        return status == 202

    started = time.monotonic()
    wait_for(accepted, 60, "a 202 after SIGCONT", interval=0.5)
    print(f"broker resumed: POST accepted again after {time.monotonic() - started:.2f} s "
          f"(that POST took {accepted.took:.2f} s)")
    task_url = accepted.body["url"]

    # Then with established connections (pooled broker connection, result-store subscription).
    with blackholed(broker):
        assert_refused_in_time(port, deadline, "established connections")
        # Reading a state needs the (black-holed) result store: 503 within the deadline as well.
        status, body, took = get(port, task_url)
        print(f"broker black-holed: GET {task_url} answered {status} in {took:.2f} s")
        assert status == 503, body
        assert took < deadline + MARGIN, f"{took:.2f} s"

    wait_for(accepted, 60, "a 202 after the second SIGCONT", interval=0.5)
    status, body, _ = get(port, task_url)
    assert status == 200 and body["state"] != "FAILURE", body  # the accepted task is still known
    broker.stop()
