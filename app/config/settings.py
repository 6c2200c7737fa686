"""Settings of the reference project: what is the project's own; deploykit sets the rest at the end.

`apply(globals())` (deploykit/src/deploykit/settings.py) reads the configuration contract -- deploykit's
variables (deploykit/src/deploykit/contract/deploykit.toml) and this project's own (app/contract.toml,
named by DEPLOYKIT_PROJECT_CONTRACT) -- and sets the broker, delivery, timeouts, DATABASES, storage,
logging, security, the probe middleware, deploykit's apps and beat entries; then it refuses an unsafe
production start-up naming each variable. docs/configuration.md is generated from both contract files.
This project's own variables are read with the same reader: `env.value(NAME)`.
"""

from pathlib import Path

from deploykit.settings import apply, environment

BASE_DIR = Path(__file__).resolve().parent.parent  # app/
REPO_DIR = BASE_DIR.parent
DEPLOYKIT_PROJECT_CONTRACT = BASE_DIR / "contract.toml"
env = environment(globals())

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
    # Task results in the database on RabbitMQ (django-db), and its migrations on every broker: one
    # database schema whichever broker a deployment (or a test) switches to.
    "django_celery_results",
    "jobs",
]  # + django_celery_beat, deploykit (apply)

MIDDLEWARE = [  # deploykit's ProbeMiddleware goes in before SecurityMiddleware (apply)
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
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
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                 "NumericPasswordValidator")
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Uploads, images, reports, e-mail (this project's own variables: app/contract.toml) --------------
UPLOAD_MAX_BYTES = env.value("UPLOAD_MAX_BYTES")
IMAGE_MAX_PIXELS = env.value("IMAGE_MAX_PIXELS")
# Keep Django's own request limits consistent with UPLOAD_MAX_BYTES (files above 2.5 MB spill to disk).
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, UPLOAD_MAX_BYTES + 1024 * 1024)
IMAGE_RESIZED_SIZE = (1024, 1024)
IMAGE_THUMBNAIL_SIZES = [64, 128, 256]
REPORT_KINDS = ["tasks", "images"]
# Files and rows older than this are removed by the periodic cleanup task.
CLEANUP_MAX_AGE_SECONDS = env.value("CLEANUP_MAX_AGE_SECONDS")
DIGEST_RECIPIENTS = env.value("DIGEST_RECIPIENTS")

# --- Celery: this project's queues, routes and beat entries (deploykit adds its own) ----------------
# The longest countdown/ETA this app ever schedules: the cap of the exponential retry backoff; deploykit
# refuses a visibility timeout below it.
TASK_RETRY_BACKOFF_MAX = 600
DEPLOYKIT_LONGEST_COUNTDOWN = TASK_RETRY_BACKOFF_MAX
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
CELERY_BEAT_SCHEDULE = {
    "daily-digest": {"task": "jobs.tasks.send_digest", "schedule": 24 * 3600.0},
    "hourly-cleanup": {"task": "jobs.tasks.cleanup", "schedule": 3600.0},
}  # + beat-tick, purge-idempotency-keys (apply)

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
    # NUM_PROXIES: deploykit sets it from DEPLOYKIT_NUM_PROXIES, the number of proxies in front of gunicorn
    # (docs/security.md): the client is the address the first of them saw, which a client cannot forge.
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Django + Celery blueprint API",
    "DESCRIPTION": "Start demo tasks, process images and build reports in the background.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

apply(globals())
