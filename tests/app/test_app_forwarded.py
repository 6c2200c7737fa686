"""Forwarding headers count only from a trusted proxy (FORWARDED_ALLOW_IPS): against a real gunicorn
(deploykit-web) on 127.0.0.1, a forged X-Forwarded-For / X-Forwarded-Proto from a peer outside the list
changes neither the client address the rate limits count nor Django's idea of HTTPS; from a listed peer
both are honoured. Before deploykit/ops/gunicorn_forwarded.py, gunicorn passed them on from any peer and
Django read them raw (#20 item 5)."""

import json
from pathlib import Path

import pytest
from app_services import http, start_web

pytestmark = pytest.mark.integration

FORGED = {"Host": "app.example.com", "X-Forwarded-For": "203.0.113.7, 198.51.100.9",
          "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}


def web(start, name: str, allowed: str):
    # The echo app lives beside this file; gunicorn runs from the project's directory.
    return start_web(start, name, FORWARDED_ALLOW_IPS=allowed, DEPLOYKIT_WSGI_APP="forwarded_echo:application",
                     PYTHONPATH=str(Path(__file__).parent))


@pytest.fixture(scope="module")
def trusted(start_session_app):
    return web(start_session_app, "web-forwarded-trusted", "127.0.0.1,::1")


@pytest.fixture(scope="module")
def untrusted(start_session_app):
    # 127.0.0.1 is outside this list: the test client is a peer that is not the proxy.
    return web(start_session_app, "web-forwarded-untrusted", "192.0.2.0/24,10.0.0.0/8")


def seen(web) -> dict:
    status, _, body = http(f"{web.base}/__forwarded", FORGED)
    assert status == 200, body[:500]
    return json.loads(body)


def test_untrusted_peer_cannot_forge_client_address_or_https(untrusted):
    assert seen(untrusted) == {"secure": False, "client": "127.0.0.1", "forwarded_for": None, "forwarded_host": None}


def test_untrusted_peer_claiming_https_is_redirected(untrusted):
    # DJANGO_SECURE_SSL_REDIRECT is on (production mode): the forged header does not skip the redirect.
    status, headers, _ = http(f"{untrusted.base}/api/tasks/", FORGED)
    assert status == 301 and headers["Location"].startswith("https://app.example.com/")


def test_trusted_proxy_is_honoured(trusted):
    # DEPLOYKIT_NUM_PROXIES=1: the entry the proxy appended, the rightmost.
    assert seen(trusted) == {"secure": True, "client": "198.51.100.9", "forwarded_for": "203.0.113.7, 198.51.100.9",
                             "forwarded_host": "evil.example"}
    status, _, _ = http(f"{trusted.base}/api/tasks/", FORGED)
    assert status != 301


def test_trust_rule_matches_gunicorns():
    from deploykit.ops.gunicorn_forwarded import peer_is_trusted

    assert peer_is_trusted(("10.244.0.7", 4242), ["10.244.0.0/16"])
    assert not peer_is_trusted(("10.245.0.7", 4242), ["10.244.0.0/16", "127.0.0.1"])
    assert peer_is_trusted(("203.0.113.7", 4242), ["*"])  # Compose's and the VMs' default: unchanged
    assert peer_is_trusted("/run/gunicorn.sock", ["127.0.0.1"])  # a UNIX socket peer, as gunicorn treats it
