"""Which exceptions mean "a backing service is down right now" (-> HTTP 503 + Retry-After, not 500).

A request that fails because PostgreSQL, the broker or the result store is unreachable is not a bug in
the request: the client should retry later. The API's exception handler asks `outage_of(exc)` and, when
it names a service, answers 503 with a readable sentence -- never the driver's text, which can carry
addresses, user names or SQL (that goes to the log).
"""

from __future__ import annotations

from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError

RETRY_AFTER_SECONDS = 10


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import ConnectionError, TimeoutError
    except ImportError:  # an amqp-only installation
        return ()
    return (ConnectionError, TimeoutError)


def _amqp_errors() -> tuple[type[BaseException], ...]:
    try:
        from amqp.exceptions import ConnectionError, RecoverableConnectionError
    except ImportError:
        return ()
    return (ConnectionError, RecoverableConnectionError)


# (exception types, the service named to the client)
_OUTAGES = (
    ((DatabaseOperationalError, DatabaseInterfaceError), "database"),
    # Celery re-raises the broker's connection errors as kombu's OperationalError when publishing.
    ((BrokerOperationalError, *_amqp_errors()), "task broker"),
    # redis-py errors reach us directly from the result store (AsyncResult.state) or a chord's set-up.
    (_redis_errors(), "task broker/result store"),
)


def outage_of(exc: BaseException | None) -> str | None:
    """The service whose outage caused `exc` (looking through explicit causes), or None."""
    seen = 0
    while exc is not None and seen < 5:
        for types, service in _OUTAGES:
            if types and isinstance(exc, types):
                return service
        exc, seen = exc.__cause__, seen + 1
    return None


def outage_message(service: str) -> str:
    return f"The {service} is temporarily unavailable; retry in {RETRY_AFTER_SECONDS} seconds."
