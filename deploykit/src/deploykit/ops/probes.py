"""Health endpoints.

/healthz  liveness: the process answers; touches nothing else.
/readyz   readiness: only what the web tier needs to serve -- the database. Fast.
          While the process drains before stopping (drain.py) it answers 503 {"draining": true}.
/status   deep check for people and smoke tests: database, broker, workers seen, beat's last run.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from . import checks, drain


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
    database = checks.check_database()
    broker = checks.check_broker()
    by_worker = checks.consumers() if broker["ok"] else {}
    workers = sorted(by_worker)
    # Informational: each queue with its consumers and backlog (a queue without consumers shows it here).
    queues = checks.queue_status(by_worker) if broker["ok"] else {}
    beat = checks.beat_status() if database["ok"] else {"ok": False, "last_run": None, "error": "database down"}
    ok = database["ok"] and broker["ok"] and bool(workers) and beat["ok"]
    body = {"ok": ok, "database": database, "broker": broker, "workers": workers, "queues": queues, "beat": beat}
    return JsonResponse(body, status=200 if ok else 503)
