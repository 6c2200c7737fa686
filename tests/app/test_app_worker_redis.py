"""Integration: a real redis-server and a real prefork worker (deploykit-worker), end to end."""

import io
import subprocess

import pytest
from app_services import APP, BIN, poll_json, wait_for, wait_state
from celery.result import AsyncResult
from django.utils import timezone
from PIL import Image

from jobs import tasks
from deploykit.models import BeatTick
from deploykit.tasks import beat_tick
from jobs.models import SentEmail, UploadedImage

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def image_file(size=(1600, 1200), fmt="PNG", name="photo.png") -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, fmt)
    buffer.seek(0)
    buffer.name = name
    return buffer


@pytest.fixture
def pod_client():
    """Plain HTTP with a pod-IP Host header, as a Prometheus scrape arrives."""
    from django.test import Client

    return Client(HTTP_HOST="10.42.3.17:8000")


def meta(task_id: str) -> dict:
    return AsyncResult(task_id).backend.get_task_meta(task_id)


@pytest.mark.parametrize(
    "body,result",
    [
        ({"task": "add", "args": [2, 3]}, 5),
        ({"task": "multiply", "args": [6, 7]}, 42),
        ({"task": "sleep", "args": [0.2]}, 0.2),
        ({"task": "noop"}, None),
    ],
)
def test_demo_tasks_through_api(api, worker, body, result):
    response = api.post("/api/tasks/", body, content_type="application/json")
    assert response.status_code == 202
    data = poll_json(api, response.json()["url"], lambda b: b["state"] in ("SUCCESS", "FAILURE"))
    assert data["state"] == "SUCCESS", data
    assert data["result"] == result and data["error"] is None
    assert data["task"] == body["task"]
    assert meta(data["id"])["queue"] == "default"


def test_image_workflow_resize_thumbnails_finalize(api, worker):
    response = api.post("/api/images/", {"file": image_file()})
    assert response.status_code == 202
    data = poll_json(api, response.json()["url"], lambda b: b["status"] in ("done", "failed"))
    assert data["status"] == "done", data
    assert data["width"] == 1600 and data["height"] == 1200
    assert set(data["thumbnails"]) == {"64", "128", "256"}
    resized = api.get(data["resized_url"])
    assert resized.status_code == 200 and resized["Content-Type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(b"".join(resized.streaming_content)))
    assert max(picture.size) == 1024
    thumb = api.get(data["thumbnails"]["64"])
    assert max(Image.open(io.BytesIO(b"".join(thumb.streaming_content))).size) == 64
    image = UploadedImage.objects.get(id=data["id"])
    assert image.resized.name == f"images/{image.id}/resized.jpg"


@pytest.mark.parametrize(
    "content,reason",
    [
        # a PNG header followed by garbage: identified as an image by the web tier, fails to decode
        (lambda: image_file().getvalue()[:200], "corrupt or truncated image"),
        # a decompression bomb: 3000x3000 = 9 Mpx > IMAGE_MAX_PIXELS (4 Mpx in the tests)
        (lambda: image_file(size=(3000, 3000)).getvalue(), "too many pixels"),
    ],
    ids=["truncated", "decompression-bomb"],
)
def test_bad_images_end_as_failed_with_reason(api, worker, content, reason):
    file = io.BytesIO(content())
    file.name = "bad.png"
    response = api.post("/api/images/", {"file": file})
    assert response.status_code == 202
    data = poll_json(api, response.json()["url"], lambda b: b["status"] in ("done", "failed"))
    assert data["status"] == "failed"
    assert reason in data["error"]
    assert data["resized_url"] is None
    assert api.get(f"/api/images/{data['id']}/download").status_code == 409


def test_report_built_in_background_and_downloaded(api, worker):
    for args in ([1, 2], [3, 4]):
        api.post("/api/tasks/", {"task": "add", "args": args}, content_type="application/json")
    response = api.post("/api/reports/", {"kind": "tasks"}, content_type="application/json")
    data = poll_json(api, response.json()["url"], lambda b: b["status"] in ("done", "failed"))
    assert data["status"] == "done" and data["rows"] == 1  # aggregates: both tasks in one row
    download = api.get(data["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv"
    assert "attachment" in download["Content-Disposition"]
    csv_text = b"".join(download.streaming_content).decode()
    assert csv_text.splitlines() == ["day,task,tasks", f"{timezone.localdate()},add,2"]


def test_images_report(api, worker):
    response = api.post("/api/reports/", {"kind": "images"}, content_type="application/json")
    data = poll_json(api, response.json()["url"], lambda b: b["status"] in ("done", "failed"))
    assert data["status"] == "done" and data["rows"] == 0


def test_send_email_over_real_smtp_on_io_queue(worker, mailbox):
    result = tasks.send_email.delay(["ops@example.com"], "Hello", "Body text")
    assert wait_state(result).state == "SUCCESS" and result.result == "sent"
    assert meta(result.id)["queue"] == "io"
    wait_for(lambda: mailbox, 10, "the e-mail to arrive")
    message = mailbox[0]
    assert message["to"] == ["ops@example.com"]
    assert message["message"]["Subject"] == "Hello"
    assert message["message"]["From"] == "app@example.com"
    assert message["message"].get_payload().strip() == "Body text"
    # idempotent: the same key does not send twice
    again = tasks.send_email.delay(["ops@example.com"], "Hello", "Body text", key=result.id)
    assert wait_state(again).result == "already-sent"
    assert len(mailbox) == 1


def test_send_email_retries_with_backoff_until_smtp_is_back(worker, smtp_server):
    smtp_server.stop()
    try:
        result = tasks.send_email.delay(["ops@example.com"], "Retry me", "x")
        wait_state(result, states=("RETRY",), timeout=30)
    finally:
        smtp_server.messages.clear()
        smtp_server.start()
    assert wait_state(result, timeout=60).state == "SUCCESS"
    assert meta(result.id)["retries"] >= 1
    assert [m["message"]["Subject"] for m in smtp_server.messages] == ["Retry me"]
    assert SentEmail.objects.filter(key=result.id).exists()


def test_digest_mail(worker, mailbox, settings):
    # The worker reads DIGEST_RECIPIENTS from its own environment (none): the digest is skipped there.
    result = tasks.send_digest.delay()
    assert wait_state(result).result == "skipped: DIGEST_RECIPIENTS is empty"
    # Run the digest here with recipients: it queues send_email on the io queue, which the worker sends.
    settings.DIGEST_RECIPIENTS = ["team@example.com"]
    assert tasks.send_digest() == "queued"
    wait_for(lambda: mailbox, 30, "the digest e-mail")
    assert mailbox[0]["message"]["Subject"].startswith("Daily digest")
    assert "Images uploaded:" in mailbox[0]["message"].get_payload()


def test_routing_to_queues(worker):
    image_task = tasks.make_thumbnail.delay("00000000-0000-0000-0000-000000000000", 64)
    assert wait_state(image_task).state == "FAILURE"  # no such image, but it ran on the images queue
    assert meta(image_task.id)["queue"] == "images"
    demo_task = tasks.noop.delay()
    wait_state(demo_task)
    assert meta(demo_task.id)["queue"] == "default"


def test_soft_time_limit_ends_failed(worker):
    result = tasks.sleep.apply_async(args=[10], soft_time_limit=1, time_limit=5)
    assert wait_state(result, timeout=30).state == "FAILURE"
    assert "SoftTimeLimitExceeded" in repr(result.result)


def test_worker_killing_task_is_redelivered_a_bounded_number_of_times(worker):
    """crash() kills its pool process; acks_late + reject_on_worker_lost requeue it; after
    DEPLOYKIT_MAX_REDELIVERIES (1 in the tests) redeliveries it ends FAILED instead of looping."""
    from deploykit.models import TaskDelivery

    result = tasks.crash.delay()
    assert wait_state(result, timeout=90).state == "FAILURE"
    assert "RedeliveryLimitExceeded" in repr(result.result)
    assert "DEPLOYKIT_MAX_REDELIVERIES=1" in str(result.result)
    assert TaskDelivery.objects.get(key=f"{result.id}:0").count == 2
    # the worker survived (a new pool process) and keeps consuming
    assert tasks.add.delay(1, 1).get(timeout=30) == 2


def test_beat_tick_task_records_last_run(worker):
    result = beat_tick.delay()
    wait_state(result)
    tick = BeatTick.objects.get(name="beat")
    assert tick.count == 1 and tick.worker.startswith("default-io-images@")


def test_worker_healthcheck_sees_fresh_heartbeat(worker):
    env = {"DEPLOYKIT_HEARTBEAT_FILE": str(worker.heartbeat), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([BIN / "deploykit-worker-healthcheck"], cwd=APP, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.startswith("ok: heartbeat")


def test_status_sees_database_broker_workers(api, worker):
    BeatTick.objects.create(name="beat", last_run=timezone.now())
    data = api.get("/status").json()
    assert data["database"]["ok"] and data["broker"]["ok"]
    assert any(name.startswith("default-io-images@") for name in data["workers"])
    assert data["beat"]["ok"] and data["ok"]
    assert api.get("/status").status_code == 200
    # each queue the worker consumes, with its consumer and backlog (an empty Redis queue has no list: 0)
    assert set(data["queues"]) >= {"default", "io", "images"}
    assert all(q["consumers"] == data["workers"] and isinstance(q["backlog"], int) for q in data["queues"].values())


def test_status_queue_backlog_and_declared_queue_without_consumer(worker, settings):
    from deploykit.ops import checks

    settings.DEPLOYKIT_CONSUMED_QUEUES = ["default", "reports"]
    by_worker = checks.consumers(timeout=5)
    status = checks.queue_status({**by_worker}, timeout=5)
    # declared by the deployment, consumed by none
    assert status["reports"] == {"consumers": [], "backlog": 0, "in_flight": 0}
    from celery import current_app

    with current_app.connection_for_write() as conn:  # three messages nobody consumes
        for _ in range(3):
            conn.default_channel.basic_publish(conn.default_channel.prepare_message("{}"), exchange="",
                                               routing_key="reports")
    assert checks.queue_status(by_worker, timeout=5)["reports"]["backlog"] == 3
    with current_app.connection_for_write() as conn:
        conn.default_channel.queue_purge("reports")


def test_in_flight_counts_the_messages_workers_hold(worker, pod_client):
    """A running task has left the queue's list: the backlog misses it, in_flight (Redis' unacked entries by
    queue) counts it while it runs, on /status's collector and on /metrics, and drops when it is acknowledged."""
    import re

    from deploykit.ops import checks

    by_worker = checks.consumers(timeout=5)
    assert checks.queue_status(by_worker, timeout=5)["default"]["in_flight"] == 0
    running = tasks.sleep.delay(4)
    wait_state(running, ("STARTED",), timeout=30)
    status = checks.queue_status(by_worker, timeout=5)
    assert status["default"]["in_flight"] == 1 and status["default"]["backlog"] == 0
    assert status["io"]["in_flight"] == 0
    text = pod_client.get("/metrics").content.decode()
    assert re.search(r'^deploykit_queue_in_flight_messages\{queue="default"\} 1\.0$', text, re.M), text
    # the autoscaler's view of the pool consuming default and io: one task of work although both lists are empty
    # (the autoscaler's read answers the last snapshot and refreshes it behind: the next reads see the task)
    work = wait_for(lambda: (lambda r: r if r.json().get("work") else None)(pod_client.get("/status?queues=default,io")),
                    10, "the running task in the pool's work", interval=0.2)
    assert work.status_code == 200 and (work.json()["work"], work.json()["waiting"]) == (1, 0), work.content
    wait_state(running, ("SUCCESS",), timeout=30)
    wait_for(lambda: checks.queue_status(by_worker, timeout=5)["default"]["in_flight"] == 0, 10,
             "the acknowledged task to leave in_flight", interval=0.2)
    wait_for(lambda: pod_client.get("/status?queues=default,io").json()["work"] == 0, 10,
             "the pool's work back to 0", interval=0.2)
    refused = pod_client.get("/status?queues=default,nosuch")
    assert refused.status_code == 400 and "unknown: nosuch" in refused.json()["error"]


def test_metrics_show_backlog_oldest_age_consumers_pools_and_beat(pod_client, worker, settings):
    """The collector's gauges on /metrics, from a real broker and worker: a queue nobody consumes holds two
    messages published over a second ago."""
    import re
    import time

    from celery import current_app

    settings.DEPLOYKIT_CONSUMED_QUEUES = ["default", "stalled"]
    BeatTick.objects.create(name="beat", last_run=timezone.now())
    from kombu import Queue

    stalled = Queue("stalled", routing_key="stalled")  # not in task_queues: no worker consumes it
    tasks.add.apply_async((1, 1), queue=stalled)
    tasks.add.apply_async((2, 2), queue=stalled)
    time.sleep(1.2)  # the age under test: the oldest message must be over a second old
    try:
        text = pod_client.get("/metrics").content.decode()
    finally:
        with current_app.connection_for_write() as conn:
            conn.default_channel.queue_purge("stalled")

    def value(sample: str) -> float:
        match = re.search(r"^" + re.escape(sample) + r" (\S+)$", text, re.M)
        assert match, f"{sample} not in /metrics"
        return float(match.group(1))

    assert value('deploykit_queue_messages{queue="stalled"}') == 2
    assert value('deploykit_queue_consumers{queue="stalled"}') == 0
    assert value('deploykit_queue_consumers{queue="default"}') == 1
    assert 1.0 <= value('deploykit_queue_oldest_message_age_seconds{queue="stalled"}') < 60
    assert value('deploykit_queue_oldest_message_age_seconds{queue="default"}') == 0
    assert value('deploykit_pool_workers{pool="default-io-images"}') == 1
    assert value("deploykit_broker_up") == 1 and value("deploykit_database_up") == 1
    assert abs(value("deploykit_beat_last_tick_timestamp_seconds") - time.time()) < 60


def scrape(url: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a Prometheus endpoint."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_worker_metrics_count_outcomes_queue_wait_and_run_time(worker):
    """The worker's own endpoint (DEPLOYKIT_WORKER_METRICS_PORT), from its main process with prefork children:
    a success, a failure and a task that retries once then succeeds, each counted once by outcome."""
    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    before = scrape(worker.metrics_url)
    ok, bad, flaky = tasks.add.delay(2, 3), tasks.add.delay("a", 1), tasks.side_effect_flaky.delay(1)
    assert ok.get(timeout=60) == 5 and flaky.get(timeout=60) == 1
    wait_state(bad, ("FAILURE",))
    after: dict = {}

    def counted() -> bool:  # the child stores the result before the main process acknowledges
        after.update(scrape(worker.metrics_url))
        return (delta("deploykit_tasks_finished_total", task="jobs.tasks.side_effect_flaky", outcome="success") >= 1
                and delta("deploykit_tasks_finished_total", task="jobs.tasks.add", outcome="failure") >= 1)

    wait_for(counted, 30, "the worker to count the three tasks", interval=0.2)
    add, flaky_name = "jobs.tasks.add", "jobs.tasks.side_effect_flaky"
    assert delta("deploykit_tasks_finished_total", task=add, outcome="success") == 1
    assert delta("deploykit_tasks_finished_total", task=add, outcome="failure") == 1
    assert delta("deploykit_tasks_finished_total", task=flaky_name, outcome="retry") == 1
    assert delta("deploykit_tasks_finished_total", task=flaky_name, outcome="success") == 1
    assert delta("deploykit_task_runtime_seconds_count", task=add) == 2
    assert delta("deploykit_task_queue_wait_seconds_count", task=add) == 2
    assert delta("deploykit_task_queue_wait_seconds_count", task=flaky_name) == 2  # the retry was published anew
    assert delta("deploykit_task_queue_wait_seconds_bucket", task=flaky_name, le="+Inf") == 2
    assert ("deploykit_worker_tasks", (("state", "running"),)) in after


def test_cleanup_removes_expired_rows_and_files(api, worker, settings):
    response = api.post("/api/images/", {"file": image_file(size=(300, 200))})
    data = poll_json(api, response.json()["url"], lambda b: b["status"] in ("done", "failed"))
    image = UploadedImage.objects.get(id=data["id"])
    UploadedImage.objects.filter(id=image.id).update(created=image.created.replace(year=2000))
    result = tasks.cleanup.delay()
    removed = result.get(timeout=60)
    assert removed["images"] == 1 and removed["files"] == 5  # original, resized, 3 thumbnails
    assert not UploadedImage.objects.filter(id=image.id).exists()
