"""The peer baseline: `celery worker` with Celery's defaults (prefork, one process per CPU, prefetch
4, early acks, no events, no started state), on the same broker and result backend as the shipped
app. Only the broker and result backend are configured, as a typical template does."""
import os

from celery import Celery

# "disabled" and not None: None would let Celery read CELERY_RESULT_BACKEND (django-db) from the env.
app = Celery("baseline", broker=os.environ["CELERY_BROKER_URL"],
             backend=os.environ.get("BENCH_RESULT_BACKEND") or "disabled", include=["benchtasks"])
