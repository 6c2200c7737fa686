"""Per-client rate limits of the endpoints that create work (deploykit/ops/throttle.py): 429 + Retry-After + a
JSON message; one budget per client however many gunicorn processes answer, on Redis and on RabbitMQ
(counters in the database); a cache that cannot be reached lets requests through."""

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from app_services import APP, BIN, app_env, free_port, port_open, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def post_task(api, client: str, forwarded_for: str | None = None):
    headers = {"REMOTE_ADDR": client}
    if forwarded_for:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return api.post("/api/tasks/", {"task": "noop"}, content_type="application/json", **headers)


HOUR = 3600


@pytest.fixture
def limited(settings, redis_server):
    """Two task creations and one upload per hour per client, counted in the real Redis of the suite."""
    settings.DEPLOYKIT_API_THROTTLE_RATE = (2, HOUR)
    settings.DEPLOYKIT_API_THROTTLE_UPLOAD_RATE = (1, HOUR)
    return settings


def in_one_window(check) -> None:
    """Run check() again (it takes fresh clients) if an hour boundary fell inside it: the fixed-window
    counters start again at 0 there, which no assertion about a budget can allow for."""
    for _ in range(3):
        window = int(time.time() // HOUR)
        check()
        if int(time.time() // HOUR) == window:
            return
    raise AssertionError("three runs in a row crossed an hour boundary")


def fresh_client() -> str:
    """A client of its own, so tests never share a budget (the counters live in Redis): an IPv6 /64 of its
    own, since every address of a /64 is one client."""
    part = uuid.uuid4().hex
    return f"2001:db8:{part[:4]}:{part[4:8]}::1"


def test_third_task_in_an_hour_is_429_with_retry_after_and_a_json_message(api, limited):
    def check():
        client = fresh_client()
        assert [post_task(api, client).status_code for _ in range(2)] == [202, 202]
        refused = post_task(api, client)
        assert refused.status_code == 429
        assert 1 <= int(refused["Retry-After"]) <= HOUR
        error = refused.json()["error"]
        assert error.startswith("Too many requests from this client: at most 2 per hour. Expected available in "), error
        # Reports share the budget of task creation; reading a task is never limited.
        assert api.post("/api/reports/", {"kind": "tasks"}, content_type="application/json",
                        REMOTE_ADDR=client).status_code == 429
        assert api.get(f"/api/tasks/{uuid.uuid4()}/", REMOTE_ADDR=client).status_code == 404

    in_one_window(check)


def test_uploads_have_their_own_budget(api, limited):
    def check():
        client = fresh_client()
        first = api.post("/api/images/", {}, REMOTE_ADDR=client)
        assert first.status_code == 400  # counted even though refused: the limit guards the server's work
        second = api.post("/api/images/", {}, REMOTE_ADDR=client)
        assert second.status_code == 429 and int(second["Retry-After"]) >= 1
        assert "at most 1 per hour" in second.json()["error"]
        assert post_task(api, client).status_code == 202  # the task budget is untouched

    in_one_window(check)


def test_clients_are_told_apart_by_the_address_the_proxy_saw(api, limited):
    """The last X-Forwarded-For entry is the one the proxy added: a client cannot reset its budget by
    sending an X-Forwarded-For of its own (the proxy appends the real address after it)."""
    def check():
        proxy, client = "10.0.0.2", fresh_client()
        for forged in ("203.0.113.1", "203.0.113.2"):
            assert post_task(api, proxy, f"{forged}, {client}").status_code == 202
        assert post_task(api, proxy, f"203.0.113.3, {client}").status_code == 429
        assert post_task(api, proxy, fresh_client()).status_code == 202  # another client behind the same proxy

    in_one_window(check)


def test_off_means_no_limit(api, settings, redis_server):
    settings.DEPLOYKIT_API_THROTTLE_RATE = None
    client = fresh_client()
    assert {post_task(api, client).status_code for _ in range(5)} == {202}


def test_unreachable_throttle_cache_lets_requests_through_and_logs(api, limited, caplog):
    limited.CACHES = {**limited.CACHES, "throttle": {**limited.CACHES["throttle"],
                                                     "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    client = fresh_client()
    assert [post_task(api, client).status_code for _ in range(3)] == [202, 202, 202]
    assert "throttle cache unavailable" in caplog.text


def test_429_is_in_the_openapi_schema_with_retry_after(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/tasks/", "/api/images/", "/api/reports/"):
        refused = schema["paths"][path]["post"]["responses"]["429"]
        assert refused["headers"]["Retry-After"]["required"] is True, path
        assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, path


# --- real gunicorn processes: one budget across processes (two web containers), on both brokers -----------

def post(port: int, client: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/tasks/", data=b'{"task": "noop"}', method="POST",
        headers={"Host": "app.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": client,
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, {**dict(refused.headers), "body": json.loads(refused.read())}


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def two_web_processes(request, start_app, tmp_path):
    """Two gunicorn processes (as two web containers) on one migrated database and one broker: Redis
    (counters in Redis) or RabbitMQ with django-db results (counters in the database's cache table, which the
    migrations applied by deploykit-migrate create)."""
    broker = request.getfixturevalue(f"{request.param}_server")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}", "MEDIA_ROOT": str(tmp_path / "media"),
           "CELERY_BROKER_URL": broker.url, "DEPLOYKIT_API_THROTTLE_RATE": "3/hour"}
    process_env = app_env(**env)
    process_env.pop("CELERY_RESULT_BACKEND", None)  # amqp:// -> the django-db default
    migrate = subprocess.run([str(BIN / "deploykit-migrate")], cwd=APP, env=process_env, capture_output=True, text=True,
                             timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    ports = [free_port(), free_port()]
    for number, port in enumerate(ports):
        start_app("deploykit-web", name=f"web-throttle-{request.param}-{number}", PORT=port, GUNICORN_WORKERS=1,
                  GUNICORN_THREADS=2, **env)
    for port in ports:
        wait_for(lambda port=port: port_open(port), 90, "gunicorn")
    return ports


def test_the_budget_is_shared_by_every_web_process(two_web_processes):
    first, second = two_web_processes

    def check():
        client = fresh_client()
        statuses = [post(first, client)[0], post(second, client)[0], post(first, client)[0]]
        assert statuses == [202, 202, 202]
        status, headers = post(second, client)
        assert status == 429, headers
        assert int(headers["Retry-After"]) >= 1 and "at most 3 per hour" in headers["body"]["error"]
        assert post(second, fresh_client())[0] == 202  # another client still has its budget

    in_one_window(check)
