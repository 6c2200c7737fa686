"""Redis over TLS and Redis Sentinel at start-up (issue #20, item 9).

A rediss:// URL without ssl_cert_reqs used to pass the start-up checks, then kombu (the broker) connected
WITHOUT checking the server's certificate while Celery's result backend refused the URL at the first result.
deploykit now writes `ssl_cert_reqs=required` into both URLs: the broker, the result backend and the throttle
cache all verify the server, against a real redis-server speaking TLS here. `ssl_cert_reqs=none` and Sentinel
URLs are refused at start-up, naming the variable (docs/configuration.md#redis-over-tls-and-sentinel).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import subprocess
import types
from pathlib import Path

import pytest
from app_services import _die_with_parent, free_port, stop_process, wait_for

from deploykit import settings as dk_settings
from deploykit.config.env import ConfigurationError

PRODUCTION = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
              "DJANGO_ALLOWED_HOSTS": "shop.example.com", "DATABASE_URL": "postgres://shop:s3cret-pass@db.internal:5432/shop"}


def apply(monkeypatch, tmp_path, **values) -> dict:
    """deploykit's settings from a production environment plus `values`."""
    for name in list(os.environ):
        if name.startswith(("DJANGO_", "CELERY_", "DEPLOYKIT_", "DATABASE_")):
            monkeypatch.delenv(name)
    for name, value in {**PRODUCTION, **values}.items():
        monkeypatch.setenv(name, value)
    ns = {"BASE_DIR": tmp_path, "INSTALLED_APPS": [], "MIDDLEWARE": []}
    dk_settings.apply(ns)
    return ns


def celery_app(ns: dict):
    from celery import Celery

    app = Celery("tls-test", set_as_current=False)
    app.config_from_object(types.SimpleNamespace(**{k: v for k, v in ns.items() if k.startswith("CELERY_")}),
                           namespace="CELERY")
    return app


# --- the settings, host-side --------------------------------------------------------------------------
def test_rediss_without_ssl_cert_reqs_gets_the_certificate_check_in_both_urls(monkeypatch, tmp_path):
    import ssl

    ns = apply(monkeypatch, tmp_path, CELERY_BROKER_URL="rediss://:s3cret-pass@redis.internal:6380/0")
    assert ns["CELERY_BROKER_URL"] == "rediss://:s3cret-pass@redis.internal:6380/0?ssl_cert_reqs=required"
    assert ns["CELERY_RESULT_BACKEND"] == ns["CELERY_BROKER_URL"]
    assert ns["CACHES"]["throttle"]["LOCATION"] == ns["CELERY_BROKER_URL"]
    # Celery reads CELERY_BROKER_URL from the environment before its settings: the environment has it too.
    assert os.environ["CELERY_BROKER_URL"] == ns["CELERY_BROKER_URL"]
    app = celery_app(ns)
    # kombu left alone turns verification off for a bare rediss:// (CERT_NONE, one warning in the log).
    assert app.connection_for_write().ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    # Celery's result backend refused a bare rediss:// URL at its first use.
    assert app.backend.connparams["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_every_spelling_of_ssl_cert_reqs_becomes_the_one_every_reader_takes(monkeypatch, tmp_path):
    """redis-py (the throttle cache) knows only required/optional/none; Celery documents CERT_REQUIRED."""
    base = "rediss://:s3cret-pass@redis.internal:6380/0"
    ns = apply(monkeypatch, tmp_path, CELERY_BROKER_URL=f"{base}?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs=/etc/ca.pem",
               CELERY_RESULT_BACKEND=f"{base.replace('/0', '/2')}?ssl_cert_reqs=CERT_OPTIONAL")
    assert ns["CELERY_BROKER_URL"] == f"{base}?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"
    assert ns["CELERY_RESULT_BACKEND"] == f"{base.replace('/0', '/2')}?ssl_cert_reqs=optional"
    ns = apply(monkeypatch, tmp_path, CELERY_BROKER_URL="redis://:s3cret-pass@redis.internal:6379/0",
               CELERY_RESULT_BACKEND=f"{base}?db=3")
    assert ns["CELERY_BROKER_URL"] == "redis://:s3cret-pass@redis.internal:6379/0"  # plain Redis: unchanged
    assert ns["CELERY_RESULT_BACKEND"] == f"{base}?db=3&ssl_cert_reqs=required"


@pytest.mark.parametrize("variable", ["CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"])
@pytest.mark.parametrize("query, expected", [
    ("ssl_cert_reqs=none", "ssl_cert_reqs=none, which turns the Redis server's certificate check off"),
    ("ssl_cert_reqs=CERT_NONE", "ssl_cert_reqs=none, which turns the Redis server's certificate check off"),
    ("ssl_cert_reqs=maybe", "ssl_cert_reqs='maybe': use required"),
])
def test_no_certificate_check_is_refused_at_start_up_naming_the_variable(monkeypatch, tmp_path, variable, query,
                                                                         expected):
    values = {"CELERY_BROKER_URL": "redis://:s3cret-pass@redis.internal:6379/0",
              variable: f"rediss://:s3cret-pass@redis.internal:6380/0?{query}"}
    with pytest.raises(ConfigurationError) as refused:
        apply(monkeypatch, tmp_path, **values)
    assert f"- {variable} has {expected}" in str(refused.value), str(refused.value)
    assert "s3cret-pass" not in str(refused.value)


def test_debug_mode_may_turn_the_check_off(monkeypatch, tmp_path):
    """A developer's local Redis with a self-made certificate: allowed when DJANGO_DEBUG is on."""
    ns = apply(monkeypatch, tmp_path, DJANGO_DEBUG="true",
               CELERY_BROKER_URL="rediss://localhost:6380/0?ssl_cert_reqs=CERT_NONE")
    assert ns["CELERY_BROKER_URL"] == "rediss://localhost:6380/0?ssl_cert_reqs=none"


@pytest.mark.parametrize("variable, url", [
    ("CELERY_BROKER_URL", "sentinel://:s3cret-pass@sentinel-1:26379;sentinel://:s3cret-pass@sentinel-2:26379"),
    ("CELERY_RESULT_BACKEND", "sentinel://:s3cret-pass@sentinel-1:26379/0"),
])
def test_sentinel_is_refused_at_start_up_saying_what_to_do(monkeypatch, tmp_path, variable, url):
    values = {"CELERY_BROKER_URL": "redis://:s3cret-pass@redis.internal:6379/0", variable: url}
    with pytest.raises(ConfigurationError) as refused:
        apply(monkeypatch, tmp_path, **values)
    message = str(refused.value)
    assert f"- {variable} is a Redis Sentinel URL, which deploykit does not support" in message
    assert "always reaches the primary" in message and "RabbitMQ (amqp://)" in message
    assert "s3cret-pass" not in message


# --- a real redis-server speaking TLS -------------------------------------------------------------------
def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate it signs (for 127.0.0.1 and localhost), and another CA that signs nothing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def write(path: Path, data: bytes) -> Path:
        path.write_bytes(data)
        return path

    def ca(label: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(label)).issuer_name(name(label))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("deploykit test CA")
    _, other_cert = ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {
        "ca": write(directory / "ca.pem", ca_cert.public_bytes(pem)),
        "other_ca": write(directory / "other-ca.pem", other_cert.public_bytes(pem)),
        "cert": write(directory / "server.pem", cert.public_bytes(pem)),
        "key": write(directory / "server.key", key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                                                 serialization.NoEncryption())),
    }


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """redis-server with TLS only (no plain port), its certificate signed by a CA of the test's own."""
    directory = tmp_path_factory.mktemp("redis-tls")
    files = make_certificates(directory)
    port = free_port()
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [exe, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--tls-cert-file", str(files["cert"]),
         "--tls-key-file", str(files["key"]), "--tls-ca-cert-file", str(files["ca"]), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(directory), "--protected-mode", "no"],
        stdout=open(directory / "redis.log", "wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def up() -> bool:
        import redis

        return redis.Redis(port=port, ssl=True, ssl_ca_certs=str(files["ca"]), socket_timeout=1).ping()

    try:
        wait_for(up, 20, f"redis-server with TLS on port {port} (log: {directory / 'redis.log'})")
    except Exception:
        stop_process(proc)
        raise
    yield types.SimpleNamespace(url=f"rediss://127.0.0.1:{port}/0", **files)
    stop_process(proc)


def throttle_cache(ns: dict):
    from django.core.cache.backends.redis import RedisCache

    config = ns["CACHES"]["throttle"]
    return RedisCache(config["LOCATION"], {"OPTIONS": config["OPTIONS"], "KEY_PREFIX": "tls-test"})


@pytest.mark.integration
def test_broker_results_and_throttle_cache_verify_the_server_over_tls(monkeypatch, tmp_path, tls_redis):
    """With the server's CA named (ssl_ca_certs) and no ssl_cert_reqs: all three connect, verifying."""
    ns = apply(monkeypatch, tmp_path, CELERY_BROKER_URL=f"{tls_redis.url}?ssl_ca_certs={tls_redis.ca}")
    app = celery_app(ns)
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.default_channel.client.ping()
    app.backend.store_result("tls-task", 42, "SUCCESS")
    assert app.backend.get_task_meta("tls-task")["result"] == 42
    cache = throttle_cache(ns)
    assert cache.add("hits", 1, timeout=60) and cache.incr("hits") == 2


@pytest.mark.integration
@pytest.mark.parametrize("trusted", ["other_ca", "system"])
def test_a_server_certificate_the_ca_did_not_sign_is_refused_by_all_three(monkeypatch, tmp_path, tls_redis, trusted):
    """Trusting another CA, or only the system's (a bare rediss:// URL): the broker, the result backend and the
    throttle cache all refuse the server, so an attacker on the path cannot pose as Redis. A bare URL used to
    reach the broker without TLS at all (deploykit's transport) or, on kombu's own, without a certificate check."""
    import redis

    query = f"?ssl_ca_certs={tls_redis.other_ca}" if trusted == "other_ca" else ""
    ns = apply(monkeypatch, tmp_path, CELERY_BROKER_URL=f"{tls_redis.url}{query}")
    app = celery_app(ns)
    app.conf.broker_connection_timeout = 2
    with app.connection_for_write() as conn, pytest.raises(Exception, match="(?i)certificate verify failed"):
        conn.ensure_connection(max_retries=0)
        conn.default_channel.client.ping()
    app.conf.redis_socket_connect_timeout = 2
    with pytest.raises(Exception, match="(?i)certificate verify failed"):
        app.backend.client.ping()
    with pytest.raises(redis.exceptions.ConnectionError, match="(?i)certificate verify failed"):
        throttle_cache(ns).add("hits", 1, timeout=60)
