"""The start scripts as real processes: migrate + beat on PostgreSQL (single-instance lock), web through
gunicorn (probes, static files, JSON logs), Flower's authentication, and the worker heartbeat."""

from http.client import HTTPConnection
import json
import os
import signal
import socket
import subprocess
import sys
import time
from base64 import b64encode

import pytest
from app_services import APP, BIN, Redis, app_env, free_port, http, port_open, start_web, wait_for, wait_heartbeat

pytestmark = pytest.mark.integration


# --- PostgreSQL: migrate, superuser, beat's advisory lock ---------------------------------------------
ADMIN = {"DJANGO_SUPERUSER_USERNAME": "ops", "DJANGO_SUPERUSER_EMAIL": "ops@example.com",
         "DJANGO_SUPERUSER_PASSWORD": "first-long-password"}


def run_script(script: str, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / script), *args], env=app_env(**env), cwd=APP, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def pg(postgres_server, redis_server, tmp_path_factory):
    """PostgreSQL migrated by deploykit-migrate (its output kept for the test below)."""
    env = {"DATABASE_URL": postgres_server.url, "MEDIA_ROOT": str(tmp_path_factory.mktemp("pg-media")),
           "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_server.port}/3"}
    first = run_script("deploykit-migrate", **env, **ADMIN)
    assert first.returncode == 0, first.stdout + first.stderr

    def query(sql: str, *params):
        import psycopg

        with psycopg.connect(postgres_server.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    return type("PG", (), {"env": env, "first_migrate": first, "query": staticmethod(query),
                           "url": postgres_server.url})


@pytest.mark.postgres
def test_start_migrate_is_idempotent_and_manages_the_superuser(pg):
    from django.contrib.auth.hashers import check_password

    assert "Applying jobs.0001_initial" in pg.first_migrate.stdout
    assert "superuser 'ops' created" in pg.first_migrate.stdout
    again = run_script("deploykit-migrate", **pg.env, **{**ADMIN, "DJANGO_SUPERUSER_PASSWORD": "second-long-password"})
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply" in again.stdout and "superuser 'ops' password updated" in again.stdout
    [(password, email, is_superuser)] = pg.query(
        "SELECT password, email, is_superuser FROM auth_user WHERE username = %s", "ops")
    assert check_password("second-long-password", password) and email == "ops@example.com" and is_superuser


@pytest.mark.postgres
def test_a_prefork_worker_keeps_its_database_connection_only_across_successful_tasks(pg, start_app, tmp_path,
                                                                                      monkeypatch):
    """deploykit.delivery.dbconn, with results in PostgreSQL (django-db, as on the RabbitMQ variant): the child's
    connection survives successful tasks (Celery alone opens one per task), and a failed task closes it."""
    import psycopg
    from celery import Celery

    broker = pg.env["CELERY_BROKER_URL"].rsplit("/", 1)[0] + "/4"
    env = {**pg.env, "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": "django-db"}
    heartbeat = tmp_path / "hb"
    worker = start_app("deploykit-worker", name="pg-conn-worker", CELERY_WORKER_QUEUES="default",
                       CELERY_WORKER_CONCURRENCY="1", DEPLOYKIT_HEARTBEAT_FILE=heartbeat, **env)
    wait_heartbeat(heartbeat, worker, timeout=120)
    monkeypatch.setenv("CELERY_BROKER_URL", broker)  # Celery prefers it to the broker= argument
    # Not the current app (shared tasks of later tests must keep resolving to the app's own), no Django fixup.
    producer = Celery(broker=broker, set_as_current=False, fixups=[])
    with psycopg.connect(pg.url.replace("postgres://", "postgresql://"), autocommit=True) as watch:
        def run(*args) -> str:
            task_id = producer.send_task("jobs.tasks.add", args=args, queue="default").id
            try:
                return wait_for(lambda: (watch.execute(
                    "SELECT status FROM django_celery_results_taskresult WHERE task_id = %s AND status IN "
                    "('SUCCESS', 'FAILURE')", (task_id,)).fetchone() or [None])[0], 60, f"task {task_id}")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{worker.output()[-4000:]}") from None

        def worker_backends() -> set[int]:
            return {pid for (pid,) in watch.execute(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND datname = current_database() AND pid <> pg_backend_pid()").fetchall()}

        assert [run(i, i) for i in range(5)] == ["SUCCESS"] * 5
        kept = worker_backends()
        assert len(kept) == 1, f"one connection kept open after successful tasks, found {kept}"
        assert [run(i, 1) for i in range(5)] == ["SUCCESS"] * 5
        assert worker_backends() == kept, "the same connection served the next tasks"
        assert run("text", 1) == "FAILURE"  # TypeError inside the task
        wait_for(lambda: not (worker_backends() & kept), 30, "the failed task's connection to close")


@pytest.mark.postgres
def test_only_one_beat_runs_the_second_waits_as_standby(pg, start_app, tmp_path):
    """Two beats against one PostgreSQL: the second stands by (logging who holds the lock) and takes
    over when the first stops; a worker runs the ticks."""
    env = {**pg.env, "DEPLOYKIT_BEAT_TICK_SECONDS": "1", "LOG_FORMAT": "json"}
    worker = start_app("deploykit-worker", name="pg-worker", CELERY_WORKER_QUEUES="default",
                       CELERY_WORKER_CONCURRENCY="1", DEPLOYKIT_HEARTBEAT_FILE=tmp_path / "hb", **env)
    first = start_app("deploykit-beat", name="beat-1", **env)
    first.wait_for_output("beat lock acquired (pg_advisory_lock(", timeout=120)
    second = start_app("deploykit-beat", name="beat-2", **env)
    second.wait_for_output("only one beat may run; waiting as standby", timeout=120)
    assert "celery-beat@" in second.output()  # names the holder
    assert "beat lock acquired" not in second.output()

    def ticks() -> int:
        rows = pg.query("SELECT count FROM deploykit_beattick WHERE name = 'beat'")
        return rows[0][0] if rows else 0

    wait_for(lambda: ticks() >= 2, 120, "beat ticks run by the worker", interval=1)
    # JSON logs carry the task id on Celery lines
    task_lines = [json.loads(line) for line in worker.output().splitlines()
                  if line.startswith("{") and "beat_tick" in line]
    assert any(line.get("task_id") and line.get("task_name") == "deploykit.beat_tick" for line in task_lines)

    assert first.stop() == 0  # graceful: SIGTERM reached beat through exec
    second.wait_for_output("beat lock acquired", timeout=60)
    count = ticks()
    wait_for(lambda: ticks() > count, 60, "ticks from the former standby", interval=1)
    assert worker.proc.poll() is None


@pytest.mark.postgres
def test_beat_no_wait_refuses_while_the_lock_is_held(pg):
    """`manage.py run_beat --no-wait` exits 3 instead of standing by when the lock is taken."""
    import psycopg
    from django.conf import settings

    with psycopg.connect(pg.url.replace("postgres://", "postgresql://"), autocommit=True) as holder:
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (settings.BEAT_LOCK_ID,)).fetchone()[0]
        refused = subprocess.run([sys.executable, "manage.py", "run_beat", "--no-wait"], cwd=APP,
                                 env=app_env(**pg.env), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refusing to start a second beat" in refused.stdout + refused.stderr


# A SIGTERM that lands while beat's scheduler is inside a query, with an entry waiting to be saved.
SIGNAL_MID_QUERY = """
import signal, sys, django
django.setup()
from celery import current_app as app
from celery.apps.beat import Beat
from celery.beat import Service
from django.db import connection
from deploykit.ops.beat import GracefulBeat

service = Service(app, scheduler_cls="django_celery_beat.schedulers:DatabaseScheduler")
scheduler = service.scheduler
scheduler.reserve(next(iter(scheduler.schedule.values())))  # a sent entry: the next sync writes it
{"graceful": GracefulBeat, "celery": Beat}[sys.argv[1]](app=app).install_sync_handler(service)
connection.ensure_connection()
with connection.connection.lock:  # what psycopg holds while a query runs
    signal.raise_signal(signal.SIGTERM)
service.sync()  # what the service loop does after the handler stopped it
print("stopped" if service._is_shutdown.is_set() else "running")
"""


@pytest.mark.postgres
@pytest.mark.parametrize("handler", ["graceful", "celery"])
def test_beat_stops_on_sigterm_in_the_middle_of_a_query(pg, handler):
    """deploykit's beat only asks its loop to stop; Celery's own handler saves the schedule inside the
    handler and deadlocks on psycopg's connection lock (beat then needs SIGKILL). When the "celery" case
    starts passing, upstream has fixed it and GracefulBeat can go."""
    try:
        done = subprocess.run([sys.executable, "-c", SIGNAL_MID_QUERY, handler], cwd=APP, env=app_env(**pg.env),
                              capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        assert handler == "celery", "deploykit's beat hung on SIGTERM during a query"
        return
    assert handler == "graceful", "Celery's beat no longer deadlocks here: delete deploykit.ops.beat.GracefulBeat"
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "stopped", done.stdout + done.stderr


# --- web: gunicorn, probes, static files, JSON logs ----------------------------------------------------
@pytest.fixture(scope="module")
def web(start_session_app, django_db_setup, redis_server):
    collect = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=APP,
                             env=app_env(), capture_output=True, text=True, timeout=300)
    assert collect.returncode == 0, collect.stderr
    return start_web(start_session_app, "web", LOG_FORMAT="json")


def test_web_probes_with_pod_ip_host_over_plain_http(web):
    status, _, body = http(f"{web.base}/healthz", {"Host": "10.1.2.3:8000"})
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = http(f"{web.base}/readyz", {"Host": "10.1.2.3:8000"})
    assert status == 200 and json.loads(body) == {"database": "ok"}
    status, _, body = http(f"{web.base}/metrics", {"Host": "10.1.2.3:8000"})
    assert status == 200 and b"django_http_requests" in body


def test_web_redirects_plain_http_and_refuses_unknown_hosts(web):
    status, headers, _ = http(f"{web.base}/", {"Host": "app.example.com"})
    assert status == 301 and headers["Location"] == "https://app.example.com/"
    status, _, _ = http(f"{web.base}/", {"Host": "evil.example.net", "X-Forwarded-Proto": "https"})
    assert status == 400


def test_web_behind_tls_proxy(web):
    status, headers, body = http(f"{web.base}/", {"Host": "app.example.com", "X-Forwarded-Proto": "https"})
    assert status == 200 and b"Upload" in body
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["X-Frame-Options"] == "DENY"


def test_web_serves_static_files_with_whitenoise(web):
    manifest = json.loads((APP / "staticfiles" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    status, headers, body = http(f"{web.base}/static/{hashed}",
                                 {"Host": "app.example.com", "X-Forwarded-Proto": "https"})
    assert status == 200 and b"body" in body
    assert "max-age=315360000" in headers["Cache-Control"]


def test_web_logs_json(web):
    http(f"{web.base}/healthz")
    wait_for(lambda: '"logger": "gunicorn.access"' in web.output() or '"logger":"gunicorn.access"' in web.output(),
             10, "access log line")
    json_lines = [line for line in web.output().splitlines() if line.startswith("{")]
    assert json_lines and all(json.loads(line)["level"] for line in json_lines)


def test_web_stops_gracefully_on_sigterm(web):
    """Last of the web tests: SIGTERM reaches gunicorn itself (deploykit-web ends in exec) and it exits 0."""
    assert web.stop(signal.SIGTERM, timeout=40) == 0


# --- web: drain and stop (deploykit/ops/gunicorn_drain.py) ----------------------------------------------------
def test_web_drains_before_it_stops(start_app, django_db_setup, redis_server):
    """SIGTERM with DEPLOYKIT_WEB_DRAIN_SECONDS: /readyz turns 503 at once and every answer closes its
    connection, yet requests are still served; gunicorn stops only after the drain."""
    port = free_port()
    web = start_app("deploykit-web", name="web-drain", PORT=port, GUNICORN_WORKERS=2, GUNICORN_THREADS=2,
                    DEPLOYKIT_WEB_DRAIN_SECONDS=4)
    wait_for(lambda: port_open(port), 90, "gunicorn")

    def get(path: str) -> tuple[int, str, dict]:  # over HTTP/1.1 keep-alive, unlike urllib
        connection = HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.getheader("Connection"), json.loads(response.read())
        finally:
            connection.close()

    assert get("/readyz") == (200, "keep-alive", {"database": "ok"})
    web.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    wait_for(lambda: get("/readyz")[0] == 503, 3, "/readyz to turn 503", interval=0.1)
    assert get("/readyz") == (503, "close", {"draining": True})
    assert get("/healthz") == (200, "close", {"status": "ok"})  # still serving, not keeping connections
    assert web.proc.wait(30) == 0
    assert time.monotonic() - signalled >= 4 - 0.5, "gunicorn stopped before the drain was over"


def test_stopping_web_refuses_new_connections_while_it_finishes_one_in_flight(start_app, django_db_setup,
                                                                              redis_server):
    """gthread queued connections while finishing its requests and reset them when it closed: a proxy
    cannot tell whether a reset POST ran. Ours closes its listeners first, so a new connection is refused
    (safe to send elsewhere) while the request in flight is still answered."""
    port = free_port()
    web = start_app("deploykit-web", name="web-stop", PORT=port, GUNICORN_WORKERS=2, GUNICORN_THREADS=2)
    wait_for(lambda: port_open(port), 90, "gunicorn")
    in_flight = socket.create_connection(("127.0.0.1", port), timeout=10)
    in_flight.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")  # headers not finished yet
    time.sleep(0.5)  # accepted by a worker: now in flight
    web.proc.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, 5, "new connections to be refused", interval=0.1)
    assert web.proc.poll() is None, "gunicorn exited instead of finishing the request in flight"
    in_flight.sendall(b"\r\n")
    assert in_flight.recv(4096).startswith(b"HTTP/1.1 200")
    in_flight.close()
    assert web.proc.wait(30) == 0


# --- Flower ---------------------------------------------------------------------------------------------
def test_flower_refuses_to_start_without_credentials():
    result = subprocess.run([str(BIN / "deploykit-flower")], cwd=APP, env=app_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "Refusing to start Flower: FLOWER_USER is required" in result.stderr
    assert "FLOWER_PASSWORD is required" in result.stderr


def test_flower_requires_basic_auth(start_app, redis_server):
    port = free_port()
    flower = start_app("deploykit-flower", name="flower", FLOWER_PORT=port, FLOWER_USER="ops",
                       FLOWER_PASSWORD="a-long-flower-password")
    wait_for(lambda: port_open(port), 90, "flower")
    status, headers, _ = http(f"http://127.0.0.1:{port}/flower/")
    assert status == 401 and "Basic" in headers["WWW-Authenticate"]
    token = b64encode(b"ops:a-long-flower-password").decode()
    wait_for(lambda: http(f"http://127.0.0.1:{port}/flower/", {"Authorization": f"Basic {token}"})[0] == 200,
             30, "flower with credentials")
    wrong = b64encode(b"ops:wrong-password").decode()
    assert http(f"http://127.0.0.1:{port}/flower/", {"Authorization": f"Basic {wrong}"})[0] == 401
    assert "a-long-flower-password" not in " ".join(open(f"/proc/{flower.proc.pid}/cmdline").read().split("\0"))


# --- worker heartbeat: touched only while consuming ------------------------------------------------------
def healthcheck(path, max_age: int) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "deploykit-worker-healthcheck")], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "DEPLOYKIT_HEARTBEAT_FILE": str(path),
                               "DEPLOYKIT_HEARTBEAT_MAX_AGE": str(max_age)})


def test_worker_healthcheck_missing_and_stale(tmp_path):
    path = tmp_path / "hb"
    missing = healthcheck(path, 60)
    assert missing.returncode == 1 and "no heartbeat file" in missing.stdout
    path.write_text("x")
    os.utime(path, (time.time() - 120, time.time() - 120))
    stale = healthcheck(path, 60)
    assert stale.returncode == 1 and "is 12" in stale.stdout
    os.utime(path)
    assert healthcheck(path, 60).returncode == 0


def test_heartbeat_stops_when_the_broker_is_lost_and_resumes(start_app, django_db_setup, tmp_path):
    """The heartbeat proves consumption, not just a live process: with the broker gone it goes stale
    (while the worker process lives on), and it is fresh again once the worker reconnects."""
    broker = Redis(tmp_path).start()
    heartbeat = tmp_path / "hb"
    worker = start_app("deploykit-worker", name="hb-worker", CELERY_BROKER_URL=broker.url,
                       CELERY_WORKER_QUEUES="default", CELERY_WORKER_CONCURRENCY="1",
                       DEPLOYKIT_HEARTBEAT_FILE=heartbeat, DEPLOYKIT_HEARTBEAT_MAX_AGE="4")
    wait_for(heartbeat.exists, 90, "first heartbeat")
    first = heartbeat.stat().st_mtime
    wait_for(lambda: heartbeat.stat().st_mtime > first, 10, "heartbeat to be refreshed")
    assert healthcheck(heartbeat, 4).returncode == 0
    broker.stop()
    wait_for(lambda: healthcheck(heartbeat, 4).returncode == 1, 30, "stale heartbeat without broker")
    assert worker.proc.poll() is None  # the process is alive, yet unhealthy: it does not consume
    broker.start()
    wait_for(lambda: healthcheck(heartbeat, 4).returncode == 0, 90, "fresh heartbeat after reconnect", interval=1)
    assert worker.stop() == 0
    assert not heartbeat.exists()  # removed on shutdown
    broker.stop()
