"""The Celery application, in the canonical form.

Every Celery setting lives in config/settings.py under the CELERY_ namespace; tasks are found in each
installed app's tasks.py. `install(app)` adds deploykit's pieces: the bounded-redelivery task class
(before any task is created), the worker heartbeat and lease, logging. The start scripts run
`celery --app deploykit.celery_app`, which loads this app (DEPLOYKIT_CELERY_APP=config) and installs the
same pieces (idempotent): with this line `celery --app config` by hand is the same app; a project
without it gets them from deploykit.celery_app alone.
"""
import os

from celery import Celery
from deploykit.celery import install

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
install(app)
