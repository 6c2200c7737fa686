"""Production-mode start-up: refused with a message naming the variable; `check --deploy` clean;
collectstatic at image-build time without any secret; the settings helpers themselves."""

import os
import runpy
import secrets
import subprocess
import sys

import pytest
from app_services import APP, BIN, app_env

from deploykit.config import env as envmod

GOOD_KEY = secrets.token_urlsafe(64)
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": GOOD_KEY,
    "DJANGO_ALLOWED_HOSTS": "app.example.com",
    "DATABASE_URL": "postgres://app:s3cret-pass@db.internal:5432/app",
    "CELERY_BROKER_URL": "redis://:s3cret-pass@redis.internal:6379/0",
}
CONTRACT_PREFIXES = ("DJANGO_", "CELERY_", "FLOWER_", "STORAGE_", "EMAIL_", "DATABASE_", "MEDIA_ROOT",
                     "UPLOAD_", "IMAGE_", "LOG_", "DIGEST_", "API_")


def clean_env(**values) -> dict:
    env = {k: v for k, v in app_env().items() if not k.startswith(CONTRACT_PREFIXES)}
    env.update(values)
    return env


def manage(*args, **env_values) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=APP, env=clean_env(**env_values),
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_clean_in_production_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    "overrides,variable,message",
    [
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY", "is required in production mode"),
        ({"DJANGO_SECRET_KEY": "change-me"}, "DJANGO_SECRET_KEY", "placeholder"),
        ({"DJANGO_SECRET_KEY": "short-but-random-Zx81"}, "DJANGO_SECRET_KEY", "at least 50 characters"),
        ({"DJANGO_SECRET_KEY": "django-insecure-" + GOOD_KEY}, "DJANGO_SECRET_KEY", "placeholder"),
        ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS", "is required"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "DJANGO_ALLOWED_HOSTS", "not '*'"),
        ({"DJANGO_ALLOWED_HOSTS": " , "}, "DJANGO_ALLOWED_HOSTS", "names no host"),
        ({"CELERY_BROKER_URL": "http://broker:80/"}, "CELERY_BROKER_URL", "unsupported scheme 'http'"),
        ({"CELERY_BROKER_URL": "memory://"}, "CELERY_BROKER_URL", "redis://, rediss://, amqp://, amqps://"),
        ({"CELERY_RESULT_BACKEND": "http://results/"}, "CELERY_RESULT_BACKEND", "unsupported scheme 'http'"),
        ({"CELERY_RESULT_BACKEND": "rpc://"}, "CELERY_RESULT_BACKEND", "redis://, rediss://, django-db"),
        ({"DATABASE_URL": ""}, "DATABASE_URL", "is required"),
        ({"DATABASE_URL": "nonsense://x"}, "DATABASE_URL", "not a valid database URL"),
        ({"CELERY_BROKER_URL": ""}, "CELERY_BROKER_URL", "is required"),
        ({"DEPLOYKIT_VISIBILITY_TIMEOUT": "300"}, "DEPLOYKIT_VISIBILITY_TIMEOUT", "larger than the hard time limit"),
        ({"DEPLOYKIT_VISIBILITY_TIMEOUT": "400", "CELERY_TASK_TIME_LIMIT": "390", "CELERY_TASK_SOFT_TIME_LIMIT": "300"},
         "DEPLOYKIT_VISIBILITY_TIMEOUT", "longest countdown"),
        ({"CELERY_TASK_TIME_LIMIT": "100"}, "CELERY_TASK_TIME_LIMIT", "must exceed CELERY_TASK_SOFT_TIME_LIMIT"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG", "must be true or false"),
        ({"CELERY_WORKER_PREFETCH_MULTIPLIER": "many"}, "CELERY_WORKER_PREFETCH_MULTIPLIER", "must be an integer"),
        ({"DEPLOYKIT_MAX_REDELIVERIES": "-1"}, "DEPLOYKIT_MAX_REDELIVERIES", "at least 0"),
        ({"DEPLOYKIT_RABBITMQ_QUEUE_TYPE": "stream"}, "DEPLOYKIT_RABBITMQ_QUEUE_TYPE", "must be quorum or classic"),
        ({"CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//", "DEPLOYKIT_MAX_REDELIVERIES": "20"},
         "DEPLOYKIT_MAX_REDELIVERIES", "below the quorum queues' delivery limit (20)"),
        ({"CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//", "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL": "mq:15672"},
         "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL", "must be an http:// or https:// URL"),
        ({"CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//",
          "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL": "http://u:longpassword@mq:15672/"},
         "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL", "must not carry credentials"),
        ({"CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//", "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL": "http://mq:port/"},
         "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL", "port that is not a number"),
        ({"DEPLOYKIT_RABBITMQ_MANAGEMENT_URL": "http://mq:15672/"}, "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL",
         "CELERY_BROKER_URL is not RabbitMQ"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT", "'text' or 'json'"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "must be one of DEBUG"),
        ({"DEPLOYKIT_STORAGE_BACKEND": "ftp"}, "DEPLOYKIT_STORAGE_BACKEND", "'filesystem' or 's3'"),
        ({"DEPLOYKIT_STORAGE_BACKEND": "s3"}, "DEPLOYKIT_STORAGE_S3_BUCKET", "is required"),
        ({"DJANGO_SUPERUSER_PASSWORD": "admin"}, "DJANGO_SUPERUSER_PASSWORD", "placeholder"),
        ({"EMAIL_URL": "smtp://[bad"}, "EMAIL_URL", "not a valid e-mail URL"),
        ({"DEPLOYKIT_API_THROTTLE_RATE": "fast"}, "DEPLOYKIT_API_THROTTLE_RATE", "use <requests>/<second|minute|hour|day>"),
        ({"DEPLOYKIT_API_THROTTLE_RATE": "0/minute"}, "DEPLOYKIT_API_THROTTLE_RATE", "at least 1 request"),
        ({"DEPLOYKIT_API_THROTTLE_UPLOAD_RATE": "10/fortnight"}, "DEPLOYKIT_API_THROTTLE_UPLOAD_RATE", "e.g. 120/minute"),
    ],
)
def test_production_start_up_refused_naming_the_variable(monkeypatch, overrides, variable, message):
    with pytest.raises(envmod.ConfigurationError) as refused:
        load_settings(monkeypatch, **{**PRODUCTION, **overrides})
    text = str(refused.value)
    assert text.startswith("Refusing to start")
    line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"- {variable}")), "")
    assert message in line, text


def load_settings(monkeypatch, **values) -> dict:
    """Execute config/settings.py in-process with exactly these contract variables."""
    for name in list(os.environ):
        if name.startswith(CONTRACT_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(APP / "config" / "settings.py"))


def test_missing_secret_stops_manage_py():
    """The same refusal seen from a real process start (what an operator sees in the logs)."""
    result = manage("migrate", **{**PRODUCTION, "DJANGO_SECRET_KEY": ""})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required in production mode" in result.stderr


def test_all_missing_variables_are_named_at_once():
    result = manage("check", DJANGO_DEBUG="false")
    assert result.returncode != 0
    for variable in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL"):
        assert f"- {variable} is required in production mode" in result.stderr


def test_unsafe_visibility_timeout_refuses_worker_start_up(tmp_path):
    """The worker (not just manage.py) refuses to start with a visibility timeout below the hard limit."""
    env = clean_env(**PRODUCTION, DEPLOYKIT_VISIBILITY_TIMEOUT="60")
    result = subprocess.run([str(BIN / "deploykit-worker")], env=env, cwd=APP,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "DEPLOYKIT_VISIBILITY_TIMEOUT (60s) must be larger than the hard time limit" in result.stderr


def test_debug_mode_needs_nothing(monkeypatch):
    loaded = load_settings(monkeypatch, DJANGO_DEBUG="true")
    assert loaded["DEBUG"] is True and loaded["SECURE_SSL_REDIRECT"] is False
    assert loaded["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["CELERY_BROKER_URL"] == "redis://localhost:6379/0"


def test_collectstatic_at_build_time_without_secrets(tmp_path):
    """The image build runs collectstatic with DJANGO_DEBUG off and no secrets/database/broker."""
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=APP, env=clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "static files copied" in result.stdout or "unmodified" in result.stdout
    assert (APP / "staticfiles" / "staticfiles.json").exists()  # hashed names for WhiteNoise


# --- the helpers, in-process ---------------------------------------------------------------------
def make_env(**values) -> envmod.Env:
    return envmod.Env(values)


def test_env_typed_getters_and_defaults():
    env = make_env(DJANGO_DEBUG="yes", N="5", F="1.5", L="a, b,,c", B="off")
    assert env.debug and not env.production
    assert env.int("N", 1) == 5 and env.int("MISSING", 7) == 7
    assert env.float("F", 0.0) == 1.5 and env.float("MISSING", 2.0) == 2.0
    assert env.list("L") == ["a", "b", "c"] and env.list("MISSING", ["x"]) == ["x"]
    assert env.bool("B", True) is False and env.bool("MISSING", True) is True
    assert env.get("MISSING", required=True, debug_default="dev") == "dev"
    assert env.get("MISSING") is None
    assert env.is_set("N") and not env.is_set("MISSING")
    assert env.errors == []


def test_env_collects_errors():
    env = make_env(DJANGO_DEBUG="false", N="x", F="y", S="change-me", M="2")
    env.int("N", 1)
    env.float("F", 1.0)
    env.int("M", 5, minimum=3)
    env.get("S", secret=True)
    env.get("R", required=True)
    assert len(env.errors) == 5
    with pytest.raises(envmod.ConfigurationError, match="production mode"):
        env.raise_if_invalid()


def test_env_cast_error():
    env = make_env(N="abc")
    assert env.get("N", cast=int) is None
    assert env.errors and env.errors[0].startswith("N has an invalid value")


def test_secret_and_password_problems():
    assert envmod.secret_key_problem(GOOD_KEY) is None
    assert "placeholder" in envmod.secret_key_problem("please-changeme-" + GOOD_KEY)
    assert "at least 50" in envmod.secret_key_problem("a" * 60)
    assert envmod.password_problem("correct-horse") is None
    assert "placeholder" in envmod.password_problem("secret")
    assert "at least 8" in envmod.password_problem("abc12")


def test_check_visibility_timeout():
    assert envmod.check_visibility_timeout(3600, 300, 600) is None
    assert "hard time limit" in envmod.check_visibility_timeout(300, 300, 600)
    assert "countdown" in envmod.check_visibility_timeout(500, 300, 600)


@pytest.mark.parametrize(
    "values,problem",
    [
        ({}, "FLOWER_USER is required"),
        ({"FLOWER_USER": "ops"}, "FLOWER_PASSWORD is required"),
        ({"FLOWER_USER": "ops", "FLOWER_PASSWORD": "flower"}, "FLOWER_PASSWORD is a placeholder"),
        ({"FLOWER_USER": "ops", "FLOWER_PASSWORD": "short"}, "at least 8"),
        ({"FLOWER_USER": "o:ps", "FLOWER_PASSWORD": "long-enough-pw"}, "must not contain ':'"),
        ({"DJANGO_DEBUG": "true", "FLOWER_USER": "ops"}, "must be set together"),
    ],
)
def test_check_flower_problems(values, problem):
    problems = envmod.check_flower(values)
    assert any(problem in p for p in problems), problems


def test_check_flower_ok():
    assert envmod.check_flower({"FLOWER_USER": "ops", "FLOWER_PASSWORD": "long-enough-pw"}) == []
    assert envmod.check_flower({"DJANGO_DEBUG": "true"}) == []


def test_is_collectstatic():
    assert envmod.is_collectstatic(["manage.py", "collectstatic", "--noinput"])
    assert not envmod.is_collectstatic(["manage.py", "check"])
    assert not envmod.is_collectstatic(["gunicorn"])


def test_settings_defaults_in_this_process(settings):
    """The contract's defaults as seen by the test process (production mode)."""
    assert settings.DEBUG is False
    assert settings.SECURE_SSL_REDIRECT is True and settings.SECURE_HSTS_SECONDS == 31536000
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert settings.CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS
    assert settings.CELERY_ACCEPT_CONTENT == ["json"] and settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == 3600
    assert settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS["visibility_timeout"] == 3600
    assert settings.CELERY_RESULT_BACKEND == os.environ["CELERY_BROKER_URL"]
    # Celery's defaults: Flower switches worker events on while it runs.
    assert not settings.CELERY_WORKER_SEND_TASK_EVENTS and not settings.CELERY_TASK_SEND_SENT_EVENT
    assert set(settings.CELERY_TASK_QUEUES) == {"default", "io", "images"}
    assert settings.TASK_RETRY_BACKOFF_MAX == __import__("jobs.tasks").tasks.RETRY_BACKOFF_MAX


@pytest.mark.parametrize("broker,backend", [
    ("rediss://:s3cret-pass@redis.internal:6380/0", None), ("amqps://u:longpassword@mq:5671//", "django-db"),
    ("redis://redis.internal:6379/0", "redis://redis.internal:6379/1")])
def test_supported_broker_and_result_schemes_are_accepted(monkeypatch, broker, backend):
    values = {**PRODUCTION, "CELERY_BROKER_URL": broker}
    if backend:
        values["CELERY_RESULT_BACKEND"] = backend
    loaded = load_settings(monkeypatch, **values)
    # rediss:// gets its certificate check written in (tests/app/test_app_redis_tls.py)
    assert loaded["CELERY_BROKER_URL"] == (f"{broker}?ssl_cert_reqs=required" if broker.startswith("rediss") else broker)
    # Redis brokers get the journaling transport (deploykit/delivery/redis_transport.py); others kombu's own.
    journaling = "deploykit.delivery.redis_transport:Transport" if broker.startswith("redis") else None
    assert loaded["CELERY_BROKER_TRANSPORT"] == journaling


def test_debug_mode_allows_the_in_memory_broker(monkeypatch):
    """tests/storage runs the app in debug mode on memory:// (no broker): only production refuses it."""
    loaded = load_settings(monkeypatch, DJANGO_DEBUG="true", CELERY_BROKER_URL="memory://")
    assert loaded["CELERY_BROKER_URL"] == "memory://"


def test_amqp_broker_defaults_to_django_db_results(monkeypatch):
    loaded = load_settings(monkeypatch, **{**PRODUCTION, "CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//"})
    assert loaded["CELERY_RESULT_BACKEND"] == "django-db"
    # RabbitMQ publishes wait for the broker's confirm (docs/reliability.md); Redis has no such option.
    assert loaded["CELERY_BROKER_TRANSPORT_OPTIONS"]["confirm_publish"] is True
    assert "confirm_publish" not in load_settings(monkeypatch, **PRODUCTION)["CELERY_BROKER_TRANSPORT_OPTIONS"]


def test_rabbitmq_queues_are_quorum_queues_on_topic_exchanges(monkeypatch):
    """docs/reliability.md#rabbitmq-quorum-queues: quorum queues by default on amqp://, topic exchanges so that
    countdowns use native delayed delivery; classic on request; Redis untouched."""
    amqp = {**PRODUCTION, "CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//"}
    loaded = load_settings(monkeypatch, **amqp)
    assert set(loaded["CELERY_TASK_QUEUES"]) == {"default", "io", "images"}
    for name, queue in loaded["CELERY_TASK_QUEUES"].items():
        assert queue == {"exchange": name, "routing_key": name, "exchange_type": "topic",
                         "queue_arguments": {"x-queue-type": "quorum"}}, queue
    assert loaded["CELERY_TASK_DEFAULT_QUEUE_TYPE"] == "quorum"
    assert loaded["CELERY_WORKER_DETECT_QUORUM_QUEUES"] is True
    assert loaded["CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE"] == "quorum"
    assert loaded["DEPLOYKIT_MAX_REDELIVERIES"] < 20  # RabbitMQ's default delivery limit: the app's bound first
    assert loaded["DEPLOYKIT_RABBITMQ_MANAGEMENT_URL"] == ""  # off unless set
    classic = load_settings(monkeypatch, **amqp, DEPLOYKIT_RABBITMQ_QUEUE_TYPE="classic")
    redis = load_settings(monkeypatch, **PRODUCTION)
    for loaded in (classic, redis):
        assert loaded["CELERY_TASK_QUEUES"]["default"] == {"exchange": "default", "routing_key": "default"}
        assert "CELERY_TASK_DEFAULT_QUEUE_TYPE" not in loaded
    managed = load_settings(monkeypatch, **amqp, DEPLOYKIT_RABBITMQ_MANAGEMENT_URL="https://mq.internal:15671/")
    assert managed["DEPLOYKIT_RABBITMQ_MANAGEMENT_URL"] == "https://mq.internal:15671/"


def test_celery_sees_quorum_queues_and_routes_by_queue_name(monkeypatch):
    """What Celery makes of the declarations: it detects quorum queues (per-consumer QoS, native delayed
    delivery) and a task routed to io still reaches only io (topic binding key = the queue name)."""
    from celery import Celery
    from celery.utils.quorum_queues import detect_quorum_queues
    from kombu.transport.native_delayed_delivery import calculate_routing_key

    loaded = load_settings(monkeypatch, **{**PRODUCTION, "CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//"})
    app = Celery("t", set_as_current=False)
    app.conf.update(task_queues=loaded["CELERY_TASK_QUEUES"], task_routes=loaded["CELERY_TASK_ROUTES"],
                    task_default_queue=loaded["CELERY_TASK_DEFAULT_QUEUE"],
                    task_create_missing_queues=False)
    assert detect_quorum_queues(app, "amqp") == (True, "default")
    assert detect_quorum_queues(app, "redis") == (False, "")
    queue = app.amqp.router.route({}, "jobs.tasks.send_email")["queue"]
    assert (queue.name, queue.exchange.name, queue.exchange.type, queue.routing_key) == ("io", "io", "topic", "io")
    assert calculate_routing_key(600, "io").endswith(".io")  # a delayed io task comes back through binding #.io


def test_postgres_connections_are_reused_with_health_checks(monkeypatch):
    loaded = load_settings(monkeypatch, **{**PRODUCTION, "DATABASE_CONN_MAX_AGE": "0"})
    database = loaded["DATABASES"]["default"]
    assert database["CONN_MAX_AGE"] == 0 and database["CONN_HEALTH_CHECKS"] is True
    assert load_settings(monkeypatch, **PRODUCTION)["DATABASES"]["default"]["CONN_MAX_AGE"] == 60


def test_email_and_worker_settings_from_env(monkeypatch):
    loaded = load_settings(monkeypatch, **PRODUCTION, EMAIL_URL="smtp+tls://u:pw@mail.example.com:587",
                           CELERY_WORKER_CONCURRENCY="3", CELERY_WORKER_PREFETCH_MULTIPLIER="4",
                           DEPLOYKIT_HEARTBEAT_MAX_AGE="20", LOG_FORMAT="json")
    assert loaded["EMAIL_HOST"] == "mail.example.com" and loaded["EMAIL_PORT"] == 587
    assert loaded["EMAIL_USE_TLS"] is True
    assert loaded["CELERY_WORKER_CONCURRENCY"] == 3 and loaded["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 4
    assert loaded["DEPLOYKIT_HEARTBEAT_INTERVAL"] == 5
    assert loaded["LOGGING"]["handlers"]["stdout"]["formatter"] == "json"


def test_s3_storage_settings(monkeypatch):
    loaded = load_settings(monkeypatch, **PRODUCTION, DEPLOYKIT_STORAGE_BACKEND="s3", DEPLOYKIT_STORAGE_S3_BUCKET="media",
                           DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID="app", DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY="a-long-s3-secret",
                           DEPLOYKIT_STORAGE_S3_ENDPOINT_URL="http://s3:9000")
    default = loaded["STORAGES"]["default"]
    assert default["BACKEND"] == "deploykit.ops.storage.S3Storage"
    assert default["OPTIONS"]["bucket_name"] == "media"


@pytest.mark.parametrize("raw,parsed", [("120/minute", (120, 60)), ("5/s", (5, 1)), (" 7 / Hour ", (7, 3600)),
                                        ("1000/day", (1000, 86400)), ("off", None), ("OFF", None)])
def test_parse_rate(raw, parsed):
    assert envmod.parse_rate(raw) == parsed


def test_api_throttle_defaults_and_where_the_counters_live(monkeypatch):
    loaded = load_settings(monkeypatch, **PRODUCTION)
    assert (loaded["DEPLOYKIT_API_THROTTLE_RATE"], loaded["DEPLOYKIT_API_THROTTLE_UPLOAD_RATE"]) == ((120, 60), (30, 60))
    assert loaded["CACHES"]["throttle"]["LOCATION"] == PRODUCTION["CELERY_BROKER_URL"]  # Redis broker
    amqp = {**PRODUCTION, "CELERY_BROKER_URL": "amqp://u:longpassword@mq:5672//", "DEPLOYKIT_API_THROTTLE_RATE": "off"}
    loaded = load_settings(monkeypatch, **amqp)
    assert loaded["DEPLOYKIT_API_THROTTLE_RATE"] is None
    assert loaded["CACHES"]["throttle"]["BACKEND"] == "deploykit.ops.throttle.CounterDatabaseCache"  # keeps windows
    loaded = load_settings(monkeypatch, **amqp, CELERY_RESULT_BACKEND="redis://:s3cret-pass@cache:6379/1")
    assert loaded["CACHES"]["throttle"]["LOCATION"] == "redis://:s3cret-pass@cache:6379/1"
