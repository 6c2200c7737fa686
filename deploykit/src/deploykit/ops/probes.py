"""Health endpoints.

/healthz  liveness: the process answers; touches nothing else.
/readyz   readiness: only what the web tier needs to serve -- the database. Fast.
          While the process drains before stopping (drain.py) it answers 503 {"draining": true}.
/status   deep check for people and smoke tests: database, broker, workers seen, beat's last run, from
          the shared collector (ops/collector.py: at most one collection per DEPLOYKIT_STATUS_MAX_AGE
          seconds). Not served through a proxy (ops/middleware.py).
          `/status?queues=a,b`: the work of a worker pool for an autoscaler, the pool's queues' waiting plus
          in-flight messages (Redis; RabbitMQ with DEPLOYKIT_RABBITMQ_MANAGEMENT_URL, else waiting only),
          200 whether or not any worker runs; 503 while either count is unknown. Never waits on a
          collection once the process has a snapshot (its age is in the answer).
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
    if "queues" in request.GET:
        return pool_work(request.GET["queues"], *collector.shared.snapshot(wait=False))
    body, age = collector.shared.snapshot()
    return JsonResponse({**body, "age_seconds": age}, status=200 if body["ok"] else 503)


def pool_work(requested: str, body: dict, age: float) -> JsonResponse:
    """What a pool consuming `requested` (comma-separated) has to do: KEDA's metrics-api scaler reads `work`
    and divides it by the pool's concurrency. Unlike the list length, it counts what workers already took
    (prefetched, waiting for an ETA or a rate limit, running), so a busy pool with an empty list is not
    scaled in under its running tasks."""
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in body["queues"]]
    if not names or unknown:
        return JsonResponse({"error": "queues: name the pool's queues, comma-separated; unknown: "
                                      f"{', '.join(unknown) or '(none given)'} (known: {', '.join(body['queues'])})"},
                            status=400)
    queues = {name: body["queues"][name] for name in names}
    if not body["broker"]["ok"] or any(queue["backlog"] is None for queue in queues.values()):
        return JsonResponse({"error": "the broker did not answer: the work is unknown", "queues": queues,
                             "age_seconds": age}, status=503)
    if any("in_flight" in queue and queue["in_flight"] is None for queue in queues.values()):
        # Measured but unknown now (RabbitMQ's management API did not answer): waiting alone would let the
        # autoscaler remove pods under running work, so no number at all (KEDA then keeps the replicas).
        return JsonResponse({"error": "the in-flight messages are unknown (details in the web process log): the "
                                      "work is unknown", "queues": queues, "age_seconds": age}, status=503)
    waiting = sum(queue["backlog"] for queue in queues.values())
    in_flight = sum(queue.get("in_flight", 0) for queue in queues.values())
    return JsonResponse({"queues": queues, "waiting": waiting, "in_flight": in_flight, "work": waiting + in_flight,
                         "age_seconds": age})


@never_cache
def metrics(request):
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
