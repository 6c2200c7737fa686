"""Timeouts and TCP keepalives on every broker and result-store connection (docs/reliability.md#timeouts).

A broker that stops answering without closing its connections (a frozen VM or container, a partition that
drops packets, a failover behind a virtual IP) is not refused: without timeouts a publish waits on the
dead socket forever (a POST hung past gunicorn's timeout, its row left PENDING). Every broker and
result-store connection gets connect and read/write timeouts and TCP keepalives; kombu's and redis-py's
health checks PING a connection idle longer than the interval before reusing it.

`deploykit.settings.apply()` sets the workers' values (DEPLOYKIT_BROKER_TIMEOUT) as CELERY_* settings;
the web tier applies `web_timeouts()` over them (app/config/wsgi.py: `celery_app.conf.update(web_timeouts())`).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from .env import is_redis_url

THROTTLE_CACHE_TIMEOUT = 1  # seconds: the most the API throttle's Redis cache waits (deploykit.settings)
HEALTH_CHECK_INTERVAL = 25  # seconds: kombu's default, also on the result store
# kombu's BRPOP waits up to brpop_timeout (1 s) for a message; a read timeout at or below it turns every
# empty poll of a synchronous consumer (drain_events) into a timeout error.
BRPOP_TIMEOUT = 1
# Keepalive probes after 60 s idle, every 10 s, 3 unanswered: a peer that vanished (host gone, NAT entry
# dropped) is found in about 90 s on an idle pooled connection instead of Linux's 2 h 11 min.
KEEPALIVE = {"idle": 60, "interval": 10, "count": 3}


def redis_socket_options(timeout: float, connect_timeout: float) -> dict:
    keepalive = {}
    for name, value in (("TCP_KEEPIDLE", "idle"), ("TCP_KEEPINTVL", "interval"), ("TCP_KEEPCNT", "count")):
        if hasattr(socket, name):  # Linux; macOS lacks TCP_KEEPIDLE (development only)
            keepalive[getattr(socket, name)] = KEEPALIVE[value]
    return {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, "socket_keepalive": True,
            "socket_keepalive_options": keepalive}


def deploykit_timeouts(settings: Mapping[str, Any], timeout: float, connect_timeout: float) -> dict:
    """The Celery settings (lower-case names) that bound every broker/result-store wait by `timeout`.

    `settings`: the CELERY_BROKER_URL, CELERY_RESULT_BACKEND and CELERY_BROKER_TRANSPORT_OPTIONS in force."""
    broker_url = settings.get("CELERY_BROKER_URL")
    options = settings.get("CELERY_BROKER_TRANSPORT_OPTIONS") or {}
    conf: dict = {"broker_connection_timeout": connect_timeout}
    if is_redis_url(broker_url):
        conf["broker_transport_options"] = {**options, **redis_socket_options(timeout, connect_timeout),
                                            "health_check_interval": HEALTH_CHECK_INTERVAL}
    elif broker_url and broker_url.startswith(("amqp://", "amqps://")):
        # py-amqp: socket read/write timeouts (also bound the wait for a publisher confirm).
        conf["broker_transport_options"] = {**options, "read_timeout": timeout, "write_timeout": timeout}
    if is_redis_url(settings.get("CELERY_RESULT_BACKEND")):
        conf.update({"redis_socket_timeout": timeout, "redis_socket_connect_timeout": connect_timeout,
                     "redis_socket_keepalive": True, "redis_retry_on_timeout": False,
                     "redis_backend_health_check_interval": HEALTH_CHECK_INTERVAL})
    return conf


def web_timeouts(settings: Any = None) -> dict:
    """The web tier's Celery settings: a request's publish gives up within DEPLOYKIT_PUBLISH_DEADLINE.

    Worst case on a black-holed Redis, traced (tests/app/test_app_blackhole.py): the throttle cache's
    1 s, then up to four waits of the timeout in a row: the result-store subscription (a process's first
    publish), the publish, and the one retry's reconnection, whose handshake and health-check PING each
    wait once. So each wait gets (deadline - 1 s) / 4. `settings`: Django's (default) or a mapping."""
    if settings is None:
        from django.conf import settings
    if not isinstance(settings, Mapping):
        settings = {name: getattr(settings, name, None) for name in (
            "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_BROKER_TRANSPORT_OPTIONS",
            "DEPLOYKIT_PUBLISH_DEADLINE", "DEPLOYKIT_BROKER_TIMEOUT", "DEPLOYKIT_BROKER_CONNECT_TIMEOUT")}
    timeout = max(0.25, (settings["DEPLOYKIT_PUBLISH_DEADLINE"] - THROTTLE_CACHE_TIMEOUT) / 4)
    conf = deploykit_timeouts(settings, min(timeout, settings["DEPLOYKIT_BROKER_TIMEOUT"]),
                              min(timeout, settings["DEPLOYKIT_BROKER_CONNECT_TIMEOUT"]))
    conf["task_publish_retry_policy"] = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                                         "interval_max": 0.2}
    return conf
