"""deploykit.settings.apply(globals()) and deploykit.celery_app on a project that is not the reference app:
its own settings package, a Celery app created the plain way that never mentions deploykit, Celery's
default queue `celery`, its own routes and beat entries."""

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploykit import settings as dk_settings
from deploykit.config.env import ConfigurationError

CONTRACT_PREFIXES = ("DJANGO_", "CELERY_", "DATABASE_", "EMAIL_", "MEDIA_ROOT", "DEPLOYKIT_", "LOG_",
                     "DEFAULT_FROM_EMAIL")
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
    "DJANGO_ALLOWED_HOSTS": "shop.example.com",
    "DATABASE_URL": "postgres://shop:s3cret-pass@db.internal:5432/shop",
    "CELERY_BROKER_URL": "redis://:s3cret-pass@redis.internal:6379/0",
}


def startproject_namespace(base_dir: Path) -> dict:
    """What `django-admin startproject` writes, plus a project's own Celery choices."""
    return {
        "BASE_DIR": base_dir,
        "SECRET_KEY": "django-insecure-startproject-key",
        "DEBUG": True,
        "ALLOWED_HOSTS": [],
        "INSTALLED_APPS": ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                           "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
                           "shop"],
        "MIDDLEWARE": ["django.middleware.security.SecurityMiddleware",
                       "django.contrib.sessions.middleware.SessionMiddleware",
                       "django.middleware.common.CommonMiddleware"],
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": base_dir / "db.sqlite3"}},
        "TIME_ZONE": "Europe/Paris",
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}},
        "CELERY_TASK_ROUTES": {"shop.tasks.ship_*": {"queue": "io"}},
        "CELERY_BEAT_SCHEDULE": {"nightly": {"task": "shop.tasks.report", "schedule": 3600.0}},
        "CELERY_TASK_SERIALIZER": "json",
    }


@pytest.fixture
def environ(monkeypatch):
    """A clean environment for the contract; returns a setter."""
    for name in list(os.environ):
        if name.startswith(CONTRACT_PREFIXES):
            monkeypatch.delenv(name)

    def set_(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_


def test_apply_sets_what_deploykit_owns_and_keeps_the_projects(environ, tmp_path):
    environ(**PRODUCTION)
    ns = startproject_namespace(tmp_path)
    dk_settings.apply(ns)
    # the environment wins over what startproject wrote
    assert ns["DEBUG"] is False and ns["SECRET_KEY"] == PRODUCTION["DJANGO_SECRET_KEY"]
    assert ns["ALLOWED_HOSTS"] == ["shop.example.com"]
    assert ns["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert ns["DEPLOYKIT_MIGRATE_LOCK_TIMEOUT"] == 5
    assert ns["DATABASES"]["default"]["HOST"] == "db.internal" and ns["DATABASES"]["default"]["CONN_HEALTH_CHECKS"]
    # deploykit's apps and probe middleware, added once, the probe right before SecurityMiddleware
    # (django_celery_results only where results go to the database: not with this Redis broker)
    assert ns["INSTALLED_APPS"][-3:] == ["shop", "django_celery_beat", "deploykit"]
    assert ns["MIDDLEWARE"][:2] == [dk_settings.PROBE_MIDDLEWARE, "django.middleware.security.SecurityMiddleware"]
    # delivery: deploykit's
    assert ns["CELERY_TASK_ACKS_LATE"] and ns["CELERY_TASK_REJECT_ON_WORKER_LOST"]
    assert ns["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 3600
    assert ns["CELERY_BROKER_TRANSPORT_OPTIONS"]["lease_ttl"] == 30
    assert ns["CELERY_BROKER_TRANSPORT_OPTIONS"]["socket_timeout"] == 10
    assert ns["CELERY_BROKER_TRANSPORT"] == "deploykit.delivery.redis_transport:Transport"
    # the project's: kept, merged
    assert ns["TIME_ZONE"] == "Europe/Paris" and ns["CELERY_TIMEZONE"] == "Europe/Paris"
    assert ns["CELERY_TASK_ROUTES"] == {"shop.tasks.ship_*": {"queue": "io"}}
    assert "CELERY_TASK_DEFAULT_QUEUE" not in ns  # Celery's default queue `celery` stays
    assert set(ns["CELERY_BEAT_SCHEDULE"]) == {"nightly", "beat-tick", "purge-idempotency-keys"}
    assert ns["CELERY_BEAT_SCHEDULE"]["beat-tick"]["task"] == "deploykit.beat_tick"
    assert ns["CACHES"]["default"]["BACKEND"].endswith("DummyCache") and "throttle" in ns["CACHES"]
    assert ns["SECURE_SSL_REDIRECT"] and r"^healthz$" in ns["SECURE_REDIRECT_EXEMPT"]


def test_results_in_the_database_add_django_celery_results(environ, tmp_path):
    """RabbitMQ's default result store is the database: then (only) django_celery_results is installed."""
    environ(**{**PRODUCTION, "CELERY_BROKER_URL": "amqp://app:s3cret-pass@rabbitmq.internal:5672/"})
    ns = startproject_namespace(tmp_path)
    dk_settings.apply(ns)
    assert ns["CELERY_RESULT_BACKEND"] == "django-db"
    assert ns["INSTALLED_APPS"][-3:] == ["django_celery_beat", "deploykit", "django_celery_results"]


def test_explicit_queues_are_declared_where_the_project_declares_its_queues(environ, tmp_path):
    """A worker refuses to consume a queue missing from CELERY_TASK_QUEUES (with create-missing off)."""
    environ(**PRODUCTION, DEPLOYKIT_EXPLICIT_QUEUES="bulk,default")
    ns = {**startproject_namespace(tmp_path), "CELERY_TASK_QUEUES": {"default": {"exchange": "d", "routing_key": "d"}}}
    dk_settings.apply(ns)
    assert ns["DEPLOYKIT_EXPLICIT_QUEUES"] == ["bulk", "default"]
    assert ns["CELERY_TASK_QUEUES"] == {"bulk": {"exchange": "bulk", "routing_key": "bulk"},
                                        "default": {"exchange": "d", "routing_key": "d"}}  # the project's kept
    undeclared = startproject_namespace(tmp_path)
    dk_settings.apply(undeclared)  # no CELERY_TASK_QUEUES: Celery creates queues on demand, nothing to add
    assert "CELERY_TASK_QUEUES" not in undeclared


def test_apply_twice_adds_nothing_twice(environ, tmp_path):
    environ(**PRODUCTION)
    ns = startproject_namespace(tmp_path)
    dk_settings.apply(ns)
    first = {key: ns[key] for key in ("INSTALLED_APPS", "MIDDLEWARE", "CELERY_BEAT_SCHEDULE", "SECURE_REDIRECT_EXEMPT")}
    dk_settings.apply(ns)
    assert {key: ns[key] for key in first} == first


def test_a_project_database_stays_when_database_url_is_unset(environ, tmp_path):
    environ(**{k: v for k, v in PRODUCTION.items() if k != "DATABASE_URL"})
    ns = startproject_namespace(tmp_path)
    ns["DATABASES"] = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "HOST": "pg"}}
    dk_settings.apply(ns)  # no refusal: the project configures its database itself
    assert ns["DATABASES"]["default"]["HOST"] == "pg" and ns["DATABASES"]["default"]["CONN_MAX_AGE"] == 60


def test_database_url_wins_over_the_projects_database(environ, tmp_path):
    environ(**PRODUCTION)
    ns = startproject_namespace(tmp_path)
    ns["DATABASES"] = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "other", "HOST": "pg"},
                       "reports": {"ENGINE": "django.db.backends.sqlite3", "NAME": "r.sqlite3"}}
    dk_settings.apply(ns)
    assert ns["DATABASES"]["default"]["HOST"] == "db.internal" and "reports" in ns["DATABASES"]


def test_the_startproject_sqlite_default_needs_database_url_in_production(environ, tmp_path):
    environ(**{k: v for k, v in PRODUCTION.items() if k != "DATABASE_URL"})
    with pytest.raises(ConfigurationError, match="- DATABASE_URL is required in production mode"):
        dk_settings.apply(startproject_namespace(tmp_path))


def test_debug_mode_uses_the_projects_sqlite_file(environ, tmp_path):
    environ(DJANGO_DEBUG="true")
    ns = startproject_namespace(tmp_path)
    dk_settings.apply(ns)
    assert ns["DATABASES"]["default"]["NAME"] == str(tmp_path / "db.sqlite3")


def test_refusals_name_the_variable(environ, tmp_path):
    environ(DJANGO_DEBUG="false")
    with pytest.raises(ConfigurationError) as refused:
        dk_settings.apply(startproject_namespace(tmp_path))
    for variable in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL"):
        assert f"- {variable} is required in production mode" in str(refused.value)


def test_build_step_needs_no_secret(environ, tmp_path):
    environ(DJANGO_DEBUG="false", DEPLOYKIT_BUILD_STEP="true")
    ns = startproject_namespace(tmp_path)
    dk_settings.apply(ns)  # nothing required, nothing checked
    assert ns["SECRET_KEY"].startswith("django-insecure-development-only")  # never serves a request
    assert ns["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"


def test_the_project_env_is_shared_so_its_problems_are_reported_with_deploykits(environ, tmp_path):
    environ(DJANGO_DEBUG="false")
    project = tmp_path / "contract.toml"
    project.write_text(textwrap.dedent('''
        [[variable]]
        name = "SHOP_API_KEY"
        type = "str"
        required = true
        owner = "app"
        section = "Shop"
        doc = "The shop's key."
    '''))
    ns = {**startproject_namespace(tmp_path), "DEPLOYKIT_PROJECT_CONTRACT": project}
    env = dk_settings.environment(ns)
    ns["SHOP_API_KEY"] = env.value("SHOP_API_KEY")
    with pytest.raises(ConfigurationError) as refused:
        dk_settings.apply(ns)
    assert "- SHOP_API_KEY is required" in str(refused.value) and "- DJANGO_SECRET_KEY" in str(refused.value)


def test_probe_middleware_placement():
    assert dk_settings.with_probe_middleware([]) == [dk_settings.PROBE_MIDDLEWARE]
    assert dk_settings.with_probe_middleware(["a.B"]) == [dk_settings.PROBE_MIDDLEWARE, "a.B"]
    listed = ["x.Y", dk_settings.PROBE_MIDDLEWARE, "django.middleware.security.SecurityMiddleware"]
    assert dk_settings.with_probe_middleware(listed) == listed


# --- a whole project of its own, in subprocesses ------------------------------------------------------
PROJECT_FILES = {
    "manage.py": '''
        import os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
    ''',
    "mysite/__init__.py": "",
    "mysite/settings.py": '''
        from pathlib import Path
        BASE_DIR = Path(__file__).resolve().parent.parent
        SECRET_KEY = "django-insecure-startproject-key"
        DEBUG = True
        ALLOWED_HOSTS = []
        INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                          "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles", "shop"]
        MIDDLEWARE = ["django.middleware.security.SecurityMiddleware",
                      "django.contrib.sessions.middleware.SessionMiddleware",
                      "django.middleware.common.CommonMiddleware",
                      "django.middleware.csrf.CsrfViewMiddleware",
                      "django.contrib.auth.middleware.AuthenticationMiddleware",
                      "django.contrib.messages.middleware.MessageMiddleware"]
        ROOT_URLCONF = "mysite.urls"
        TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                      "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                         "django.contrib.auth.context_processors.auth",
                                                         "django.contrib.messages.context_processors.messages"]}}]
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
        TIME_ZONE = "Europe/Paris"
        USE_TZ = True
        STATIC_URL = "static/"
        CELERY_TASK_ROUTES = {"shop.tasks.ship_*": {"queue": "io"}}
        CELERY_BEAT_SCHEDULE = {"nightly": {"task": "shop.tasks.report", "schedule": 3600.0,
                                            "options": {"queue": "reports"}}}

        from deploykit.settings import apply
        apply(globals())
    ''',
    "mysite/urls.py": '''
        from django.urls import include, path
        urlpatterns = [path("", include("deploykit.urls"))]
    ''',
    # The plain way: nothing of deploykit in it.
    "mysite/celery_app.py": '''
        import os
        from celery import Celery
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        app = Celery("mysite")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.autodiscover_tasks()
    ''',
    "shop/__init__.py": "",
    "shop/tasks.py": '''
        from celery import shared_task

        @shared_task
        def ship_order(n):
            return n

        @shared_task(queue="images")
        def thumbnail():
            return "thumb"

        @shared_task
        def report():
            return "report"
    ''',
    "inspect_app.py": '''
        import json
        import django
        django.setup()
        from django.conf import settings
        from deploykit.celery_app import app
        from deploykit.celery import BoundedRedeliveryTask, install
        install(app)  # idempotent
        app.loader.import_default_modules()  # what a worker imports: autodiscovery of every installed app
        print(json.dumps({
            "app": app.main,
            "tasks": sorted(app.tasks),
            "unbounded": sorted(n for n, t in app.tasks.items() if not isinstance(t, BoundedRedeliveryTask)),
            "steps": sorted(step.__name__ for step in app.steps["consumer"]),
            "acks_late": app.conf.task_acks_late,
            "default_queue": app.conf.task_default_queue,
            "visibility_timeout": app.conf.broker_transport_options["visibility_timeout"],
            "beat": sorted(app.conf.beat_schedule),
            "time_zone": settings.TIME_ZONE,
        }))
    ''',
    "tick.py": '''
        import json
        import django
        django.setup()
        from deploykit.celery_app import app
        from deploykit.ops.checks import beat_status
        from deploykit.tasks import beat_tick, probe
        before = beat_status()
        beat_tick.apply().get()
        print(json.dumps({"before": before, "after": beat_status(), "probe": probe.apply().get()}))
    ''',
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("own-project")
    for name, text in PROJECT_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def project_env(project: Path, **env_values) -> dict:
    """The own project's environment for its processes (debug mode unless overridden); the venv's bin
    (deploykit's start scripts) on PATH."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(project),
            "DJANGO_SETTINGS_MODULE": "mysite.settings", "DEPLOYKIT_CELERY_APP": "mysite.celery_app:app",
            "DJANGO_DEBUG": "true", **env_values}


def run(project: Path, *args, **env_values) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=project, env=project_env(project, **env_values),
                          capture_output=True, text=True, timeout=120)


def test_own_project_gets_the_whole_contract_from_one_call(project):
    result = run(project, "inspect_app.py")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["app"] == "mysite"
    assert {"shop.tasks.ship_order", "shop.tasks.thumbnail", "deploykit.probe", "deploykit.beat_tick",
            "deploykit.purge_idempotency_keys"} <= set(seen["tasks"])
    assert seen["unbounded"] == []  # every @shared_task got the redelivery bound, built-ins included
    assert {"HeartbeatStep", "LeaseStep"} <= set(seen["steps"])
    assert seen["acks_late"] is True and seen["visibility_timeout"] == 3600
    assert seen["default_queue"] == "celery" and seen["time_zone"] == "Europe/Paris"
    assert seen["beat"] == ["beat-tick", "nightly", "purge-idempotency-keys"]


def test_own_project_beat_health_and_probe_without_a_hook(project):
    migrate = run(project, "manage.py", "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    result = run(project, "tick.py")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["before"] == {"ok": False, "last_run": None, "error": "beat has not run yet"}
    assert seen["after"]["ok"] is True
    assert set(seen["probe"]) == {"hostname", "queue", "time"}


def test_own_project_check_queues(project):
    missing = run(project, "manage.py", "check_queues", "--consumed", "celery,io")
    assert missing.returncode == 1
    assert ("queue 'images' gets shop.tasks.thumbnail but no worker pool consumes it (--consumed=celery,io)"
            in missing.stderr)
    assert "queue 'reports' gets beat entry 'nightly' but no worker pool consumes it" in missing.stderr
    ok = run(project, "manage.py", "check_queues", DEPLOYKIT_CONSUMED_QUEUES="celery,io,images,reports")
    assert ok.returncode == 0, ok.stderr
    assert "routed to 4 queues (celery, images, io, reports)" in ok.stdout
    skipped = run(project, "manage.py", "check_queues")
    assert skipped.returncode == 0 and "skipped, DEPLOYKIT_CONSUMED_QUEUES is empty" in skipped.stdout


def test_own_project_build_step_without_secrets(project, tmp_path):
    collect = run(project, "manage.py", "collectstatic", "--noinput", DJANGO_DEBUG="false",
                  MEDIA_ROOT=str(tmp_path / "media"))
    assert collect.returncode == 0, collect.stderr
    check = run(project, "manage.py", "check", DJANGO_DEBUG="false", DEPLOYKIT_BUILD_STEP="true")
    assert check.returncode == 0, check.stderr
    refused = run(project, "manage.py", "check", DJANGO_DEBUG="false")
    assert refused.returncode != 0 and "- DJANGO_SECRET_KEY is required in production mode" in refused.stderr
