"""The dependency checks behind /readyz and /status (also usable from management commands)."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

from . import rabbitmq_api

logger = logging.getLogger("deploykit.checks")


def describe_database(alias: str = "default") -> str:
    """`postgresql db.internal:5432/app` -- which database, never the password."""
    conn = connections[alias]
    params = conn.settings_dict
    where = params.get("NAME") or ""
    if params.get("HOST"):
        where = f"{params['HOST']}:{params.get('PORT') or 'default port'}/{where}"
    return f"{conn.vendor} {where}"


def check_database(alias: str = "default") -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        connections[alias].close_if_unusable_or_obsolete()
        where = describe_database(alias)
        # The driver's text can carry internals (addresses, user names, SQL): it goes to the log, and the
        # probe body stays a stable sentence naming only which database.
        logger.exception("database check failed: %s", where)
        return {"ok": False, "error": f"database {where} is unavailable (details in the web process log)"}
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def describe_broker(conn) -> str:
    """`redis redis:6379` -- which broker, never the password."""
    return f"{conn.transport_cls} {conn.hostname}:{conn.port or 'default port'}"


def check_broker(app=None, timeout: float = 2.0) -> dict[str, Any]:
    """Connect once, with a hard deadline: while the broker's host is gone, name resolution alone can
    take longer than any connect timeout, and /status must still answer in seconds."""
    app = app or _celery_app()
    started = time.monotonic()
    conn = app.connection_for_write()
    where = describe_broker(conn)
    attempt = ThreadPoolExecutor(1, thread_name_prefix="broker-check")
    try:
        attempt.submit(conn.ensure_connection, max_retries=1, interval_start=0, interval_step=0.2,
                       timeout=timeout).result(timeout + 1)
    except Exception as exc:
        # Like the database check: the driver's text goes to the log, the body stays a stable sentence.
        logger.error("broker check failed: %s: %r", where, exc)
        return {"ok": False, "error": f"task broker {where} is unavailable (details in the web process log)"}
    finally:
        attempt.shutdown(wait=False)  # a hung attempt finishes in the background
    transport = conn.transport_cls
    conn.release()
    return {"ok": True, "transport": str(transport), "latency_ms": round((time.monotonic() - started) * 1000, 1)}


def consumers(app=None, timeout: float = 1.0) -> dict[str, list[str]]:
    """worker node name -> the queues it consumes, from one `active_queues` broadcast (as cheap as the
    ping: one control message, bounded by `timeout`); {} when the broker or every worker is silent."""
    app = app or _celery_app()
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:
        return {}
    return {worker: sorted(queue["name"] for queue in queues or []) for worker, queues in replies.items()}


def queue_status(by_worker: dict[str, list[str]], app=None, timeout: float = 2.0,
                 age_header: str | None = None) -> dict[str, dict[str, Any]]:
    """Each queue a worker consumes or the deployment declares (DEPLOYKIT_CONSUMED_QUEUES): its consumers
    and its backlog, the messages waiting in the broker (Redis: the length of the queue's lists; RabbitMQ:
    a passive declare's message count). Backlog None: not declared in the broker (yet), or no answer
    within `timeout` (one connection for all queues, with a hard deadline as the broker check).
    With `age_header` (Redis only), also `oldest_age_seconds`: seconds since the oldest waiting message was
    published, read from that header over the same connection (None: empty, or a message without it).
    Also `in_flight`: messages workers took and have not acknowledged (prefetched, waiting for their ETA or
    rate limit, running), so backlog + in_flight is the queue's whole work -- on Redis from kombu's unacked
    hash; on RabbitMQ from its management API when DEPLOYKIT_RABBITMQ_MANAGEMENT_URL is set (ops/rabbitmq_api.py,
    read beside the AMQP count, with its own deadline), which also gives classic queues' `oldest_age_seconds`.
    `in_flight` None: measured but unknown now (the management API did not answer, or has no statistics for
    the queue yet); absent: not measured (RabbitMQ without the management URL)."""
    app = app or _celery_app()
    declared = getattr(settings, "DEPLOYKIT_CONSUMED_QUEUES", None) or []
    names = sorted({queue for queues in by_worker.values() for queue in queues} | set(declared))
    management = _management_endpoint(app) if names else None
    if management is None:
        backlog, ages, in_flight = _backlogs(app, names, timeout, age_header) if names else ({}, {}, {})
    else:
        backlog, ages, in_flight = _rabbitmq_status(app, names, timeout, management)
    status = {name: {"consumers": sorted(w for w, queues in by_worker.items() if name in queues),
                     "backlog": backlog.get(name)} for name in names}
    for name, age in ages.items():
        status[name]["oldest_age_seconds"] = age
    for name in names:
        if name in in_flight:
            status[name]["in_flight"] = in_flight[name]
    return status


def _backlogs(app, names: list[str], timeout: float, age_header: str | None = None):
    """({queue: message count}, {queue: oldest message's age} on Redis with `age_header`, else {},
    {queue: messages taken and not acknowledged} on Redis, else {})."""
    def count():
        counts: dict[str, int | None] = {}
        ages: dict[str, float | None] = {}
        in_flight: dict[str, int] = {}
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            channel = conn.channel()
            redis = conn.transport.driver_type == "redis"
            for name in names:
                try:
                    counts[name] = channel.queue_declare(queue=name, passive=True).message_count
                except conn.channel_errors:
                    # Redis: a queue without messages has no list (kombu says NOT_FOUND): empty. RabbitMQ: not
                    # declared yet, and the broker closed the channel, so take a new one.
                    counts[name] = 0 if redis else None
                    if not redis:
                        channel = conn.channel()
            if redis and age_header:
                ages = _oldest_ages(channel.client, names, age_header)
            if redis:
                in_flight = _in_flight(channel.client, channel.unacked_key, names)
            channel.close()
        return counts, ages, in_flight

    attempt = ThreadPoolExecutor(1, thread_name_prefix="queue-backlog")
    try:
        return attempt.submit(count).result(timeout + 1)
    except Exception as exc:
        logger.error("queue backlog check failed: %r", exc)
        return {}, {}, {}
    finally:
        attempt.shutdown(wait=False)


def _management_endpoint(app):
    """The RabbitMQ management API to read, or None (not configured, or the broker is not RabbitMQ)."""
    url = getattr(settings, "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL", None)
    if not url:
        return None
    conn = app.connection_for_read()
    try:
        if conn.transport.driver_type != "amqp":
            return None
        return rabbitmq_api.Endpoint.from_urls(url, conn)
    finally:
        conn.release()


def _rabbitmq_status(app, names: list[str], timeout: float, management):
    """The AMQP backlog and the management API's figures, side by side, each with its own deadline: a slow or
    failing management API leaves the backlog as it is, and its own figures unknown (None), never 0."""
    reader = ThreadPoolExecutor(1, thread_name_prefix="rabbitmq-management")
    try:
        pending = reader.submit(management.queues, timeout)
        backlog, _ages, _in_flight = _backlogs(app, names, timeout)
        try:
            rows = pending.result(timeout + 1)
        except Exception as exc:
            rabbitmq_api.failures.failed(management.base, exc)
            return backlog, {}, {name: None for name in names if backlog.get(name) is not None}
    finally:
        reader.shutdown(wait=False)
    rabbitmq_api.failures.answered(management.base)
    in_flight, ages = rabbitmq_api.figures(rows, names)
    return backlog, ages, in_flight


def _oldest_ages(client, names: list[str], header: str) -> dict[str, float | None]:
    """kombu pushes on the left and pops on the right: a queue's oldest message is its list's last element.
    RabbitMQ cannot show a message without taking it, so only Redis has this."""
    try:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.lindex(name, -1)
        last = pipe.execute()
    except Exception as exc:  # the backlog still counts without the ages
        logger.error("oldest message check failed: %r", exc)
        return {}
    now = time.time()
    return {name: _age(raw, header, now) for name, raw in zip(names, last)}


def _in_flight(client, unacked_key: str, names: list[str]) -> dict[str, int]:
    """kombu's `unacked` hash holds, per delivery tag, [message, exchange, routing key]: every message a worker
    took and has not acknowledged (bounded by workers x concurrency x prefetch). Counted by routing key,
    which is the queue's name for Celery's queues."""
    try:
        entries = client.hvals(unacked_key)
    except Exception as exc:  # the backlog still counts without it
        logger.error("in-flight message check failed: %r", exc)
        return {}
    counts = dict.fromkeys(names, 0)
    for raw in entries:
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if routing_key in counts:
            counts[routing_key] += 1
    return counts


def _age(raw, header: str, now: float) -> float | None:
    if raw is None:
        return None
    try:
        return round(max(0.0, now - float(json.loads(raw)["headers"][header])), 1)
    except (ValueError, KeyError, TypeError):
        return None


def _celery_app():
    from celery import current_app

    return current_app._get_current_object()


DEFAULT_BEAT_LAST_RUN = "deploykit.models.beat_last_run"


def beat_status() -> dict[str, Any]:
    """Beat's last recorded tick: deploykit's own (`deploykit.beat_tick`, deploykit.models.beat_last_run), or
    the callable path a project names in DEPLOYKIT_BEAT_LAST_RUN."""
    from django.utils.module_loading import import_string

    hook = getattr(settings, "DEPLOYKIT_BEAT_LAST_RUN", None) or DEFAULT_BEAT_LAST_RUN
    max_age = 3 * getattr(settings, "DEPLOYKIT_BEAT_TICK_SECONDS", 15) + 10
    try:
        last_run = import_string(hook)()
    except Exception:
        logger.exception("beat status check failed")
        return {"ok": False, "last_run": None, "error": "beat's last run cannot be read (details in the web process log)"}
    if last_run is None:
        return {"ok": False, "last_run": None, "error": "beat has not run yet"}
    from django.utils import timezone

    age = (timezone.now() - last_run).total_seconds()
    result = {"ok": age <= max_age, "last_run": last_run.isoformat(), "age_seconds": round(age, 1)}
    if not result["ok"]:
        result["error"] = f"last tick is older than {max_age}s"
    return result
