"""RabbitMQ's management HTTP API (the `rabbitmq_management` plugin): per queue, the messages consumers took
and have not acknowledged, and the timestamp of the queue's head message -- what AMQP itself cannot tell
(a passive declare counts ready messages only, and a message cannot be looked at without taking it).

One GET of `/api/queues/<vhost>` per collection, as the broker URL's user and vhost (the URL in
DEPLOYKIT_RABBITMQ_MANAGEMENT_URL carries no credentials). KEDA's RabbitMQ scaler in HTTP mode reads the same API.

What RabbitMQ reports (seen on 3.10 and 4.0):
- `messages_unacknowledged`: every queue type. Refreshed every `collect_statistics_interval` (5 s by
  default), and absent for a queue's first seconds until its first statistics arrive.
- `head_message_timestamp`: the AMQP `timestamp` property of the head message, on classic queues only;
  quorum queues do not report it (rabbitmq-server#6813, open). deploykit sets that property at publish
  (ops/collector.py), so a classic queue's age is known; a quorum queue's is not (absent).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

logger = logging.getLogger("deploykit.checks")

SETTING = "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL"
COLUMNS = "name,type,messages_ready,messages_unacknowledged,head_message_timestamp"


def url_problem(url: str) -> str | None:
    """Why `url` cannot be the management API's base URL, or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL of RabbitMQ's management API, not {parts.scheme or url!r}"
    if not parts.hostname:
        return "names no host"
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return "has a port that is not a number"
    if parts.query or parts.fragment:
        return "must not carry a query or fragment (the base URL only, e.g. http://rabbitmq:15672/)"
    if "@" in parts.netloc:
        return ("must not carry credentials: it logs in as CELERY_BROKER_URL's user (one secret, rotated with the "
                "broker's; that user needs RabbitMQ's `management` tag)")
    return None


@dataclass(frozen=True)
class Endpoint:
    base: str  # scheme://host:port/path/ without credentials: safe to log
    vhost: str
    authorization: str

    @classmethod
    def from_urls(cls, management_url: str, broker_conn) -> Endpoint:
        """The management API at `management_url`, logging in as the broker connection's user (kombu
        Connection: userid, password, virtual_host)."""
        parts = urllib.parse.urlsplit(management_url)
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))
        token = base64.b64encode(f"{broker_conn.userid or ''}:{broker_conn.password or ''}".encode()).decode()
        return cls(base=base, vhost=broker_conn.virtual_host or "/", authorization=f"Basic {token}")

    def queues(self, timeout: float) -> list[dict]:
        """The vhost's queues with COLUMNS (one request)."""
        url = f"{self.base}api/queues/{urllib.parse.quote(self.vhost, safe='')}?columns={COLUMNS}"
        request = urllib.request.Request(url, headers={"Authorization": self.authorization,
                                                       "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked at start-up)
            body = json.load(response)
        if not isinstance(body, list):
            raise ValueError(f"unexpected answer from {self.base}: not a list of queues")
        return body


def figures(rows: list[dict], names: list[str], now: float | None = None):
    """({queue: unacknowledged messages, or None while RabbitMQ has no statistics for it yet},
    {queue: seconds since the head message's timestamp, or None when the queue has no ready message}: classic
    queues only, where RabbitMQ reports it). Queues the broker does not have are left out of both."""
    now = time.time() if now is None else now
    by_name = {row.get("name"): row for row in rows if isinstance(row, dict)}
    in_flight: dict[str, int | None] = {}
    ages: dict[str, float | None] = {}
    for name in names:
        row = by_name.get(name)
        if row is None:
            continue
        unacked = row.get("messages_unacknowledged")
        in_flight[name] = unacked if isinstance(unacked, int) else None
        if row.get("type", "classic") != "classic":
            continue  # quorum/stream: no head timestamp (rabbitmq-server#6813)
        stamp = row.get("head_message_timestamp")
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            ages[name] = round(max(0.0, now - stamp), 1)
        elif row.get("messages_ready") == 0:
            ages[name] = None  # empty: the collector exports 0
    return in_flight, ages


class FailureLog:
    """Logs the management API's failure once (and again only when the reason changes), and its recovery."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reason: str | None = None

    def failed(self, base: str, exc: BaseException) -> None:
        reason = _reason(exc)
        with self._lock:
            if reason == self._reason:
                return
            self._reason = reason
        logger.error("RabbitMQ management API %s failed: %s; in-flight counts and head-message ages are absent "
                     "until it answers (%s)", base, reason, SETTING)

    def answered(self, base: str) -> None:
        with self._lock:
            if self._reason is None:
                return
            self._reason = None
        logger.info("RabbitMQ management API %s answers again", base)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        hint = {401: " (refused: a wrong password, or the broker URL's user lacks RabbitMQ's `management` tag)",
                403: " (the broker URL's user has no access to the vhost)",
                404: " (no such vhost, or not the management API's base URL)"}
        return f"HTTP {exc.code}{hint.get(exc.code, '')}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable: {exc.reason!r}"
    return repr(exc)


failures = FailureLog()
