"""`manage.py check_migrations`: the project's migrations, linted on PostgreSQL's SQL, are safe for a rolling
deploy (the previous release keeps running against the new schema); an unsafe one is refused by name."""

import subprocess
import time
import sys
import textwrap

import pytest
from app_services import APP, app_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def check_migrations(postgres_server, *args, **env):
    return subprocess.run([sys.executable, "manage.py", "check_migrations", *args], cwd=APP,
                          env=app_env(DATABASE_URL=postgres_server.url, **env),
                          capture_output=True, text=True, timeout=300)


def test_the_reference_project_migrations_are_safe(postgres_server):
    done = check_migrations(postgres_server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "apps: deploykit, jobs" in done.stdout


def test_models_and_migrations_agree():
    """A model change without its migration would be applied by nobody (and linted by nobody)."""
    done = subprocess.run([sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"], cwd=APP,
                          env=app_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "No changes detected" in done.stdout, done.stdout + done.stderr


MIGRATIONS = {
    "0001_initial.py": """
        operations = [migrations.CreateModel("Book", [
            ("id", models.BigAutoField(primary_key=True)), ("title", models.TextField())])]""",
    "0002_drop_title.py": """
        dependencies = [("shelf", "0001_initial")]
        operations = [migrations.RemoveField("Book", "title")]""",
    "0003_isbn_not_null.py": """
        dependencies = [("shelf", "0002_drop_title")]
        operations = [migrations.AddField("Book", "isbn", models.TextField(), preserve_default=False)]""",
}


def shelf_project(tmp_path, extra: str = "") -> dict:
    """Settings = the reference project's plus an app `shelf` whose migrations drop a column the running
    release reads and add a NOT NULL column it does not write."""
    app = tmp_path / "shelf"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    for name, body in MIGRATIONS.items():
        (app / "migrations" / name).write_text("from django.db import migrations, models\n\n\n"
                                               "class Migration(migrations.Migration):"
                                               + textwrap.dedent(body).replace("\n", "\n    ") + "\n")
    (tmp_path / "shelf_settings.py").write_text("from config.settings import *  # noqa\n"
                                                "INSTALLED_APPS = [*INSTALLED_APPS, 'shelf']\n" + extra)
    return {"PYTHONPATH": str(tmp_path), "DJANGO_SETTINGS_MODULE": "shelf_settings"}


def test_a_dropped_column_and_a_not_null_column_are_refused_by_name(postgres_server, tmp_path):
    done = check_migrations(postgres_server, **shelf_project(tmp_path))
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "0002_drop_title" in out and "DROPPING columns (table: shelf_book, column: title)" in out
    assert "0003_isbn_not_null" in out and "2 migration(s)" in out


def test_a_reviewed_contract_step_is_accepted(postgres_server, tmp_path):
    reviewed = "DEPLOYKIT_MIGRATIONS_REVIEWED = ['shelf.0002_drop_title']\n"
    done = check_migrations(postgres_server, **shelf_project(tmp_path, reviewed))
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "1 migration(s)" in out and "0003_isbn_not_null" in out, out


def migrate(project: dict, *args, **env):
    return subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", *args], cwd=APP,
                          env=app_env(**project, **env),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(params=["direct", "pgbouncer"])
def shelf_database(request, postgres_server):
    """A database of its own, reached directly or through PgBouncer in transaction mode (as the chart runs
    it): (URL the app uses, direct URL)."""
    import psycopg
    from pgbouncer_service import PgBouncer

    name = f"shelf_{request.param}"
    base = postgres_server.url.rsplit("/", 1)[0]
    with psycopg.connect(postgres_server.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    if request.param == "direct":
        yield f"{base}/{name}", f"{base}/{name}"
        return
    bouncer = PgBouncer(postgres_server, name).start()
    assert bouncer.settings["pool_mode"] == "transaction"
    yield bouncer.url, f"{base}/{name}"
    bouncer.stop()


def test_a_migration_behind_a_long_transaction_gives_up_after_its_lock_timeout(shelf_database, tmp_path):
    """A reader holding shelf_book open: the migration that alters it fails after
    DEPLOYKIT_MIGRATE_LOCK_TIMEOUT instead of queueing every later query on the table behind its lock, leaves
    nothing half-applied, leaves no timeout on the pooled server connection, and succeeds once the reader is
    gone."""
    import psycopg

    app_url, direct = (u.replace("postgres://", "postgresql://") for u in shelf_database)
    project = {**shelf_project(tmp_path), "DATABASE_URL": shelf_database[0], "DATABASE_CONN_MAX_AGE": "0"}
    first = migrate(project, "shelf", "0001")
    assert first.returncode == 0, first.stdout + first.stderr
    with psycopg.connect(direct) as reader:  # a transaction stays open: its ACCESS SHARE lock stays held
        reader.execute("SELECT count(*) FROM shelf_book").fetchone()
        started = time.monotonic()
        blocked = migrate(project, "shelf", "0002", DEPLOYKIT_MIGRATE_LOCK_TIMEOUT="1")
        waited = time.monotonic() - started
        reader.rollback()
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0 and "lock timeout" in out, out
    print(f"migration gave up after {waited:.1f}s (lock_timeout 1 s, process start included)")
    with psycopg.connect(app_url, autocommit=True) as pooled:  # through PgBouncer: a server connection it used
        assert pooled.execute("SHOW lock_timeout").fetchone()[0] == "0"
        assert pooled.execute("SHOW statement_timeout").fetchone()[0] == "0"
    with psycopg.connect(direct, autocommit=True) as check:
        columns = {r[0] for r in check.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'shelf_book'")}
        applied = {r[0] for r in check.execute("SELECT name FROM django_migrations WHERE app = 'shelf'")}
    assert "title" in columns and applied == {"0001_initial"}
    done = migrate(project, "shelf", "0002")
    assert done.returncode == 0, done.stdout + done.stderr
