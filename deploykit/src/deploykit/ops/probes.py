"""Health endpoints.

/healthz  liveness: the process answers; touches nothing else.
/readyz   readiness: only what the web tier needs to serve -- the database. Fast.
          While the process drains before stopping (drain.py) it answers 503 {"draining": true}.
/status   deep check for people and smoke tests: database, broker, workers seen, beat's last run, from
          the shared collector (ops/collector.py: at most one collection per DEPLOYKIT_STATUS_MAX_AGE
          seconds). Not served through a proxy (ops/middleware.py).
/metrics  Prometheus' text format, deploykit's gauges included: for a project that does not serve its own.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from . import checks, collector, drain


@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request):
    if drain.draining():
        return JsonResponse({"draining": True}, status=503)
    db = checks.check_database()
    if db["ok"]:
        return JsonResponse({"database": "ok"})
    return JsonResponse({"database": db["error"]}, status=503)


@never_cache
def status(request):
    body, age = collector.shared.snapshot()
    return JsonResponse({**body, "age_seconds": age}, status=200 if body["ok"] else 503)


@never_cache
def metrics(request):
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
