"""The Celery application, in the canonical form.

Every Celery setting lives in config/settings.py under the CELERY_ namespace; tasks are found in each
installed app's tasks.py. The default task class bounds redeliveries (see deploykit/celery.py), and the
worker heartbeat bootstep lets `deploykit-worker-healthcheck` tell a consuming worker from a stuck one.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config", task_cls="deploykit.celery:BoundedRedeliveryTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from deploykit.celery import install  # noqa: E402  (needs the app object above)

install(app)
