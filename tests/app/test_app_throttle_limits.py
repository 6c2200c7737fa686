"""Rate limits that hold (issue #20, item 7), on a clock the test controls: an hour budget in the database
cache survives more than 300 idle seconds, a full counter table culls only expired rows, an IPv6 client is
its /64, and DEPLOYKIT_NUM_PROXIES picks the address the first of several proxies saw.

The throttle is called directly (as DRF calls it before a view) on the cache the settings give the RabbitMQ
variant (deploykit.settings.apply with an amqp:// broker): its counters in the database's `api_throttle` table.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone

import pytest
from django.db import connection
from django.test import RequestFactory
from rest_framework.exceptions import Throttled

from deploykit import settings as dk_settings
from deploykit.config.env import ConfigurationError
from deploykit.ops.throttle import CreateRateThrottle

pytestmark = pytest.mark.django_db

HOUR = 3600
START = 500_000 * HOUR  # an hour window's first second (2027-01-15T08:00Z)


class Clock:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now, tz=timezone.utc)


@pytest.fixture
def clock(monkeypatch):
    """time.time() (the throttle's windows, the cache's expiry dates) and the database cache's now()."""
    clock = Clock(START + 10)
    monkeypatch.setattr("time.time", clock.time)
    monkeypatch.setattr("django.core.cache.backends.db.tz_now", clock.utcnow)
    return clock


def rabbitmq_variant_cache(monkeypatch, tmp_path) -> dict:
    """CACHES["throttle"] as apply() makes it without Redis (RabbitMQ broker, django-db results)."""
    for name in list(os.environ):
        if name.startswith(("DJANGO_", "CELERY_", "DEPLOYKIT_", "DATABASE_")):
            monkeypatch.delenv(name)
    for name, value in {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "DJANGO_ALLOWED_HOSTS": "shop.example.com",
                        "DATABASE_URL": "postgres://shop:s3cret-pass@db.internal:5432/shop",
                        "CELERY_BROKER_URL": "amqp://app:s3cret-pass@rabbitmq.internal:5672/"}.items():
        monkeypatch.setenv(name, value)
    ns = {"BASE_DIR": tmp_path, "INSTALLED_APPS": [], "MIDDLEWARE": []}
    dk_settings.apply(ns)
    return ns["CACHES"]["throttle"]


@pytest.fixture
def db_throttle(settings, monkeypatch, tmp_path, clock):
    """Two task creations an hour, counted in the database as on the RabbitMQ variant."""
    cache = rabbitmq_variant_cache(monkeypatch, tmp_path)
    assert "Redis" not in cache["BACKEND"]
    settings.CACHES = {**settings.CACHES, "throttle": cache}
    settings.DEPLOYKIT_API_THROTTLE_RATE = (2, HOUR)
    settings.DEPLOYKIT_NUM_PROXIES = 1
    return settings


def hit(remote: str, forwarded: str | None = None) -> bool:
    """One POST /api/tasks/ as the throttle sees it: True if let through, False if 429."""
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    try:
        return CreateRateThrottle().allow_request(RequestFactory().post("/api/tasks/", **meta), None)
    except Throttled:
        return False


def rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM api_throttle")
        return cursor.fetchone()[0]


def test_an_hour_budget_outlives_five_idle_minutes_in_the_database(db_throttle, clock):
    """Django's generic incr re-sets the counter with the cache's default timeout (300 s): the budget was
    back after five idle minutes."""
    assert [hit("203.0.113.1"), hit("203.0.113.1")] == [True, True]
    clock.now += 301
    assert not hit("203.0.113.1")
    clock.now = START + HOUR - 1  # the window's last second: still spent
    assert not hit("203.0.113.1")
    clock.now = START + HOUR  # the next window
    assert hit("203.0.113.1")


def test_a_full_counter_table_culls_expired_rows_never_live_counters(db_throttle, clock):
    """Past MAX_ENTRIES rows Django's cull deletes a third of the table, live counters included: their
    clients got their budget back. Here only expired rows go."""
    db_throttle.CACHES = {**db_throttle.CACHES, "throttle": {
        **db_throttle.CACHES["throttle"], "OPTIONS": {**db_throttle.CACHES["throttle"]["OPTIONS"], "MAX_ENTRIES": 5}}}
    clients = [f"198.51.100.{n}" for n in range(1, 13)]
    for client in clients:
        assert hit(client) and hit(client)
    assert rows() == len(clients)
    assert not any(hit(client) for client in clients), "a live counter was culled"
    # Two windows later every counter has expired: the next write sweeps them.
    clock.now += 2 * HOUR + 2
    assert hit("198.51.100.200")
    assert rows() == 1


def test_an_ipv6_client_is_its_slash_64(db_throttle, clock):
    """One host gets a /64: with a budget per address it could rotate addresses for a fresh budget each time."""
    assert hit("2001:db8:1:2::1") and hit("2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert not hit("2001:db8:1:2:abcd::42")  # a third address of the same /64
    assert hit("2001:db8:1:3::1")  # the next /64 is another client
    # An IPv4-mapped address is its IPv4 address; IPv4 clients stay one address each.
    assert hit("::ffff:192.0.2.7") and hit("192.0.2.7") and not hit("::ffff:192.0.2.7")
    assert hit("192.0.2.8")


def test_behind_two_proxies_each_client_has_its_own_budget(db_throttle, clock):
    """A load balancer then an ingress controller: X-Forwarded-For is `client, balancer` and the peer is the
    ingress controller. Counted one proxy deep, every client was the balancer, sharing one budget."""
    db_throttle.DEPLOYKIT_NUM_PROXIES = 2
    ingress, balancer = "10.0.0.9", "10.1.0.2"
    assert hit(ingress, f"203.0.113.10, {balancer}") and hit(ingress, f"203.0.113.10, {balancer}")
    assert hit(ingress, f"203.0.113.11, {balancer}")  # another client behind the same two proxies
    # What the client sends itself is left of what the balancer saw: forging it changes nothing.
    assert not hit(ingress, f"198.51.100.99, 203.0.113.10, {balancer}")


def test_one_proxy_takes_the_last_entry(db_throttle, clock):
    assert hit("10.0.0.2", "203.0.113.20") and hit("10.0.0.2", "198.51.100.1, 203.0.113.20")
    assert not hit("10.0.0.2", "198.51.100.2, 203.0.113.20")


def test_no_proxy_takes_the_peer_address(db_throttle, clock):
    db_throttle.DEPLOYKIT_NUM_PROXIES = 0
    assert hit("203.0.113.30", "1.1.1.1") and hit("203.0.113.30", "1.1.1.2")
    assert not hit("203.0.113.30", "1.1.1.3")


def test_num_proxies_is_read_bounded_and_given_to_drf(monkeypatch, tmp_path):
    rabbitmq_variant_cache(monkeypatch, tmp_path)  # a valid production environment
    monkeypatch.setenv("DEPLOYKIT_NUM_PROXIES", "2")
    ns = {"BASE_DIR": tmp_path, "INSTALLED_APPS": [], "MIDDLEWARE": [], "REST_FRAMEWORK": {"NUM_PROXIES": 1,
                                                                                             "PAGE_SIZE": 10}}
    dk_settings.apply(ns)
    assert ns["DEPLOYKIT_NUM_PROXIES"] == 2
    assert ns["REST_FRAMEWORK"] == {"NUM_PROXIES": 2, "PAGE_SIZE": 10}
    for bad in ("-1", "6", "two"):
        monkeypatch.setenv("DEPLOYKIT_NUM_PROXIES", bad)
        with pytest.raises(ConfigurationError, match="- DEPLOYKIT_NUM_PROXIES "):
            dk_settings.apply({"BASE_DIR": tmp_path, "INSTALLED_APPS": [], "MIDDLEWARE": []})
