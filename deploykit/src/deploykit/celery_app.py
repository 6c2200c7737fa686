"""The project's Celery app with deploykit's pieces installed: `celery --app deploykit.celery_app worker`.

DEPLOYKIT_CELERY_APP names the project's app as Celery's `--app` does (`config`, `mysite.celery_app:app`;
default `config`; deploykit.celery.project_app). `deploykit.celery.install(app)` then adds the redelivery
bound (the task base class, set before the app creates its tasks), the worker heartbeat and lease,
RabbitMQ queue checks, worker database connections and logging: a project whose Celery module never
mentions deploykit gets all of it. Installing twice is harmless, so a project module that already calls
install() (the reference project's config/celery.py) is started the same either way.
"""

from deploykit.celery import install, project_app

app = project_app()
install(app)

__all__ = ["app"]
