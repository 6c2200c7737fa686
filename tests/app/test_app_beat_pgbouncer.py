"""Beat's single-instance lock behind the chart's PgBouncer (pool_mode=transaction, read from the chart):
the hazard is real, beat refuses it naming DEPLOYKIT_BEAT_LOCK_DATABASE_URL, and with a direct lock URL
two beats give exactly one, a SIGKILLed holder is replaced by the standby, and a lock connection that
stops answering stops beat within DEPLOYKIT_BEAT_LOCK_TIMEOUT."""

import os
import signal
import subprocess
import time

import psycopg
import pytest
from app_services import APP, BIN, app_env, wait_for
from pgbouncer_service import PgBouncer

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
DATABASE = "beatlock"


def pg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://")


@pytest.fixture(scope="module")
def bouncer(postgres_server, redis_server, tmp_path_factory):
    """A migrated database of its own, PgBouncer in front of it, and the environment of beats using it."""
    direct = postgres_server.url.rsplit("/", 1)[0] + f"/{DATABASE}"
    with psycopg.connect(pg_url(postgres_server.url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    env = {"DATABASE_URL": direct, "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_server.port}/5",
           "MEDIA_ROOT": str(tmp_path_factory.mktemp("beat-media"))}
    migrate = subprocess.run([str(BIN / "deploykit-migrate")], env=app_env(**env), cwd=APP, capture_output=True,
                             text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    server = PgBouncer(postgres_server, DATABASE).start()
    # As the chart runs the app behind PgBouncer in transaction mode (its configmap sets CONN_MAX_AGE 0).
    server.env = {**env, "DATABASE_URL": server.url, "DATABASE_CONN_MAX_AGE": "0"}
    server.direct = direct
    yield server
    server.stop()


def lock_holders(direct: str) -> list[str]:
    from django.conf import settings

    with psycopg.connect(pg_url(direct), autocommit=True) as conn:
        return [name for (name,) in conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
            (settings.BEAT_LOCK_ID,)).fetchall()]


def run_beat_once(**env) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "deploykit-beat")], env=app_env(**env), cwd=APP, capture_output=True, text=True,
                          timeout=120)


def test_the_chart_pools_transactions_and_a_session_lock_there_is_held_twice(bouncer):
    """Why beat refuses: through the chart's PgBouncer two clients both "get" the session advisory lock
    (the second lands on the backend the first left it on), and the lock outlives its client."""
    assert bouncer.settings["pool_mode"] == "transaction"
    with psycopg.connect(pg_url(bouncer.url), autocommit=True) as first:
        assert first.execute("SELECT pg_try_advisory_lock(4242)").fetchone()[0]
        with psycopg.connect(pg_url(bouncer.url), autocommit=True) as second:
            assert second.execute("SELECT pg_try_advisory_lock(4242)").fetchone()[0]  # not exclusive
    with psycopg.connect(pg_url(bouncer.direct), autocommit=True) as direct:
        stale = direct.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 "
                               "AND granted").fetchone()[0]
        assert stale >= 1  # both clients are gone; the server connection in the pool still holds it
        direct.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")


def test_beat_through_pgbouncer_refuses_naming_the_direct_url_setting(bouncer):
    refused = run_beat_once(**bouncer.env)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2, output
    assert "DEPLOYKIT_BEAT_LOCK_DATABASE_URL" in output and "connection pooler" in output
    assert "beat lock acquired" not in output and lock_holders(bouncer.direct) == []


def test_beat_refuses_a_lock_url_that_is_itself_pooled_or_another_database(bouncer):
    pooled = run_beat_once(**bouncer.env, DEPLOYKIT_BEAT_LOCK_DATABASE_URL=bouncer.url)
    assert pooled.returncode == 2 and "DEPLOYKIT_BEAT_LOCK_DATABASE_URL reaches PostgreSQL through a " \
        "connection pooler" in pooled.stdout + pooled.stderr, pooled.stdout + pooled.stderr
    other = bouncer.direct.rsplit("/", 1)[0] + "/postgres"
    elsewhere = run_beat_once(**bouncer.env, DEPLOYKIT_BEAT_LOCK_DATABASE_URL=other)
    assert elsewhere.returncode == 2, elsewhere.stdout + elsewhere.stderr
    assert "DEPLOYKIT_BEAT_LOCK_DATABASE_URL names database 'postgres'" in elsewhere.stdout + elsewhere.stderr


def test_with_a_direct_lock_url_one_beat_runs_and_the_standby_takes_over_a_killed_holder(bouncer, start_app):
    env = {**bouncer.env, "DEPLOYKIT_BEAT_LOCK_DATABASE_URL": bouncer.direct}
    first = start_app("deploykit-beat", name="pgb-beat-1", **env)
    first.wait_for_output("beat lock acquired", timeout=120)
    second = start_app("deploykit-beat", name="pgb-beat-2", **env)
    second.wait_for_output("only one beat may run; waiting as standby", timeout=120)
    first.wait_for_output("beat: Starting", timeout=60)  # beat itself runs, its scheduler through PgBouncer
    time.sleep(3)  # a few standby polls: still exactly one holder
    assert lock_holders(bouncer.direct) == [f"celery-beat@{os.uname().nodename}:{first.proc.pid}"]
    assert "beat lock acquired" not in second.output()

    first.proc.send_signal(signal.SIGKILL)  # no clean shutdown: the server sees the connection close
    first.proc.wait(10)
    second.wait_for_output("beat lock acquired", timeout=30)
    assert lock_holders(bouncer.direct) == [f"celery-beat@{os.uname().nodename}:{second.proc.pid}"]


def test_a_lock_connection_that_stops_answering_stops_beat_within_the_timeout(bouncer, start_app):
    """The lock's server backend is frozen (SIGSTOP: TCP still answers, keepalives cannot tell): the
    watchdog's deadline notices and beat exits for its supervisor to restart it."""
    env = {**bouncer.env, "DEPLOYKIT_BEAT_LOCK_DATABASE_URL": bouncer.direct, "DEPLOYKIT_BEAT_LOCK_TIMEOUT": "5"}
    beat = start_app("deploykit-beat", name="pgb-beat-frozen", **env)
    beat.wait_for_output("beat: Starting", timeout=120)
    with psycopg.connect(pg_url(bouncer.direct), autocommit=True) as conn:
        [(backend,)] = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                    (f"celery-beat@{os.uname().nodename}:{beat.proc.pid}",)).fetchall()
    os.kill(backend, signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        wait_for(lambda: beat.proc.poll() is not None, 45, "beat to exit after its lock stopped answering")
        assert time.monotonic() - frozen < 5 / 3 + 5 + 30 + 5  # check interval + deadline + stop grace
        assert "beat lock check got no answer within 5s (DEPLOYKIT_BEAT_LOCK_TIMEOUT)" in beat.output()
        assert "beat lost its single-instance lock" in beat.output()
    finally:
        os.kill(backend, signal.SIGCONT)
