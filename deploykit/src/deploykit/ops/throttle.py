"""Per-client rate limits for the API endpoints that create background work (429 + Retry-After).

A fixed-window counter in the shared `throttle` cache (deploykit.settings: Redis when one is configured,
else a table in the database, `CounterDatabaseCache`), so every gunicorn worker and every web container
counts against the same limit. Both increment atomically and keep the counter's expiry (its window). At a
window's edge a client can get up to twice the rate in a short time: the price of one counter per client
instead of a list of timestamps (DRF's own throttle).

The client is the address the proxies in front of gunicorn saw (DEPLOYKIT_NUM_PROXIES of them, counted from
the right of X-Forwarded-For), and an IPv6 client is its /64: one host (one customer line, one cloud VM)
gets a whole /64 and could otherwise rotate addresses for a fresh budget per request.

If the cache cannot be reached the request is let through and a warning is logged: throttling protects
capacity, it must not turn a cache outage into an API outage (the publish that follows reports a broker
outage on its own).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import math
import pickle
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger("deploykit.throttle")

PERIOD_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
IPV6_CLIENT_PREFIX = 64  # one budget per IPv6 /64 (module doc)


def client_address(request, num_proxies: int) -> str:
    """The address of the client as the first of `num_proxies` proxies saw it: the `num_proxies`-th
    X-Forwarded-For entry from the right (each proxy appends the peer it saw, so entries left of it are the
    client's own and can be forged). REMOTE_ADDR when no proxy is trusted or no header came. The same rule as
    DRF's NUM_PROXIES, which deploykit.settings sets to the same value."""
    remote = request.META.get("REMOTE_ADDR") or ""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies == 0 or not forwarded:
        return remote.strip()
    entries = [entry.strip() for entry in forwarded.split(",")]
    return entries[-min(num_proxies, len(entries))]


def client_ident(address: str) -> str:
    """The budget an address belongs to: an IPv4 address itself, an IPv6 address's /64 (an IPv4-mapped
    IPv6 address is its IPv4 address). Anything that does not parse is its own text (hashed by the caller)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(ip)


class ClientRateThrottle(BaseThrottle):
    """Subclasses name the setting holding their rate: (requests, period in seconds), or None for off."""

    rate_setting = ""
    scope = ""

    def get_ident(self, request) -> str:
        return client_ident(client_address(request, getattr(settings, "DEPLOYKIT_NUM_PROXIES", 1)))

    def allow_request(self, request, view) -> bool:
        rate = getattr(settings, self.rate_setting)
        if rate is None:
            return True
        limit, period = rate
        now = time.time()
        window = int(now // period)
        # Hashed: the client's address comes from X-Forwarded-For and must not size or shape our keys.
        client = hashlib.sha256(self.get_ident(request).encode()).hexdigest()[:32]
        key = f"throttle:{self.scope}:{client}:{window}"
        try:
            hits = _hit(caches["throttle"], key, period)
        except Exception:  # noqa: BLE001 - any cache failure: let the request through (module doc)
            logger.warning("throttle cache unavailable; %s not limited", request.path, exc_info=True)
            return True
        if hits <= limit:
            return True
        wait = max(1, math.ceil((window + 1) * period - now))
        raise exceptions.Throttled(
            wait, f"Too many requests from this client: at most {limit} per {PERIOD_NAMES[period]}.")


def _hit(cache, key: str, period: int) -> int:
    """Count one request in `key` (expiring after its window) and return the count so far. `incr` must keep
    the key's expiry: Redis's INCRBY does; Django's generic incr (get + set) does not, hence
    `CounterDatabaseCache` for the database."""
    if cache.add(key, 1, timeout=period + 1):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=period + 1)
        return 1


class CounterDatabaseCache(DatabaseCache):
    """Django's database cache, fit for counters (the throttle's cache without Redis, the RabbitMQ variant).

    - `incr` keeps the counter's expiry. Django's generic incr is a get and a `set()` with the cache's default
      timeout (300 s): an hour or day window would restart after five idle minutes. Here it is one UPDATE of
      the value alone, conditional on the value read (a compare-and-swap, retried): concurrent hits from
      several web processes are all counted.
    - A full table (more than MAX_ENTRIES rows) culls only expired rows, never live counters: Django's cull
      deletes a third of all rows, which under load (many clients in one window) resets live budgets.
      MAX_ENTRIES is then only how often expired rows are swept.
    """

    def incr(self, key, delta=1, version=None):
        db_key = self.make_and_validate_key(key, version=version)
        for _ in range(20):
            value = self.get(key, self._missing_key, version=version)
            if value is self._missing_key:
                raise ValueError(f"Key {key!r} not found")
            if self._swap(db_key, value, value + delta):
                return value + delta
        logger.warning("throttle counter %s too contended; one hit not counted", key)
        return value + delta

    def _swap(self, db_key: str, old, new) -> bool:
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(self._table)} SET {quote('value')} = %s "
                f"WHERE {quote('cache_key')} = %s AND {quote('value')} = %s",
                [self._encode(new), db_key, self._encode(old)])
            return cursor.rowcount == 1

    def _encode(self, value) -> str:
        return base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")  # as _base_set

    def _cull(self, db, cursor, now, num):
        connection = connections[db]
        cursor.execute(
            f"DELETE FROM {connection.ops.quote_name(self._table)} WHERE {connection.ops.quote_name('expires')} < %s",
            [connection.ops.adapt_datetimefield_value(now)])


class CreateRateThrottle(ClientRateThrottle):
    """POST /api/tasks/ and /api/reports/: one budget per client (DEPLOYKIT_API_THROTTLE_RATE)."""

    rate_setting = "DEPLOYKIT_API_THROTTLE_RATE"
    scope = "create"


class UploadRateThrottle(ClientRateThrottle):
    """POST /api/images/ (DEPLOYKIT_API_THROTTLE_UPLOAD_RATE): uploads cost far more than a task."""

    rate_setting = "DEPLOYKIT_API_THROTTLE_UPLOAD_RATE"
    scope = "upload"
