"""Settings of the reference project -- THE one place the environment is read.

The contract (every variable, its type, default and bounds) is declared once: deploykit's variables in
deploykit/src/deploykit/contract/deploykit.toml, this project's own in app/contract.toml; `env.value(NAME)`
reads a variable as declared. docs/configuration.md is generated from both. In production mode (DJANGO_DEBUG
off, the default) a missing or insecure required variable stops start-up with a message naming it; see
deploykit/config/env.py. Rules across variables (hard limit above soft limit, ...) live here, once.
"""

from pathlib import Path

from deploykit import contract
from deploykit.config.env import (
    BROKER_SCHEMES,
    RESULT_BACKEND_SCHEMES,
    Env,
    check_visibility_timeout,
    hosts_problem,
    is_redis_url,
    parse_rate,
    secret_key_problem,
    url_scheme_problem,
)
from deploykit.ops.logging import build_logging
from deploykit.delivery.redis_transport import broker_transport
from deploykit.ops.storage import build_storages

BASE_DIR = Path(__file__).resolve().parent.parent  # app/
REPO_DIR = BASE_DIR.parent

env = Env(contract=contract.load(project=BASE_DIR / "contract.toml"))
DEBUG = env.debug

# --- Django core -----------------------------------------------------------------------------------
SECRET_KEY = env.value("DJANGO_SECRET_KEY", check=secret_key_problem)
if env.build_step and not SECRET_KEY:
    SECRET_KEY = "collectstatic-build-step-only-" + "x" * 40  # never serves a request

ALLOWED_HOSTS = env.value("DJANGO_ALLOWED_HOSTS", check=hosts_problem)
CSRF_TRUSTED_ORIGINS = env.value("DJANGO_CSRF_TRUSTED_ORIGINS")
ADMIN_URL = env.value("DJANGO_ADMIN_URL").strip("/") + "/"
# deploykit-migrate creates/updates this superuser when set (manage.py ensure_superuser).
DJANGO_SUPERUSER_USERNAME = env.value("DJANGO_SUPERUSER_USERNAME")
DJANGO_SUPERUSER_EMAIL = env.value("DJANGO_SUPERUSER_EMAIL")
DJANGO_SUPERUSER_PASSWORD = env.value("DJANGO_SUPERUSER_PASSWORD")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "django_celery_results",
    "deploykit",
    "jobs",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Probe paths are answered here: before host validation and the SSL redirect (see deploykit/ops/middleware.py).
    "deploykit.ops.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------------
_db = env.db("DATABASE_URL", debug_default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
if _db is None:  # production error already recorded, or the build step: a harmless placeholder
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions: web, worker and beat processes can share one SQLite file in development.
    _db.setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
    _db["CONN_MAX_AGE"] = 0
else:
    _db["CONN_MAX_AGE"] = env.value("DATABASE_CONN_MAX_AGE")
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production mode) --------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.value("DJANGO_SECURE_SSL_REDIRECT")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^status$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.value("DJANGO_SECURE_HSTS_SECONDS")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.value("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env.value("DJANGO_SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Static and uploaded files ---------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.value("MEDIA_ROOT", debug_default=str(BASE_DIR / "media"))
STORAGES = build_storages(env, media_root=MEDIA_ROOT, debug=DEBUG)
UPLOAD_MAX_BYTES = env.value("UPLOAD_MAX_BYTES")
IMAGE_MAX_PIXELS = env.value("IMAGE_MAX_PIXELS")
# Keep Django's own request limits consistent with UPLOAD_MAX_BYTES (files above 2.5 MB spill to disk).
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, UPLOAD_MAX_BYTES + 1024 * 1024)
IMAGE_RESIZED_SIZE = (1024, 1024)
IMAGE_THUMBNAIL_SIZES = [64, 128, 256]
REPORT_KINDS = ["tasks", "images"]
# Files and rows older than this are removed by the periodic cleanup task.
CLEANUP_MAX_AGE_SECONDS = env.value("CLEANUP_MAX_AGE_SECONDS")

# --- E-mail ----------------------------------------------------------------------------------------
globals().update(env.email("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.value("DEFAULT_FROM_EMAIL")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = 10
DIGEST_RECIPIENTS = env.value("DIGEST_RECIPIENTS")

# --- Celery (read by config/celery.py through the CELERY_ namespace) -------------------------------
CELERY_BROKER_URL = env.value(
    "CELERY_BROKER_URL",
    # Production only (the check is skipped in debug mode, where tests may use memory://).
    check=lambda url: url_scheme_problem(url, BROKER_SCHEMES),
)
_broker_is_redis = is_redis_url(CELERY_BROKER_URL)
# Redis: kombu's transport plus a publish journal, so no task is lost between BRPOP and `unacked`.
CELERY_BROKER_TRANSPORT = broker_transport(CELERY_BROKER_URL)
CELERY_RESULT_BACKEND = env.value(
    "CELERY_RESULT_BACKEND",
    default=CELERY_BROKER_URL if _broker_is_redis else "django-db",
    check=lambda url: url_scheme_problem(url, RESULT_BACKEND_SCHEMES),
)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
DEPLOYKIT_MAX_REDELIVERIES = env.value("DEPLOYKIT_MAX_REDELIVERIES")
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SOFT_TIME_LIMIT = env.value("CELERY_TASK_SOFT_TIME_LIMIT")
CELERY_TASK_TIME_LIMIT = env.value("CELERY_TASK_TIME_LIMIT")
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    env.error(
        "CELERY_TASK_TIME_LIMIT",
        f"({CELERY_TASK_TIME_LIMIT}s) must exceed CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT}s)",
    )
# The longest countdown/ETA this app ever schedules: the cap of the exponential retry backoff.
TASK_RETRY_BACKOFF_MAX = 600
DEPLOYKIT_VISIBILITY_TIMEOUT = env.value("DEPLOYKIT_VISIBILITY_TIMEOUT")
_vt_problem = check_visibility_timeout(
    DEPLOYKIT_VISIBILITY_TIMEOUT, CELERY_TASK_TIME_LIMIT, TASK_RETRY_BACKOFF_MAX
)
if _vt_problem:
    env.error("DEPLOYKIT_VISIBILITY_TIMEOUT", _vt_problem)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": DEPLOYKIT_VISIBILITY_TIMEOUT}
# Redis broker (deploykit/delivery/lease.py, deploykit/delivery/unacked.py): a worker process' lease lasts this long without
# renewal; what a process held is requeued once its lease expired (it died, or lost Redis that long), by
# a round every consumer runs every DEPLOYKIT_RECOVERY_INTERVAL seconds in its event loop. Ignored on RabbitMQ.
DEPLOYKIT_LEASE_TTL = env.value("DEPLOYKIT_LEASE_TTL")
DEPLOYKIT_RECOVERY_INTERVAL = env.value("DEPLOYKIT_RECOVERY_INTERVAL")
if _broker_is_redis:
    CELERY_BROKER_TRANSPORT_OPTIONS.update({
        "lease_ttl": DEPLOYKIT_LEASE_TTL, "lost_after": DEPLOYKIT_LEASE_TTL,
        # kombu's own periodic restore, run by every consumer, is deploykit's round: no throttle on top.
        "unacked_restore_interval": DEPLOYKIT_RECOVERY_INTERVAL, "unacked_restore_throttle": 1,
        # A round takes milliseconds; a process that dies holding the mutex delays recovery this long.
        "unacked_mutex_expire": max(60, 2 * DEPLOYKIT_RECOVERY_INTERVAL),
    })
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": DEPLOYKIT_VISIBILITY_TIMEOUT}
# RabbitMQ: publisher confirms. Without them basic.publish returns before the broker has the message, so a
# publish the broker drops while it shuts down was answered 202 and never ran (seen: 4 of 150 accepted
# tasks PENDING for good after a broker restart, docs/reliability.md). With them each publish waits for the
# broker's ack (persistent message on disk), and one the broker never acked raises: Celery's publish retry
# sends it again on a new connection, or the API answers 503. Costs a round trip per publish (~1.4 ms).
if CELERY_BROKER_URL and CELERY_BROKER_URL.startswith(("amqp://", "amqps://")):
    CELERY_BROKER_TRANSPORT_OPTIONS["confirm_publish"] = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Cold shutdown (second SIGTERM / SIGQUIT) first gives running tasks this long (Celery's soft shutdown).
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env.value("CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT")
CELERY_WORKER_PREFETCH_MULTIPLIER = env.value("CELERY_WORKER_PREFETCH_MULTIPLIER")
CELERY_WORKER_CONCURRENCY = env.value("CELERY_WORKER_CONCURRENCY") or None  # None: CPUs
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.value("CELERY_WORKER_MAX_TASKS_PER_CHILD")
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.value("CELERY_WORKER_MAX_MEMORY_PER_CHILD")
CELERY_RESULT_EXPIRES = env.value("CELERY_RESULT_EXPIRES")
CELERY_RESULT_EXTENDED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
DEPLOYKIT_HEARTBEAT_FILE = env.value("DEPLOYKIT_HEARTBEAT_FILE")
DEPLOYKIT_HEARTBEAT_MAX_AGE = env.value("DEPLOYKIT_HEARTBEAT_MAX_AGE")
# Touch well within the max age (every 10 s with the default 60 s).
DEPLOYKIT_HEARTBEAT_INTERVAL = max(1, min(10, DEPLOYKIT_HEARTBEAT_MAX_AGE // 4))

CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_QUEUES = {
    "default": {"exchange": "default", "routing_key": "default"},
    "io": {"exchange": "io", "routing_key": "io"},
    "images": {"exchange": "images", "routing_key": "images"},
}
CELERY_TASK_ROUTES = {
    "jobs.tasks.send_email": {"queue": "io"},
    "jobs.tasks.send_digest": {"queue": "io"},
    "jobs.tasks.resize_image": {"queue": "images"},
    "jobs.tasks.make_thumbnail": {"queue": "images"},
    "jobs.tasks.finalize_image": {"queue": "images"},
}
# RabbitMQ: quorum queues (docs/reliability.md#rabbitmq-quorum-queues). Declared with x-queue-type quorum,
# so Celery switches to per-consumer QoS (global QoS is not supported by quorum queues: the prefetch count
# is fixed per consumer, concurrency x CELERY_WORKER_PREFETCH_MULTIPLIER) and to native delayed delivery
# for countdown/ETA (the message waits in the broker's celery_delayed_* queues, not in a worker's memory),
# which needs topic exchanges: routing keys equal the queue names, so routing is unchanged. RabbitMQ (4.0+)
# drops a message returned more than 20 times (quorum queues' default delivery limit) unless a policy says
# otherwise: DEPLOYKIT_MAX_REDELIVERIES (counted by the app on every redelivery) must end it first.
# "classic" keeps the queues as before (direct exchanges, worker-held countdowns), for a deployment whose
# existing classic queues are not migrated yet: RabbitMQ refuses to redeclare a queue with another type.
from deploykit.delivery import rabbitmq  # noqa: E402

DEPLOYKIT_RABBITMQ_QUEUE_TYPE = env.value("DEPLOYKIT_RABBITMQ_QUEUE_TYPE")
if DEPLOYKIT_RABBITMQ_QUEUE_TYPE not in rabbitmq.QUEUE_TYPES:
    env.error("DEPLOYKIT_RABBITMQ_QUEUE_TYPE", f"must be quorum or classic, not {DEPLOYKIT_RABBITMQ_QUEUE_TYPE!r}")
elif DEPLOYKIT_RABBITMQ_QUEUE_TYPE == "quorum" and rabbitmq.is_amqp_url(CELERY_BROKER_URL):
    if DEPLOYKIT_MAX_REDELIVERIES >= rabbitmq.DEFAULT_DELIVERY_LIMIT:
        env.error("DEPLOYKIT_MAX_REDELIVERIES", (
            f"({DEPLOYKIT_MAX_REDELIVERIES}) must stay below the quorum queues' delivery limit "
            f"({rabbitmq.DEFAULT_DELIVERY_LIMIT}), or RabbitMQ drops a task before the app marks it failed"))
    CELERY_TASK_QUEUES = rabbitmq.queue_declarations(CELERY_TASK_QUEUES, "quorum")
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"  # also the type of queues Celery would create by itself
    CELERY_WORKER_DETECT_QUORUM_QUEUES = True  # Celery's default, relied on: per-consumer QoS
    CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE = "quorum"

CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DEPLOYKIT_BEAT_TICK_SECONDS = env.value("DEPLOYKIT_BEAT_TICK_SECONDS")
CELERY_BEAT_SCHEDULE = {
    "beat-tick": {"task": "jobs.tasks.beat_tick", "schedule": float(DEPLOYKIT_BEAT_TICK_SECONDS)},
    "daily-digest": {"task": "jobs.tasks.send_digest", "schedule": 24 * 3600.0},
    "hourly-cleanup": {"task": "jobs.tasks.cleanup", "schedule": 3600.0},
}
# Beat holds this lock for its lifetime (PostgreSQL advisory lock; a file lock next to SQLite).
BEAT_LOCK_ID = 0x0BEA7  # any constant bigint, unique per project sharing a database
DJANGO_CELERY_BEAT_TZ_AWARE = True
DEPLOYKIT_BEAT_LAST_RUN = "jobs.models.beat_last_run"  # read by /status

# --- Web drain (deploykit/ops/gunicorn_drain.py, docs/reliability.md#web-rollouts) ---------------------------
# Seconds gunicorn keeps serving after SIGTERM, answering /readyz 503 and closing kept-alive connections,
# so a Service or load balancer in front stops sending new requests before the listener closes. 0 where
# nothing routes around this process (one web container behind the Compose proxy); the chart sets 10.
# It adds to the stop: the grace period (Compose stop_grace_period, terminationGracePeriodSeconds, systemd
# TimeoutStopSec) must cover it plus GUNICORN_TIMEOUT.
DEPLOYKIT_WEB_DRAIN_SECONDS = env.value("DEPLOYKIT_WEB_DRAIN_SECONDS")

# --- Timeouts on broker and result-store connections (docs/reliability.md#timeouts) -------------------
# A broker that stops answering without closing its connections (a frozen VM or container, a partition that
# drops packets, a failover behind a virtual IP) is not refused: without timeouts a publish waits on the
# dead socket forever (a POST hung past gunicorn's timeout, its row left PENDING). Every broker and
# result-store connection gets connect and read/write timeouts and TCP keepalives; kombu's and redis-py's
# health checks PING a connection idle longer than the interval before reusing it.
DEPLOYKIT_BROKER_TIMEOUT = env.value("DEPLOYKIT_BROKER_TIMEOUT")
DEPLOYKIT_BROKER_CONNECT_TIMEOUT = env.value("DEPLOYKIT_BROKER_CONNECT_TIMEOUT")
DEPLOYKIT_PUBLISH_DEADLINE = env.value("DEPLOYKIT_PUBLISH_DEADLINE")
_THROTTLE_CACHE_TIMEOUT = 1  # seconds: the most the API throttle's Redis cache (CACHES, below) waits
DEPLOYKIT_BROKER_HEALTH_CHECK_INTERVAL = 25  # seconds: kombu's default, now also on the result store
# kombu's BRPOP waits up to brpop_timeout (1 s) for a message; a read timeout at or below it turns every
# empty poll of a synchronous consumer (drain_events) into a timeout error.
_BRPOP_TIMEOUT = 1
if DEPLOYKIT_BROKER_TIMEOUT < _BRPOP_TIMEOUT + 1:
    env.error("DEPLOYKIT_BROKER_TIMEOUT", f"must be at least {_BRPOP_TIMEOUT + 1} seconds (above kombu's BRPOP "
                                          f"wait of {_BRPOP_TIMEOUT} s), got {DEPLOYKIT_BROKER_TIMEOUT}")
if not 0 < DEPLOYKIT_BROKER_CONNECT_TIMEOUT <= DEPLOYKIT_BROKER_TIMEOUT:
    env.error("DEPLOYKIT_BROKER_CONNECT_TIMEOUT", f"must be above 0 and at most DEPLOYKIT_BROKER_TIMEOUT "
                                                  f"({DEPLOYKIT_BROKER_TIMEOUT}), got {DEPLOYKIT_BROKER_CONNECT_TIMEOUT}")
if DEPLOYKIT_PUBLISH_DEADLINE < 2:
    env.error("DEPLOYKIT_PUBLISH_DEADLINE", f"must be at least 2 seconds, got {DEPLOYKIT_PUBLISH_DEADLINE}")
# Keepalive probes after 60 s idle, every 10 s, 3 unanswered: a peer that vanished (host gone, NAT entry
# dropped) is found in about 90 s on an idle pooled connection instead of Linux's 2 h 11 min.
DEPLOYKIT_KEEPALIVE = {"idle": 60, "interval": 10, "count": 3}


def _redis_socket_options(timeout: float, connect_timeout: float) -> dict:
    import socket

    keepalive = {}
    for name, value in (("TCP_KEEPIDLE", "idle"), ("TCP_KEEPINTVL", "interval"), ("TCP_KEEPCNT", "count")):
        if hasattr(socket, name):  # Linux; macOS lacks TCP_KEEPIDLE (development only)
            keepalive[getattr(socket, name)] = DEPLOYKIT_KEEPALIVE[value]
    return {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, "socket_keepalive": True,
            "socket_keepalive_options": keepalive}


def deploykit_timeouts(timeout: float, connect_timeout: float) -> dict:
    """The Celery settings (lower-case names) that bound every broker/result-store wait by `timeout`.
    Workers and beat run with DEPLOYKIT_BROKER_TIMEOUT; config/wsgi.py applies the web tier's shorter
    values, derived from DEPLOYKIT_PUBLISH_DEADLINE (`web_timeouts`)."""
    conf: dict = {"broker_connection_timeout": connect_timeout}
    if _broker_is_redis:
        conf["broker_transport_options"] = {**CELERY_BROKER_TRANSPORT_OPTIONS,
                                            **_redis_socket_options(timeout, connect_timeout),
                                            "health_check_interval": DEPLOYKIT_BROKER_HEALTH_CHECK_INTERVAL}
    elif CELERY_BROKER_URL and CELERY_BROKER_URL.startswith(("amqp://", "amqps://")):
        # py-amqp: socket read/write timeouts (also bound the wait for a publisher confirm).
        conf["broker_transport_options"] = {**CELERY_BROKER_TRANSPORT_OPTIONS, "read_timeout": timeout,
                                            "write_timeout": timeout}
    if is_redis_url(CELERY_RESULT_BACKEND):
        conf.update({"redis_socket_timeout": timeout, "redis_socket_connect_timeout": connect_timeout,
                     "redis_socket_keepalive": True, "redis_retry_on_timeout": False,
                     "redis_backend_health_check_interval": DEPLOYKIT_BROKER_HEALTH_CHECK_INTERVAL})
    return conf


def web_timeouts() -> dict:
    """The web tier's Celery settings: a request's publish gives up within DEPLOYKIT_PUBLISH_DEADLINE.

    Worst case on a black-holed Redis, traced (tests/app/test_app_blackhole.py): the throttle cache's
    1 s, then up to four waits of the timeout in a row: the result-store subscription (a process's first
    publish), the publish, and the one retry's reconnection, whose handshake and health-check PING each
    wait once. So each wait gets (deadline - 1 s) / 4."""
    timeout = max(0.25, (DEPLOYKIT_PUBLISH_DEADLINE - _THROTTLE_CACHE_TIMEOUT) / 4)
    conf = deploykit_timeouts(min(timeout, DEPLOYKIT_BROKER_TIMEOUT),
                              min(timeout, DEPLOYKIT_BROKER_CONNECT_TIMEOUT))
    conf["task_publish_retry_policy"] = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                                         "interval_max": 0.2}
    return conf


for _name, _value in deploykit_timeouts(DEPLOYKIT_BROKER_TIMEOUT, DEPLOYKIT_BROKER_CONNECT_TIMEOUT).items():
    globals()[f"CELERY_{_name.upper()}"] = _value
# RabbitMQ: AMQP heartbeats every 30 s (Celery's default is 120 s) let a worker notice a silent broker
# within about a minute; RabbitMQ closes connections whose heartbeats stop after two missed intervals.
CELERY_BROKER_HEARTBEAT = 30

# --- API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # The API's one JSON parser (jobs/api/parsers.py): bad bodies are 4xx with a message, never a 500.
    "DEFAULT_PARSER_CLASSES": ["jobs.api.parsers.StrictJSONParser"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "jobs.api.errors.exception_handler",
    # The client of a request is the address the one proxy in front of gunicorn saw (Caddy, the VMs' nginx,
    # the ingress controller): the last X-Forwarded-For entry, which a client cannot forge past that proxy.
    "NUM_PROXIES": 1,
}
# Per-client limits of the endpoints that create background work (deploykit/ops/throttle.py): 429 + Retry-After.
DEPLOYKIT_API_THROTTLE_RATE = env.value("DEPLOYKIT_API_THROTTLE_RATE", cast=parse_rate)
DEPLOYKIT_API_THROTTLE_UPLOAD_RATE = env.value("DEPLOYKIT_API_THROTTLE_UPLOAD_RATE", cast=parse_rate)
# The counters must be shared by every gunicorn worker and web container: Redis when the broker or the
# result store is Redis; otherwise (RabbitMQ with django-db results) a table in the database (migration
# deploykit 0002) -- no extra service just for counters.
_throttle_redis = next((url for url in (CELERY_BROKER_URL, CELERY_RESULT_BACKEND) if is_redis_url(url)), None)
if _throttle_redis:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Short timeouts and no retries: an unreachable cache only delays the request before it is let through
    # (redis-py's default of 3 retries with backoff kept a POST ~4 s longer while Redis was down).
    _throttle_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _throttle_redis,
                       "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1, "retry": Retry(NoBackoff(), 0)}}
else:
    _throttle_cache = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "api_throttle"}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {**_throttle_cache, "KEY_PREFIX": "api"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Django + Celery blueprint API",
    "DESCRIPTION": "Start demo tasks, process images and build reports in the background.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- deploykit: task idempotency guard, beat lock connection ----------------------------------------
# Guard rows (deploykit/delivery/idempotency.py) must outlive every redelivery of their task id: each of the up to
# DEPLOYKIT_MAX_REDELIVERIES redeliveries can come a visibility timeout after the last.
DEPLOYKIT_IDEMPOTENCY_RETENTION = env.value("DEPLOYKIT_IDEMPOTENCY_RETENTION")
_idem_min = DEPLOYKIT_VISIBILITY_TIMEOUT * (DEPLOYKIT_MAX_REDELIVERIES + 1) + CELERY_TASK_TIME_LIMIT
if DEPLOYKIT_IDEMPOTENCY_RETENTION < _idem_min:
    env.error("DEPLOYKIT_IDEMPOTENCY_RETENTION", f"({DEPLOYKIT_IDEMPOTENCY_RETENTION}s) must be at least "
              f"{_idem_min}s (DEPLOYKIT_VISIBILITY_TIMEOUT x (DEPLOYKIT_MAX_REDELIVERIES + 1) + "
              "CELERY_TASK_TIME_LIMIT): a redelivered task would find its guard row gone and run again")
CELERY_BEAT_SCHEDULE["purge-idempotency-keys"] = {"task": "deploykit.purge_idempotency_keys", "schedule": 3600.0}
# Beat's single-instance lock is a session advisory lock: it needs a direct connection to PostgreSQL, not
# one through PgBouncer in transaction mode (deploykit/ops/beat.py refuses that and names this variable).
DEPLOYKIT_BEAT_LOCK_DATABASE = env.db("DEPLOYKIT_BEAT_LOCK_DATABASE_URL")
if DEPLOYKIT_BEAT_LOCK_DATABASE and DEPLOYKIT_BEAT_LOCK_DATABASE["ENGINE"] != "django.db.backends.postgresql":
    env.error("DEPLOYKIT_BEAT_LOCK_DATABASE_URL", "must be a postgres:// URL (the lock is a PostgreSQL advisory lock)")
# A lock holder (or its database) that stops answering is noticed within this many seconds: TCP keepalives
# on both ends of the lock connection, and a deadline on each lock check (beat then exits to be restarted).
DEPLOYKIT_BEAT_LOCK_TIMEOUT = env.value("DEPLOYKIT_BEAT_LOCK_TIMEOUT")

# --- Logging ---------------------------------------------------------------------------------------
LOG_FORMAT = env.value("LOG_FORMAT")  # text or json (the contract's choices)
LOG_LEVEL = env.value("LOG_LEVEL")  # one of deploykit.ops.logging.VALID_LEVELS (the contract's choices)
LOGGING = build_logging(LOG_FORMAT, LOG_LEVEL)

env.raise_if_invalid()
