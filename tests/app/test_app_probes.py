"""Health endpoints: any Host header, plain HTTP, even with ALLOWED_HOSTS and SSL redirect on."""

import pytest
from django.db import connections
from django.test import Client

from deploykit.ops import checks
from deploykit.models import BeatTick

pytestmark = pytest.mark.django_db

POD_IP = "10.42.3.17:8000"


@pytest.fixture
def pod():
    """Plain HTTP with a pod-IP Host header, like a kubelet probe or a Prometheus scrape."""
    return Client(HTTP_HOST=POD_IP)


def test_production_settings_are_on(settings):
    assert settings.SECURE_SSL_REDIRECT and "10.42.3.17" not in settings.ALLOWED_HOSTS


def test_other_paths_are_redirected_or_refused(pod):
    assert pod.get("/").status_code == 400  # DisallowedHost
    assert Client(HTTP_HOST="app.example.com").get("/").status_code == 301  # plain HTTP -> HTTPS


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_healthz_any_host_plain_http(pod, path):
    response = pod.get(path)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_head_request(pod):
    assert pod.head("/healthz").status_code == 200


def test_readyz_ok(pod):
    response = pod.get("/readyz")
    assert response.status_code == 200 and response.json() == {"database": "ok"}


def test_readyz_database_down_503(pod, monkeypatch, caplog):
    def broken_cursor(*args, **kwargs):  # what psycopg raises when PostgreSQL is unreachable
        raise Exception("connection to server at db.internal failed: Connection refused")

    monkeypatch.setattr(connections["default"], "cursor", broken_cursor)
    response = pod.get("/readyz")
    assert response.status_code == 503
    message = response.json()["database"]
    # A stable sentence naming the database; the driver's text goes to the log only.
    assert message.startswith("database sqlite /") and message.endswith("is unavailable (details in the web process log)")
    assert "Connection refused" not in message
    assert "Connection refused" in caplog.text


def test_describe_database_never_shows_the_password(settings):
    from django.db import connections as conns

    params = {**conns["default"].settings_dict, "HOST": "db.internal", "PORT": "5432", "NAME": "app",
              "PASSWORD": "hunter2-long"}
    conn = conns["default"]
    saved = conn.settings_dict
    conn.settings_dict = params
    try:
        assert checks.describe_database() == "sqlite db.internal:5432/app"
    finally:
        conn.settings_dict = saved


def test_metrics_any_host(pod):
    pod.get("/healthz")
    response = pod.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content


def test_post_to_probe_path_is_not_short_circuited(pod):
    assert pod.post("/healthz").status_code == 400  # goes through host validation like everything else


@pytest.fixture
def dead_broker(monkeypatch):
    from celery import Celery

    from app_services import free_port

    monkeypatch.delenv("CELERY_BROKER_URL")  # Celery prefers it over the app's own configuration
    app = Celery("dead", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    monkeypatch.setattr(checks, "_celery_app", lambda: app)
    return app


def test_status_503_when_broker_down(pod, dead_broker):
    response = pod.get("/status")
    assert response.status_code == 503
    data = response.json()
    assert data["database"]["ok"] is True
    port = dead_broker.connection_for_write().port
    # A stable sentence naming the broker, never the driver's text ("Error 111 ... Connection refused").
    assert data["broker"] == {"ok": False, "error": f"task broker redis 127.0.0.1:{port} is unavailable "
                                                    "(details in the web process log)"}
    assert data["workers"] == []
    assert data["beat"] == {"ok": False, "last_run": None, "error": "beat has not run yet"}
    assert data["ok"] is False


def test_beat_status(settings):
    from django.utils import timezone

    BeatTick.objects.create(name="beat", last_run=timezone.now() - timezone.timedelta(hours=1))
    stale = checks.beat_status()
    assert stale["ok"] is False and "older than" in stale["error"]
    BeatTick.objects.update(last_run=timezone.now())
    assert checks.beat_status()["ok"] is True
    settings.DEPLOYKIT_BEAT_LAST_RUN = None
    assert checks.beat_status()["ok"] is True
    settings.DEPLOYKIT_BEAT_LAST_RUN = "jobs.models.nope"
    assert checks.beat_status()["ok"] is False


def test_status_database_down(pod, monkeypatch):
    monkeypatch.setattr(checks, "check_database", lambda: {"ok": False, "error": "db down"})
    data = pod.get("/status").json()
    assert data["beat"]["error"] == "database down" and data["ok"] is False


def test_probe_paths_setting(settings):
    from deploykit.ops.middleware import probe_paths

    settings.DEPLOYKIT_PROBE_PATHS = ["/healthz"]
    assert probe_paths() == ("/healthz",)


def test_admin_login_page(settings):
    client = Client(HTTP_HOST="app.example.com")
    response = client.get(f"/{settings.ADMIN_URL}login/", secure=True)
    assert response.status_code == 200 and b"csrfmiddlewaretoken" in response.content


def test_ensure_superuser_in_process(settings):
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    call_command("ensure_superuser")  # unset: no-op
    settings.DJANGO_SUPERUSER_USERNAME = "other"
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD must be set"):
        call_command("ensure_superuser")
    settings.DJANGO_SUPERUSER_PASSWORD = "a-long-password-1"
    call_command("ensure_superuser")
    call_command("ensure_superuser")
    user = get_user_model().objects.get(username="other")
    assert user.is_superuser and user.check_password("a-long-password-1")


def test_probes_answer_when_the_project_urlconf_does_not_include_them(pod, settings):
    """A project that only applied deploykit's settings (no include("deploykit.urls")) still has probes."""
    settings.ROOT_URLCONF = "urls_without_probes"
    assert pod.get("/healthz").json() == {"status": "ok"}
    assert pod.get("/readyz").status_code == 200
    assert pod.get("/nothing-here").status_code == 400  # everything else: the project's own handling


@pytest.mark.parametrize("path", ["/status", "/status/", "//status", "/metrics", "/metrics/", "//metrics"])
@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_operator_endpoints_are_refused_through_a_proxy(pod, monkeypatch, path, header):
    monkeypatch.setattr(checks, "check_broker", lambda: {"ok": False, "error": "down"})
    raw = {"PATH_INFO": path}  # as gunicorn hands it over (the test client would read `//x` as a host)
    assert pod.get("/", **raw, **{header: "203.0.113.9"}).status_code == 404
    assert pod.post("/", **raw, **{header: "203.0.113.9"}).status_code == 404
    assert pod.get("/", **raw).status_code in (200, 503)  # from inside: served, however spelled


def test_probes_stay_public_through_a_proxy(pod):
    assert pod.get("/healthz", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200


def test_collector_runs_one_collection_for_concurrent_callers():
    import threading
    import time

    from deploykit.ops.collector import Collector

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return {"ok": True, "n": len(calls)}

    shared = Collector(max_age=60, source=slow)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(shared.snapshot()[0])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and answers == [{"ok": True, "n": 1}] * 8
    stale = Collector(max_age=0, source=slow)
    stale.snapshot(), stale.snapshot()
    assert len(calls) == 3


def test_the_autoscalers_read_gets_the_last_snapshot_at_once_while_a_thread_takes_the_next():
    """KEDA's metrics-api client gives up after 3 s; a collection waits up to 1 s on a broadcast, longer on a
    loaded node. Only a process's first read waits."""
    import threading
    import time

    from deploykit.ops.collector import Collector

    calls, release = [], threading.Event()

    def gated():
        calls.append(1)
        if len(calls) > 1:
            release.wait(10)
        return {"n": len(calls)}

    shared = Collector(max_age=0, source=gated)
    assert shared.snapshot(wait=False)[0] == {"n": 1}  # the first read has nothing to serve: it waits
    started = time.monotonic()
    assert shared.snapshot(wait=False)[0] == {"n": 1}  # stale: served at once, a refresh started
    assert shared.snapshot(wait=False)[0] == {"n": 1}  # that refresh still runs: no second one
    assert time.monotonic() - started < 1 and len(calls) == 2
    release.set()
    deadline = time.monotonic() + 5
    while shared.snapshot(wait=False)[0] == {"n": 1} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert shared.snapshot()[0]["n"] >= 2


def test_status_says_how_old_its_snapshot_is(pod, monkeypatch):
    from deploykit.ops import collector

    monkeypatch.setattr(collector, "shared", collector.Collector(max_age=60, source=lambda: {"ok": True, "n": 1}))
    first = pod.get("/status").json()
    assert first == {"ok": True, "n": 1, "age_seconds": 0.0}


def test_metrics_without_the_projects_own_view(pod, monkeypatch):
    """A project whose URLconf has no /metrics (no django-prometheus) still gets deploykit's."""
    from django.urls import Resolver404

    from deploykit.ops import middleware

    real = middleware.resolve

    def project_without_metrics(path, urlconf=None):
        if urlconf is None and path == "/metrics":
            raise Resolver404(path)
        return real(path, urlconf=urlconf)

    monkeypatch.setattr(middleware, "resolve", project_without_metrics)
    monkeypatch.setattr(checks, "check_broker", lambda: {"ok": False, "error": "down"})
    response = pod.get("/metrics")
    assert response.status_code == 200 and b"deploykit_broker_up 0.0" in response.content
