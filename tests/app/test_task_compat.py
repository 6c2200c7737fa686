"""Task compatibility between releases: the migrate step refuses a release that drops a task name the
deployed release registers (its queued messages would be dropped as unregistered), accepts the rename that
keeps the old name as an alias or a name listed in DEPLOYKIT_TASKS_RETIRED, and records each release's names."""

import subprocess
import sys

import psycopg
import pytest
from app_services import APP, BIN, app_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

RELEASES = {
    # N: two tasks
    "n": '''
@shared_task(name="shelf.tasks.restock")
def restock():
    return "restocked"


@shared_task(name="shelf.tasks.reprice")
def reprice():
    return "repriced"
''',
    # N+1: reprice renamed, nothing kept under the old name
    "renamed": '''
@shared_task(name="shelf.tasks.restock")
def restock():
    return "restocked"


@shared_task(name="shelf.tasks.update_price")
def update_price():
    return "repriced"
''',
    # N+1 done right: the old name stays registered for one release, as an alias of the new task
    "aliased": '''
@shared_task(name="shelf.tasks.restock")
def restock():
    return "restocked"


def update_price():
    return "repriced"


update_price_task = shared_task(name="shelf.tasks.update_price")(update_price)
reprice_alias = shared_task(name="shelf.tasks.reprice")(update_price)
''',
}


@pytest.fixture
def releases(tmp_path, postgres_server, redis_server):
    """One folder per release of a project = the reference project plus an app `shelf`, and a database of
    its own; returns the environment of a release's migrate step."""
    database = "taskcompat"
    with psycopg.connect(postgres_server.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database}")
        conn.execute(f"CREATE DATABASE {database}")
    for release, tasks in RELEASES.items():
        app = tmp_path / release / "shelf"
        app.mkdir(parents=True)
        (app / "__init__.py").write_text("")
        (app / "tasks.py").write_text("from celery import shared_task\n\n" + tasks)
        (tmp_path / release / "shelf_settings.py").write_text(
            "from config.settings import *  # noqa\nINSTALLED_APPS = [*INSTALLED_APPS, 'shelf']\n")

    def env(release: str, **extra) -> dict:
        return {"PYTHONPATH": str(tmp_path / release), "DJANGO_SETTINGS_MODULE": "shelf_settings",
                "DATABASE_URL": postgres_server.url.rsplit("/", 1)[0] + f"/{database}",
                "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_server.port}/6",
                "MEDIA_ROOT": str(tmp_path / "media"), **extra}
    return env


def migrate_step(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "deploykit-migrate")], env=app_env(**env), cwd=APP, capture_output=True,
                          text=True, timeout=300)


def recorded(env: dict) -> set[str]:
    url = env["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM deploykit_taskname")}


def test_a_dropped_task_name_stops_the_deploy_and_an_alias_or_retirement_lets_it_through(releases):
    first = migrate_step(releases("n"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "check_tasks: skipped, no release recorded" in first.stdout  # the first deploy
    assert {"shelf.tasks.restock", "shelf.tasks.reprice", "deploykit.beat_tick"} <= recorded(releases("n"))

    refused = migrate_step(releases("renamed"))
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert "  - shelf.tasks.reprice" in out and "DEPLOYKIT_TASKS_RETIRED" in out
    assert "shelf.tasks.update_price" not in recorded(releases("n"))  # stopped before anything was recorded

    aliased = migrate_step(releases("aliased"))
    assert aliased.returncode == 0, aliased.stdout + aliased.stderr
    assert "new: shelf.tasks.update_price" in aliased.stdout

    # The release after: the alias goes, on purpose, once no queued message can carry the old name.
    retired = migrate_step(releases("renamed", DEPLOYKIT_TASKS_RETIRED="shelf.tasks.reprice"))
    assert retired.returncode == 0, retired.stdout + retired.stderr
    assert "retired: shelf.tasks.reprice" in retired.stdout
    assert "shelf.tasks.reprice" not in recorded(releases("n"))
