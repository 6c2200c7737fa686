"""WSGI entry point (deploykit-web: gunicorn -c python:deploykit.ops.gunicorn_conf config.wsgi): the web tier only."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config import celery_app  # noqa: E402  (configured by the settings loaded above)

# Publishing a task also subscribes to its result channel on the Redis result store, and Celery retries
# that 20 times a second apart while Redis is down: a client waited ~20 s for its 503. Here (the web
# tier, whose clients retry on 503 + Retry-After) one quick retry; workers keep Celery's long default,
# so a result stored during a Redis restart still gets through.
celery_app.conf.result_backend_transport_options = {
    **(celery_app.conf.result_backend_transport_options or {}),
    "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5},
}

# The web tier's broker and result-store timeouts: shorter than the workers' (DEPLOYKIT_BROKER_TIMEOUT), so
# that a request whose broker stopped answering gets its 503 within DEPLOYKIT_PUBLISH_DEADLINE
# (docs/reliability.md#timeouts).
from deploykit.settings import web_timeouts  # noqa: E402

celery_app.conf.update(web_timeouts())
