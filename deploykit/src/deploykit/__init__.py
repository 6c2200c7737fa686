"""deploykit: the deployment-facing pieces of a Django + Celery project, reusable in any project.

- contract/    the configuration contract: every variable declared once (deploykit.toml + a project's file)
- env.py       settings helpers; production-mode validation naming the offending variable
- storage.py   STORAGES from the environment (filesystem or S3-compatible object storage)
- logging.py   LOGGING dict: text or one-JSON-object-per-line, with Celery task ids
- middleware.py + views.py + urls.py   /healthz, /readyz, /status answering any Host over plain HTTP
- celery.py    bounded redeliveries (task class) and the worker heartbeat bootstep
- beat.py      single-instance beat: a database advisory lock held for beat's lifetime
See docs/app.md.
"""

from .versions import check as _check_versions

# Refuse a Django, Celery or kombu outside the range deploykit declares (deploykit.versions), before any
# of its modules runs on it.
_check_versions()
