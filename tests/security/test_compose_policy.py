"""Compose policy (checkov has no Compose framework): the rendered model (`docker compose config`) of both
broker variants keeps the promises of SECURITY.md, and a missing secret stops Compose naming it.

Static: needs the docker CLI with the Compose plugin, not a running daemon or built images."""

from __future__ import annotations

import re

import pytest

from seclib import APP_SERVICES, COMPOSE_FILES, REPO, clean_env, compose_cmd, compose_model, generate_env_file, run

BROKERS = sorted(COMPOSE_FILES)
# Containers whose root filesystem must be read-only (writable: tmpfs /tmp and named data volumes only).
READ_ONLY = (*APP_SERVICES, "proxy")
# Where each read-only service may write (its volumes' targets).
WRITABLE_MOUNTS = {"web": {"/var/lib/app/media"}, "worker-default": {"/var/lib/app/media"}, "worker-io": {"/var/lib/app/media"},
                   "worker-images": {"/var/lib/app/media"}, "migrate": {"/var/lib/app/media"},
                   "beat": set(), "flower": set(), "proxy": {"/data", "/config"}}
# The observability profile: read-only too, writing only its data volumes; its two UIs published on loopback.
MONITORING_WRITABLE = {"prometheus": {"/prometheus"}, "alertmanager": {"/alertmanager"}, "redis-exporter": set(),
                       "postgres-exporter": set()}
LOOPBACK_UIS = {"prometheus", "alertmanager"}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory):
    return generate_env_file(tmp_path_factory.mktemp("compose") / "policy.env")


@pytest.fixture(scope="module", params=BROKERS)
def model(request, env_file):
    return compose_model(env_file, request.param)


def active(model: dict) -> dict:
    return {name: svc for name, svc in model["services"].items() if not svc.get("profiles")}


def test_no_service_gets_privileges_or_host_namespaces(model):
    for name, svc in active(model).items():
        assert not svc.get("privileged"), f"{name} is privileged"
        assert not svc.get("cap_add"), f"{name} adds capabilities {svc.get('cap_add')}"
        for ns in ("network_mode", "pid", "ipc", "userns_mode"):
            assert svc.get(ns) != "host", f"{name} shares the host's {ns}"
        for vol in svc.get("volumes", []):
            assert "docker.sock" not in str(vol.get("source", "")), f"{name} mounts the Docker socket"
            assert vol.get("type") != "bind" or vol.get("read_only"), f"{name} has a writable bind mount {vol}"
        user = str(svc.get("user", "")).split(":")[0]
        assert user not in ("root", "0"), f"{name} runs as root"


def test_only_the_proxy_and_monitoring_uis_are_published_and_only_on_loopback(model):
    published = {name: svc["ports"] for name, svc in active(model).items() if svc.get("ports")}
    assert set(published) - LOOPBACK_UIS == {"proxy"}, f"services published on the host: {sorted(published)}"
    for name, ports in published.items():
        for port in ports:
            assert port.get("host_ip") == "127.0.0.1", f"{name} port {port} is not bound to loopback by default"


def test_app_and_proxy_root_filesystems_are_read_only(model):
    services = active(model)
    for name in READ_ONLY:
        svc = services[name]
        assert svc.get("read_only") is True, f"{name}: root filesystem is writable"
        assert "/tmp" in [t.split(":")[0] for t in svc.get("tmpfs", [])], f"{name}: no tmpfs /tmp"
        targets = {v["target"] for v in svc.get("volumes", [])}
        assert targets <= WRITABLE_MOUNTS[name], f"{name}: unexpected writable mounts {targets - WRITABLE_MOUNTS[name]}"
    for name, allowed in MONITORING_WRITABLE.items():
        if name not in services:
            continue
        svc = services[name]
        assert svc.get("read_only") is True, f"{name}: root filesystem is writable"
        writable = {v["target"] for v in svc.get("volumes", []) if not v.get("read_only")}
        assert writable <= allowed, f"{name}: unexpected writable mounts {writable - allowed}"


def secret_source(model: dict, service: str, secret: str) -> str:
    """The variable a service's secret is read from (the data services get their first password that way,
    so that a rotated password does not recreate them: docs/configuration.md#rotating-secrets)."""
    assert secret in [s["source"] for s in model["services"][service].get("secrets", [])], f"{service}: no {secret}"
    return model["secrets"][secret]["environment"]


def test_brokers_and_database_require_passwords(model):
    services = active(model)
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert secret_source(model, "postgres", "postgres_password") == "POSTGRES_PASSWORD", "PostgreSQL without a password"
    if "rabbitmq" in services:
        assert "RABBITMQ_DEFAULT_PASS=$$(cat /run/secrets/rabbitmq_password)" in " ".join(services["rabbitmq"]["command"])
        assert secret_source(model, "rabbitmq", "rabbitmq_password") == "RABBITMQ_PASSWORD", "RabbitMQ without a password"
    else:
        # Passwords in an ACL file written from the secret (a default user with a SHA-256 password hash, on),
        # the health check's user allowed PING only.
        command = " ".join(services["redis"]["command"])
        assert "--aclfile" in command and "--requirepass" not in command, command
        assert "user default on sanitize-payload #%s" in command and "nopass" not in command.split("\\n")[0], command
        assert "user healthcheck on nopass -@all +ping" in command, command
        assert secret_source(model, "redis", "redis_password") == "REDIS_PASSWORD", "Redis without a password"
    for name in APP_SERVICES:
        env = services[name]["environment"]
        broker = env["CELERY_BROKER_URL"]
        assert re.match(r"^(redis|amqp)://[^:@/]*:[^@/]+@", broker), f"{name}: broker URL without a password"
        assert re.match(r"^postgres://[^:@/]+:[^@/]+@", env["DATABASE_URL"]), f"{name}: database URL without password"
        assert env.get("DJANGO_DEBUG", "false").lower() in ("", "0", "false", "no", "off"), f"{name} runs in debug"


def required_variables() -> dict[str, str]:
    """Every ${NAME:?message} in the Compose files, with the file that declares it."""
    found = {}
    for broker, files in COMPOSE_FILES.items():
        for f in files:
            for name in re.findall(r"\$\{([A-Z0-9_]+):\?", (REPO / f).read_text()):
                found.setdefault(name, broker)
    return found


REQUIRED = required_variables()


def test_the_passwords_are_required_variables():
    assert {"DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD",
            "FLOWER_PASSWORD"} <= set(REQUIRED), sorted(REQUIRED)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_compose_refuses_a_missing_or_empty_required_variable_naming_it(name, env_file, tmp_path):
    lines = env_file.read_text().splitlines()
    for variant, replacement in (("missing", None), ("empty", f"{name}=")):
        kept = [ln for ln in lines if not ln.startswith(f"{name}=")]
        broken = tmp_path / f"{variant}.env"
        broken.write_text("\n".join(kept + ([replacement] if replacement else [])) + "\n")
        result = run(*compose_cmd(broken, REQUIRED[name]), "config", "-q", env=clean_env())
        assert result.returncode != 0, f"compose accepted {variant} {name}"
        assert f"{name} is required" in result.stderr, result.stderr
