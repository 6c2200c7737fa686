"""Everything deploykit owns in a Django settings module, set by one call at its end:

    from deploykit.settings import apply
    apply(globals())

`apply(namespace)` reads the configuration contract (deploykit's `contract/deploykit.toml`, plus the
project's file named by `DEPLOYKIT_PROJECT_CONTRACT` when the namespace sets it) from the environment and
sets the Celery broker, result store, delivery and timeouts, DATABASES from DATABASE_URL, storage,
logging, the throttle cache, the security settings, the probe middleware, the apps deploykit needs and
its beat entries; then it refuses an unsafe production start-up naming each variable
(`env.raise_if_invalid()`).

The rule between the project and deploykit:
- what the environment configures (DJANGO_*, DATABASE_URL, CELERY_* of the contract, DEPLOYKIT_*, LOG_*)
  and what delivery depends on (late acks, the transport and its options, the visibility timeout) is
  deploykit's: set whatever the module said before. DATABASE_URL wins over a DATABASES the module wrote;
  only when it is unset does a non-SQLite `DATABASES["default"]` of the project stay (the project then
  configures its database its own way, and DATABASE_URL is not required).
- what is the project's (its queues, routes, default queue, beat entries, TIME_ZONE, REST settings,
  serializers, other caches and storages) is kept: lists and dicts are merged, a value the module set
  explicitly is not replaced (`setdefault`).

The project's own variables are read with the same `Env`: `env = environment(globals())` before them
(apply() reuses it, so their problems are reported together with deploykit's).

Image builds: `manage.py collectstatic` is recognised by itself; any other step that loads the settings
without secrets (another build command) sets `DEPLOYKIT_BUILD_STEP=true`. In a build step nothing is
required and nothing is checked: placeholders stand in for the secret key and the database, and no
process of a build step ever serves a request or consumes a task.
"""

from __future__ import annotations

import os
from pathlib import Path
from deploykit import contract
from deploykit.config.env import (
    BROKER_SCHEMES,
    RESULT_BACKEND_SCHEMES,
    Env,
    check_visibility_timeout,
    fallbacks_problem,
    hosts_problem,
    is_redis_url,
    parse_rate,
    secret_key_problem,
    secure_redis_url,
    url_scheme_problem,
)
from deploykit.config.timeouts import BRPOP_TIMEOUT, THROTTLE_CACHE_TIMEOUT, deploykit_timeouts, web_timeouts
from deploykit.delivery import rabbitmq
from deploykit.ops import rabbitmq_api

__all__ = ["apply", "environment", "web_timeouts", "PROBE_MIDDLEWARE", "REQUIRED_APPS"]

ENV_KEY = "_deploykit_env"  # where the Env lives in the settings namespace (lower case: not a Django setting)
PROBE_MIDDLEWARE = "deploykit.ops.middleware.ProbeMiddleware"
SECURITY_MIDDLEWARE = "django.middleware.security.SecurityMiddleware"
REQUIRED_APPS = ("django_celery_beat", "deploykit")
# Added only where task results go to the database (CELERY_RESULT_BACKEND django-db, the default on
# RabbitMQ): a project on Redis need not install django-celery-results.
RESULTS_APP = "django_celery_results"
PROBE_PATTERNS = [r"^healthz$", r"^readyz$", r"^status$", r"^metrics$"]
# The throttle's counters without Redis: incr keeps a counter's window, a full table culls only expired rows
# (deploykit/ops/throttle.py). MAX_ENTRIES: the row count above which a write first sweeps expired rows.
THROTTLE_DATABASE_CACHE = {"BACKEND": "deploykit.ops.throttle.CounterDatabaseCache", "LOCATION": "api_throttle",
                           "OPTIONS": {"MAX_ENTRIES": 10_000}}
BEAT_TICK_ENTRY = "beat-tick"  # the name the reference project's own tick had: its stored row is updated
PURGE_ENTRY = "purge-idempotency-keys"
DEFAULT_LONGEST_COUNTDOWN = 600  # Celery's retry_backoff_max


def environment(namespace: dict) -> Env:
    """The `Env` of this settings module (created once): read the project's own variables with it."""
    env = namespace.get(ENV_KEY)
    if not isinstance(env, Env):
        project = namespace.get("DEPLOYKIT_PROJECT_CONTRACT")
        env = Env(contract=contract.load(project=project))
        namespace[ENV_KEY] = env
    return env


def apply(namespace: dict) -> None:
    """Set deploykit's settings in `namespace` (a settings module's `globals()`), then refuse an unsafe
    production start-up (ConfigurationError naming every variable to fix)."""
    env = environment(namespace)
    ns = namespace
    ns["DEBUG"] = env.debug
    base_dir = Path(ns.get("BASE_DIR") or Path.cwd())
    _django(env, ns, base_dir)
    _database(env, ns, base_dir)
    _security(env, ns)
    _files(env, ns, base_dir)
    _celery(env, ns)
    _rabbitmq(env, ns)
    _timeouts(env, ns)
    _beat(env, ns)
    _throttle(env, ns)
    _logging(env, ns)
    env.raise_if_invalid()


def _django(env: Env, ns: dict, base_dir: Path) -> None:
    # In a build step (and debug mode) the contract's fixed development key: it never serves a request.
    ns["SECRET_KEY"] = env.value("DJANGO_SECRET_KEY", check=secret_key_problem)
    # Previous keys, during a rotation: Django verifies signatures (sessions, password-reset tokens,
    # signing.loads) with the key, then with each fallback; it signs with the key only.
    fallbacks = ns["SECRET_KEY_FALLBACKS"] = env.value("DJANGO_SECRET_KEY_FALLBACKS", check=fallbacks_problem)
    if env.production and not env.build_step and ns["SECRET_KEY"] in fallbacks:
        env.error("DJANGO_SECRET_KEY_FALLBACKS", "contains the current DJANGO_SECRET_KEY: list only the previous "
                                                 "keys (the new key goes in DJANGO_SECRET_KEY)")
    ns["ALLOWED_HOSTS"] = env.value("DJANGO_ALLOWED_HOSTS", check=hosts_problem) or []
    ns["CSRF_TRUSTED_ORIGINS"] = env.value("DJANGO_CSRF_TRUSTED_ORIGINS")
    ns["ADMIN_URL"] = env.value("DJANGO_ADMIN_URL").strip("/") + "/"
    # The migrate step creates/updates this superuser when set (manage.py ensure_superuser).
    for field in ("USERNAME", "EMAIL", "PASSWORD"):
        ns[f"DJANGO_SUPERUSER_{field}"] = env.value(f"DJANGO_SUPERUSER_{field}")
    apps = list(ns.get("INSTALLED_APPS") or [])
    ns["INSTALLED_APPS"] = apps + [app for app in REQUIRED_APPS if app not in apps and not _has_app(apps, app)]
    ns["MIDDLEWARE"] = with_probe_middleware(ns.get("MIDDLEWARE") or [])
    ns.setdefault("DEFAULT_AUTO_FIELD", "django.db.models.BigAutoField")
    ns.setdefault("TIME_ZONE", "UTC")
    ns.setdefault("USE_TZ", True)
    ns.update(env.email("EMAIL_URL"))
    ns["DEFAULT_FROM_EMAIL"] = env.value("DEFAULT_FROM_EMAIL")
    ns.setdefault("SERVER_EMAIL", ns["DEFAULT_FROM_EMAIL"])
    ns.setdefault("EMAIL_TIMEOUT", 10)


def _has_app(apps: list[str], label: str) -> bool:
    """`deploykit` also counts when listed as its AppConfig path."""
    return any(app == label or app.startswith(f"{label}.apps.") for app in apps)


def with_probe_middleware(middleware: list[str]) -> list[str]:
    """The probe paths are answered before host validation and the SSL redirect (deploykit/ops/middleware.py):
    ProbeMiddleware goes right before SecurityMiddleware (first when there is none); kept where listed."""
    middleware = list(middleware)
    if PROBE_MIDDLEWARE in middleware:
        return middleware
    at = middleware.index(SECURITY_MIDDLEWARE) if SECURITY_MIDDLEWARE in middleware else 0
    return middleware[:at] + [PROBE_MIDDLEWARE] + middleware[at:]


def _database(env: Env, ns: dict, base_dir: Path) -> None:
    """DATABASE_URL wins. Unset, a non-SQLite default the project configured stays (and DATABASE_URL is not
    required); otherwise DATABASE_URL is required in production, SQLite in debug mode."""
    databases = dict(ns.get("DATABASES") or {})
    project_default = databases.get("default") or {}
    project_sqlite = project_default.get("ENGINE", "").endswith("sqlite3")
    if not env.is_set("DATABASE_URL") and project_default and not project_sqlite:
        db = dict(project_default)
    else:
        sqlite_path = project_default.get("NAME") if project_sqlite else None
        sqlite_path = sqlite_path or base_dir / "db.sqlite3"
        db = env.db("DATABASE_URL", debug_default=f"sqlite:///{sqlite_path}")
        if db is None:  # production error already recorded, or the build step: a harmless placeholder
            db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite_path)}
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # WAL + IMMEDIATE transactions: web, worker and beat processes can share one SQLite file in development.
        db.setdefault("OPTIONS", {}).update(
            {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
        )
        db["CONN_MAX_AGE"] = 0
    else:
        db["CONN_MAX_AGE"] = env.value("DATABASE_CONN_MAX_AGE")
        db["CONN_HEALTH_CHECKS"] = True
    databases["default"] = db
    ns["DATABASES"] = databases
    # Beat's single-instance lock is a session advisory lock: it needs a direct connection to PostgreSQL, not
    # one through PgBouncer in transaction mode (deploykit/ops/beat.py refuses that and names this variable).
    lock_db = env.db("DEPLOYKIT_BEAT_LOCK_DATABASE_URL")
    if lock_db and lock_db["ENGINE"] != "django.db.backends.postgresql":
        env.error("DEPLOYKIT_BEAT_LOCK_DATABASE_URL", "must be a postgres:// URL (the lock is a PostgreSQL advisory lock)")
    ns["DEPLOYKIT_BEAT_LOCK_DATABASE"] = lock_db
    # A lock holder (or its database) that stops answering is noticed within this many seconds: TCP keepalives
    # on both ends of the lock connection, and a deadline on each lock check (beat then exits to be restarted).
    ns["DEPLOYKIT_BEAT_LOCK_TIMEOUT"] = env.value("DEPLOYKIT_BEAT_LOCK_TIMEOUT")
    # `migrate` (deploykit.ops.migrate) takes table locks under these, in seconds.
    ns["DEPLOYKIT_MIGRATE_LOCK_TIMEOUT"] = env.value("DEPLOYKIT_MIGRATE_LOCK_TIMEOUT")
    ns["DEPLOYKIT_MIGRATE_STATEMENT_TIMEOUT"] = env.value("DEPLOYKIT_MIGRATE_STATEMENT_TIMEOUT")
    ns.setdefault("BEAT_LOCK_ID", 0x0BEA7)  # any constant bigint, unique per project sharing a database


def _security(env: Env, ns: dict) -> None:
    debug = ns["DEBUG"]
    # The app always runs behind one proxy that sets X-Forwarded-Proto.
    ns["SECURE_PROXY_SSL_HEADER"] = ("HTTP_X_FORWARDED_PROTO", "https")
    ns["SECURE_SSL_REDIRECT"] = env.value("DJANGO_SECURE_SSL_REDIRECT")
    exempt = list(ns.get("SECURE_REDIRECT_EXEMPT") or [])
    ns["SECURE_REDIRECT_EXEMPT"] = exempt + [p for p in PROBE_PATTERNS if p not in exempt]
    ns["SECURE_HSTS_SECONDS"] = env.value("DJANGO_SECURE_HSTS_SECONDS")
    ns["SECURE_HSTS_INCLUDE_SUBDOMAINS"] = env.value("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
    ns["SECURE_HSTS_PRELOAD"] = env.value("DJANGO_SECURE_HSTS_PRELOAD")
    ns["SESSION_COOKIE_SECURE"] = not debug
    ns["CSRF_COOKIE_SECURE"] = not debug
    ns.setdefault("X_FRAME_OPTIONS", "DENY")
    ns.setdefault("SECURE_CONTENT_TYPE_NOSNIFF", True)


def _files(env: Env, ns: dict, base_dir: Path) -> None:
    from deploykit.ops.storage import build_storages

    ns.setdefault("STATIC_URL", "static/")
    ns.setdefault("STATIC_ROOT", base_dir / "staticfiles")
    ns.setdefault("MEDIA_URL", "media/")
    ns["MEDIA_ROOT"] = env.value("MEDIA_ROOT", debug_default=str(base_dir / "media"))
    # The project's other storage aliases stay; `default` and `staticfiles` are DEPLOYKIT_STORAGE_BACKEND's.
    ns["STORAGES"] = {**(ns.get("STORAGES") or {}), **build_storages(env, media_root=ns["MEDIA_ROOT"], debug=ns["DEBUG"])}


def _celery(env: Env, ns: dict) -> None:
    from deploykit.delivery.redis_transport import broker_transport

    # rediss://: the certificate check made explicit (`required` unless the URL says otherwise) in both URLs,
    # so the broker, the result backend and the throttle cache verify the server alike (config/env.py).
    broker = _secured("CELERY_BROKER_URL", env.value(
        "CELERY_BROKER_URL", check=lambda url: url_scheme_problem(url, BROKER_SCHEMES)))
    ns["CELERY_BROKER_URL"] = broker
    # Redis: kombu's transport plus a publish journal, so no task is lost between BRPOP and `unacked`.
    ns["CELERY_BROKER_TRANSPORT"] = broker_transport(broker)
    ns["CELERY_RESULT_BACKEND"] = _secured("CELERY_RESULT_BACKEND", env.value(
        "CELERY_RESULT_BACKEND", default=broker if is_redis_url(broker) else "django-db",
        check=lambda url: url_scheme_problem(url, RESULT_BACKEND_SCHEMES)))
    if (ns["CELERY_RESULT_BACKEND"] or "").startswith("django-") and not _has_app(ns["INSTALLED_APPS"], RESULTS_APP):
        ns["INSTALLED_APPS"] = [*ns["INSTALLED_APPS"], RESULTS_APP]
    for name, value in {"CELERY_TASK_SERIALIZER": "json", "CELERY_RESULT_SERIALIZER": "json",
                        "CELERY_ACCEPT_CONTENT": ["json"], "CELERY_RESULT_ACCEPT_CONTENT": ["json"],
                        "CELERY_TIMEZONE": ns["TIME_ZONE"], "CELERY_ENABLE_UTC": True}.items():
        ns.setdefault(name, value)
    # Delivery: a task whose worker dies is redelivered, at most DEPLOYKIT_MAX_REDELIVERIES times (deploykit.celery).
    ns["CELERY_TASK_ACKS_LATE"] = True
    ns["CELERY_TASK_REJECT_ON_WORKER_LOST"] = True
    ns["CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS"] = True
    ns["CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP"] = True
    ns["DEPLOYKIT_MAX_REDELIVERIES"] = env.value("DEPLOYKIT_MAX_REDELIVERIES")
    # A STARTED state costs each task a result-store write before it runs: tasks whose state someone reads
    # mid-run opt in (`@shared_task(track_started=True)`, as the reference project's API tasks do).
    ns.setdefault("CELERY_TASK_TRACK_STARTED", False)
    ns.setdefault("CELERY_RESULT_EXTENDED", True)
    # Task events only while something reads them (Celery's defaults): Flower switches the workers' events
    # on by itself while it runs (its enable_events, every few seconds). Always on, they cost a worker three
    # round trips per task with nobody listening (docs/benchmarks/README.md).
    ns.setdefault("CELERY_WORKER_SEND_TASK_EVENTS", False)
    ns.setdefault("CELERY_TASK_SEND_SENT_EVENT", False)
    ns["CELERY_WORKER_HIJACK_ROOT_LOGGER"] = False  # LOGGING is deploykit's (_logging)
    for name in ("CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT", "CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT",
                 "CELERY_WORKER_PREFETCH_MULTIPLIER", "CELERY_WORKER_MAX_TASKS_PER_CHILD",
                 "CELERY_WORKER_MAX_MEMORY_PER_CHILD", "CELERY_RESULT_EXPIRES"):
        ns[name] = env.value(name)
    ns["CELERY_WORKER_CONCURRENCY"] = env.value("CELERY_WORKER_CONCURRENCY") or None  # None: CPUs
    soft, hard = ns["CELERY_TASK_SOFT_TIME_LIMIT"], ns["CELERY_TASK_TIME_LIMIT"]
    if hard <= soft:
        env.error("CELERY_TASK_TIME_LIMIT", f"({hard}s) must exceed CELERY_TASK_SOFT_TIME_LIMIT ({soft}s)")
    # The longest countdown/ETA the project schedules (a project with longer ones says so in its settings).
    longest = ns.setdefault("DEPLOYKIT_LONGEST_COUNTDOWN", DEFAULT_LONGEST_COUNTDOWN)
    visibility = ns["DEPLOYKIT_VISIBILITY_TIMEOUT"] = env.value("DEPLOYKIT_VISIBILITY_TIMEOUT")
    problem = check_visibility_timeout(visibility, hard, longest)
    if problem:
        env.error("DEPLOYKIT_VISIBILITY_TIMEOUT", problem)
    options = {**(ns.get("CELERY_BROKER_TRANSPORT_OPTIONS") or {}), "visibility_timeout": visibility}
    # Redis broker (deploykit/delivery/lease.py, unacked.py): a worker process' lease lasts this long without
    # renewal; what a process held is requeued once its lease expired (it died, or lost Redis that long), by
    # a round every consumer runs every DEPLOYKIT_RECOVERY_INTERVAL seconds in its event loop. Ignored on RabbitMQ.
    lease_ttl = ns["DEPLOYKIT_LEASE_TTL"] = env.value("DEPLOYKIT_LEASE_TTL")
    interval = ns["DEPLOYKIT_RECOVERY_INTERVAL"] = env.value("DEPLOYKIT_RECOVERY_INTERVAL")
    if is_redis_url(broker):
        options.update({
            "lease_ttl": lease_ttl, "lost_after": lease_ttl,
            # kombu's own periodic restore, run by every consumer, is deploykit's round: no throttle on top.
            "unacked_restore_interval": interval, "unacked_restore_throttle": 1,
            # A round takes milliseconds; a process that dies holding the mutex delays recovery this long.
            "unacked_mutex_expire": max(60, 2 * interval),
        })
    # RabbitMQ: publisher confirms. Without them basic.publish returns before the broker has the message, so a
    # publish the broker drops while it shuts down was answered 202 and never ran (docs/reliability.md). With
    # them each publish waits for the broker's ack, and one never acked raises: Celery's publish retry sends it
    # again on a new connection, or the API answers 503. Costs a round trip per publish (~1.4 ms).
    if rabbitmq.is_amqp_url(broker):
        options["confirm_publish"] = True
    ns["CELERY_BROKER_TRANSPORT_OPTIONS"] = options
    ns["CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS"] = {
        **(ns.get("CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS") or {}), "visibility_timeout": visibility}
    # RabbitMQ: AMQP heartbeats every 30 s (Celery's default is 120 s) let a worker notice a silent broker
    # within about a minute; RabbitMQ closes connections whose heartbeats stop after two missed intervals.
    ns["CELERY_BROKER_HEARTBEAT"] = 30
    heartbeat_max_age = ns["DEPLOYKIT_HEARTBEAT_MAX_AGE"] = env.value("DEPLOYKIT_HEARTBEAT_MAX_AGE")
    ns["DEPLOYKIT_HEARTBEAT_FILE"] = env.value("DEPLOYKIT_HEARTBEAT_FILE")
    ns["DEPLOYKIT_WORKER_METRICS_PORT"] = env.value("DEPLOYKIT_WORKER_METRICS_PORT")
    # Touch well within the max age (every 10 s with the default 60 s).
    ns["DEPLOYKIT_HEARTBEAT_INTERVAL"] = max(1, min(10, heartbeat_max_age // 4))
    ns["DEPLOYKIT_CONSUMED_QUEUES"] = env.value("DEPLOYKIT_CONSUMED_QUEUES")  # manage.py check_queues
    ns["DEPLOYKIT_EXPLICIT_QUEUES"] = explicit = env.value("DEPLOYKIT_EXPLICIT_QUEUES")
    if explicit and isinstance(ns.get("CELERY_TASK_QUEUES"), dict):  # a project declaring its queues: these too
        ns["CELERY_TASK_QUEUES"] = {**{q: {"exchange": q, "routing_key": q} for q in explicit},
                                    **ns["CELERY_TASK_QUEUES"]}
    ns["DEPLOYKIT_TASKS_RETIRED"] = env.value("DEPLOYKIT_TASKS_RETIRED")  # manage.py check_tasks
    ns["DEPLOYKIT_POD_DELETION_COST_INTERVAL"] = env.value("DEPLOYKIT_POD_DELETION_COST_INTERVAL")
    # Guard rows (deploykit/delivery/idempotency.py) must outlive every redelivery of their task id: each of the
    # up to DEPLOYKIT_MAX_REDELIVERIES redeliveries can come a visibility timeout after the last.
    retention = ns["DEPLOYKIT_IDEMPOTENCY_RETENTION"] = env.value("DEPLOYKIT_IDEMPOTENCY_RETENTION")
    minimum = visibility * (ns["DEPLOYKIT_MAX_REDELIVERIES"] + 1) + hard
    if retention < minimum:
        env.error("DEPLOYKIT_IDEMPOTENCY_RETENTION", f"({retention}s) must be at least "
                  f"{minimum}s (DEPLOYKIT_VISIBILITY_TIMEOUT x (DEPLOYKIT_MAX_REDELIVERIES + 1) + "
                  "CELERY_TASK_TIME_LIMIT): a redelivered task would find its guard row gone and run again")


def _secured(name: str, url: str | None) -> str | None:
    """`url` with its rediss:// certificate check made explicit (config/env.py `secure_redis_url`), also in the
    process environment: Celery reads CELERY_BROKER_URL and CELERY_RESULT_BACKEND from the environment before
    its settings (celery.app.utils.Settings.broker_url), so the environment's URL is the one it connects with.
    Without the rewrite, kombu turned a bare rediss:// into no certificate check, and deploykit's transport
    (given explicitly, so kombu's `rediss` default never applied) into no TLS at all."""
    secured = secure_redis_url(url)
    if secured != url and os.environ.get(name) == url:
        os.environ[name] = secured
    return secured


def _rabbitmq(env: Env, ns: dict) -> None:
    """RabbitMQ: quorum queues (docs/reliability.md#rabbitmq-quorum-queues), declared with x-queue-type quorum,
    so Celery switches to per-consumer QoS and to native delayed delivery for countdown/ETA (the message waits
    in the broker, not in a worker's memory), which needs topic exchanges: routing keys equal the queue names.
    RabbitMQ (4.0+) drops a message returned more than 20 times (quorum queues' default delivery limit):
    DEPLOYKIT_MAX_REDELIVERIES must end it first. "classic" keeps the queues of earlier releases."""
    queue_type = ns["DEPLOYKIT_RABBITMQ_QUEUE_TYPE"] = env.value("DEPLOYKIT_RABBITMQ_QUEUE_TYPE")
    # The collector's in-flight counts and head-message ages on RabbitMQ (deploykit/ops/rabbitmq_api.py).
    management = ns["DEPLOYKIT_RABBITMQ_MANAGEMENT_URL"] = env.value("DEPLOYKIT_RABBITMQ_MANAGEMENT_URL") or ""
    if management:
        problem = rabbitmq_api.url_problem(management)
        if not problem and not rabbitmq.is_amqp_url(ns["CELERY_BROKER_URL"]):
            problem = "is set, but CELERY_BROKER_URL is not RabbitMQ (amqp:// or amqps://): unset it"
        if problem:
            env.error("DEPLOYKIT_RABBITMQ_MANAGEMENT_URL", problem)
            ns["DEPLOYKIT_RABBITMQ_MANAGEMENT_URL"] = ""
    if queue_type not in rabbitmq.QUEUE_TYPES:
        env.error("DEPLOYKIT_RABBITMQ_QUEUE_TYPE", f"must be quorum or classic, not {queue_type!r}")
    elif queue_type == "quorum" and rabbitmq.is_amqp_url(ns["CELERY_BROKER_URL"]):
        limit, redeliveries = rabbitmq.DEFAULT_DELIVERY_LIMIT, ns["DEPLOYKIT_MAX_REDELIVERIES"]
        if redeliveries >= limit:
            env.error("DEPLOYKIT_MAX_REDELIVERIES", (
                f"({redeliveries}) must stay below the quorum queues' delivery limit "
                f"({limit}), or RabbitMQ drops a task before the app marks it failed"))
        if ns.get("CELERY_TASK_QUEUES"):
            ns["CELERY_TASK_QUEUES"] = rabbitmq.queue_declarations(ns["CELERY_TASK_QUEUES"], "quorum")
        ns["CELERY_TASK_DEFAULT_QUEUE_TYPE"] = "quorum"  # also the type of queues Celery creates by itself
        ns["CELERY_WORKER_DETECT_QUORUM_QUEUES"] = True  # Celery's default, relied on: per-consumer QoS
        ns["CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE"] = "quorum"


def _timeouts(env: Env, ns: dict) -> None:
    """Connect and read/write timeouts and keepalives on every broker/result connection (config/timeouts.py):
    the workers' and beat's here; the web tier's shorter ones from `web_timeouts()` (its wsgi module)."""
    timeout = ns["DEPLOYKIT_BROKER_TIMEOUT"] = env.value("DEPLOYKIT_BROKER_TIMEOUT")
    connect = ns["DEPLOYKIT_BROKER_CONNECT_TIMEOUT"] = env.value("DEPLOYKIT_BROKER_CONNECT_TIMEOUT")
    deadline = ns["DEPLOYKIT_PUBLISH_DEADLINE"] = env.value("DEPLOYKIT_PUBLISH_DEADLINE")
    if timeout < BRPOP_TIMEOUT + 1:
        env.error("DEPLOYKIT_BROKER_TIMEOUT", f"must be at least {BRPOP_TIMEOUT + 1} seconds (above kombu's BRPOP "
                                              f"wait of {BRPOP_TIMEOUT} s), got {timeout}")
    if not 0 < connect <= timeout:
        env.error("DEPLOYKIT_BROKER_CONNECT_TIMEOUT", f"must be above 0 and at most DEPLOYKIT_BROKER_TIMEOUT "
                                                      f"({timeout}), got {connect}")
    if deadline < 2:
        env.error("DEPLOYKIT_PUBLISH_DEADLINE", f"must be at least 2 seconds, got {deadline}")
    for name, value in deploykit_timeouts(ns, timeout, connect).items():
        ns[f"CELERY_{name.upper()}"] = value
    # Web drain (deploykit/ops/gunicorn_drain.py, docs/reliability.md#web-rollouts): seconds gunicorn keeps
    # serving after SIGTERM, answering /readyz 503 and closing kept-alive connections.
    ns["DEPLOYKIT_WEB_DRAIN_SECONDS"] = env.value("DEPLOYKIT_WEB_DRAIN_SECONDS")


def _beat(env: Env, ns: dict) -> None:
    """The database scheduler, deploykit's two entries added to the project's (its own entries are kept)."""
    ns.setdefault("CELERY_BEAT_SCHEDULER", "django_celery_beat.schedulers:DatabaseScheduler")
    ns.setdefault("DJANGO_CELERY_BEAT_TZ_AWARE", True)
    tick = ns["DEPLOYKIT_BEAT_TICK_SECONDS"] = env.value("DEPLOYKIT_BEAT_TICK_SECONDS")
    schedule = dict(ns.get("CELERY_BEAT_SCHEDULE") or {})
    # Routed like any task without options: the project's default queue, unless its routes say otherwise.
    schedule.setdefault(BEAT_TICK_ENTRY, {"task": "deploykit.beat_tick", "schedule": float(tick)})
    schedule.setdefault(PURGE_ENTRY, {"task": "deploykit.purge_idempotency_keys", "schedule": 3600.0})
    ns["CELERY_BEAT_SCHEDULE"] = schedule


def _throttle(env: Env, ns: dict) -> None:
    """Per-client limits of the endpoints that create work (deploykit/ops/throttle.py): 429 + Retry-After.
    The counters are shared by every web process: Redis when the broker or the result store is Redis;
    otherwise a table in the database (migration deploykit 0002) -- no extra service just for counters.
    A client is the address the proxies in front of gunicorn saw: DEPLOYKIT_NUM_PROXIES of them, also DRF's
    NUM_PROXIES (the environment knows the proxy chain of a deployment, so it wins over the module's value)."""
    ns["DEPLOYKIT_API_THROTTLE_RATE"] = env.value("DEPLOYKIT_API_THROTTLE_RATE", cast=parse_rate)
    ns["DEPLOYKIT_API_THROTTLE_UPLOAD_RATE"] = env.value("DEPLOYKIT_API_THROTTLE_UPLOAD_RATE", cast=parse_rate)
    proxies = ns["DEPLOYKIT_NUM_PROXIES"] = env.value("DEPLOYKIT_NUM_PROXIES")
    ns["REST_FRAMEWORK"] = {**(ns.get("REST_FRAMEWORK") or {}), "NUM_PROXIES": proxies}
    redis_url = next((url for url in (ns["CELERY_BROKER_URL"], ns["CELERY_RESULT_BACKEND"]) if is_redis_url(url)), None)
    if redis_url:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # Short timeouts and no retries: an unreachable cache only delays the request before it is let through.
        cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                 "OPTIONS": {"socket_connect_timeout": THROTTLE_CACHE_TIMEOUT, "socket_timeout": THROTTLE_CACHE_TIMEOUT,
                             "retry": Retry(NoBackoff(), 0)}}
    else:
        cache = {**THROTTLE_DATABASE_CACHE, "OPTIONS": dict(THROTTLE_DATABASE_CACHE["OPTIONS"])}
    caches = dict(ns.get("CACHES") or {})
    caches.setdefault("default", {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})
    caches["throttle"] = {**cache, "KEY_PREFIX": "api"}
    ns["CACHES"] = caches


def _logging(env: Env, ns: dict) -> None:
    from deploykit.ops.logging import build_logging

    ns["LOG_FORMAT"] = env.value("LOG_FORMAT")  # text or json (the contract's choices)
    ns["LOG_LEVEL"] = env.value("LOG_LEVEL")
    ns["LOGGING"] = build_logging(ns["LOG_FORMAT"], ns["LOG_LEVEL"])
