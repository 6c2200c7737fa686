"""Per-client rate limits for the API endpoints that create background work (429 + Retry-After).

A fixed-window counter in the shared `throttle` cache (config/settings.py: Redis when one is configured,
else a table in the database), so every gunicorn worker and every web container counts against the same
limit. Redis increments atomically; the database cache can miss a few concurrent hits, which only makes
the limit a little lenient. At a window's edge a client can get up to twice the rate in a short time:
the price of one counter per client instead of a list of timestamps (DRF's own throttle).

If the cache cannot be reached the request is let through and a warning is logged: throttling protects
capacity, it must not turn a cache outage into an API outage (the publish that follows reports a broker
outage on its own).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import caches
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger("deploykit.throttle")

PERIOD_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


class ClientRateThrottle(BaseThrottle):
    """Subclasses name the setting holding their rate: (requests, period in seconds), or None for off."""

    rate_setting = ""
    scope = ""

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
    """Count one request in `key` (expiring after its window) and return the count so far."""
    if cache.add(key, 1, timeout=period + 1):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=period + 1)
        return 1


class CreateRateThrottle(ClientRateThrottle):
    """POST /api/tasks/ and /api/reports/: one budget per client (DEPLOYKIT_API_THROTTLE_RATE)."""

    rate_setting = "DEPLOYKIT_API_THROTTLE_RATE"
    scope = "create"


class UploadRateThrottle(ClientRateThrottle):
    """POST /api/images/ (DEPLOYKIT_API_THROTTLE_UPLOAD_RATE): uploads cost far more than a task."""

    rate_setting = "DEPLOYKIT_API_THROTTLE_UPLOAD_RATE"
    scope = "upload"
