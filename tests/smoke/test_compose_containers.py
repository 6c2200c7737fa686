"""Compose-only checks of the running containers: testinfra (docker backend) inside, `docker inspect` outside."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import testinfra

pytestmark = pytest.mark.compose

# What must be PID 1 or PID 1's direct child (tini -> exec'd start script) in each service.
EXPECTED_PROCESS = {
    "proxy": "caddy run",
    "web": "gunicorn",
    "beat": "run_beat",
    "flower": "flower",
    "postgres": "postgres",
    "redis": "redis-server",
    "rabbitmq": "beam.smp",
    "s3": "versitygw",
    # The local backup store (compose/backup-store.yaml) of the test stack.
    "backup-store": "versitygw",
    # The observability profile (compose/observability.yaml).
    "prometheus": "prometheus --config.file",
    "alertmanager": "prometheus-alertmanager",
    "redis-exporter": "prometheus-redis-exporter",
    "postgres-exporter": "prometheus-postgres-exporter",
}
# Ports each service must listen on inside the Compose network.
EXPECTED_PORTS = {"proxy": {8080, 8443}, "web": {8000}, "flower": {5555}, "postgres": {5432}, "redis": {6379},
                  "rabbitmq": {5672}, "s3": {9000}, "backup-store": {9000}, "prometheus": {9090}, "alertmanager": {9093},
                  "redis-exporter": {9121}, "postgres-exporter": {9187}}
# Published on loopback besides the proxy: the observability profile's UIs (no authentication, so never wider).
LOOPBACK_UIS = {"prometheus": {"9090/tcp"}, "alertmanager": {"9093/tcp"}}
# The worker pools the stack runs (SMOKE_POOLS: the services whose replicas are not 0; default: the reference's).
POOLS = set(os.environ.get("SMOKE_POOLS", "worker-default,worker-io,worker-images").split(","))
APP_SERVICES = {"web", "beat", "flower"} | POOLS
# S3 mode (compose.s3.yaml): no shared volume at all -- every file goes through the object store.
S3_MODE = os.environ.get("SMOKE_STORAGE") == "s3"
MEDIA_SERVICES = set() if S3_MODE else {"web"} | POOLS


@pytest.fixture(scope="module")
def containers(compose_cmd) -> dict[str, dict]:
    """name -> `docker inspect` of every running container of the stack (service in the labels)."""
    ids = subprocess.run([*compose_cmd, "ps", "-q"], check=True, capture_output=True, text=True).stdout.split()
    inspected = json.loads(subprocess.run(["docker", "inspect", *ids], check=True, capture_output=True,
                                          text=True).stdout)
    return {c["Name"].lstrip("/"): c for c in inspected}


def worker_process(container: dict) -> str:
    """What a worker pool's main process must show: the queues and pool type its configuration gave it."""
    env = env_of(container)
    return f"--queues {env['CELERY_WORKER_QUEUES']} --pool {env.get('CELERY_WORKER_POOL', 'prefork')}"


def service(container: dict) -> str:
    return container["Config"]["Labels"]["com.docker.compose.service"]


def env_of(container: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container["Config"]["Env"])


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    path = os.environ.get("SMOKE_ENV_FILE")
    if not path:
        pytest.skip("SMOKE_ENV_FILE not set")
    values = {}
    for line in open(path, encoding="utf-8"):
        name, _, value = line.strip().partition("=")
        if name.endswith(("PASSWORD", "SECRET_KEY", "SECRET_ACCESS_KEY", "PASSPHRASE")) and value:
            values[name] = value
    return values


def proc_tree(host) -> list[tuple[int, int, int, str]]:
    """(pid, ppid, uid, cmdline) of every process, read from /proc (no ps in slim images)."""
    script = ('for p in /proc/[0-9]*; do [ -r "$p/status" ] || continue; '
              'printf "%s %s %s " "${p#/proc/}" "$(awk \'/^PPid/{print $2}\' $p/status)" '
              '"$(awk \'/^Uid/{print $2}\' $p/status)"; tr "\\0" " " <"$p/cmdline"; echo; done')
    rows = []
    for line in host.check_output("sh -c %s", script).splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[1] and parts[2]:
            rows.append((int(parts[0]), int(parts[1]), int(parts[2]), parts[3]))
    return rows


def listening_ports(host) -> set[int]:
    ports = set()
    tables = host.check_output("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null || true")  # one exec
    for line in tables.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # st == LISTEN (header lines have "st" there)
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_every_service_runs_and_is_healthy(containers):
    services = {service(c) for c in containers.values()}
    expected = {"proxy", "web", "beat", "flower", "postgres"} | POOLS
    assert expected <= services, services
    assert ("redis" in services) != ("rabbitmq" in services), "exactly one broker"
    for name, c in containers.items():
        assert c["State"]["Health"]["Status"] == "healthy", (name, c["State"]["Health"]["Log"][-1:])
    assert sum(1 for c in containers.values() if service(c) == "beat") == 1, "beat must run exactly once"


def test_processes_run_as_non_root_with_the_service_at_pid1_or_its_child(containers):
    for name, c in containers.items():
        host = testinfra.get_host(f"docker://{name}")
        tree = proc_tree(host)
        pid1 = [row for row in tree if row[0] == 1]
        assert pid1, name
        assert pid1[0][2] != 0, f"{name}: PID 1 runs as root: {pid1[0][3]}"
        roots = [row for row in tree if row[2] == 0 and row[1] != 0]  # root processes (docker exec ones have ppid 0)
        assert not roots, f"{name}: root processes {roots}"
        expected = EXPECTED_PROCESS.get(service(c)) or worker_process(c)
        top = [row[3] for row in tree if row[0] == 1 or row[1] == 1]
        assert any(expected in cmd for cmd in top), f"{name}: {expected!r} is not PID 1 or its child: {top}"


def test_ports_listen_inside_the_network_and_only_the_proxy_and_uis_are_published_on_loopback(containers):
    for name, c in containers.items():
        svc = service(c)
        host = testinfra.get_host(f"docker://{name}")
        assert EXPECTED_PORTS.get(svc, set()) <= listening_ports(host), name
        published = {port: bindings for port, bindings in (c["NetworkSettings"]["Ports"] or {}).items() if bindings}
        if svc == "proxy":
            assert set(published) == {"8080/tcp", "8443/tcp"}, published
            assert all(b["HostIp"] == "127.0.0.1" for bindings in published.values() for b in bindings), published
        elif svc in LOOPBACK_UIS:
            assert set(published) == LOOPBACK_UIS[svc], published
            assert all(b["HostIp"] == "127.0.0.1" for bindings in published.values() for b in bindings), published
        else:
            assert not published, f"{name} publishes {published}"


def test_no_secret_in_the_environment_of_services_that_do_not_need_it(containers, secrets):
    # Which services may hold which secret (in its own variable or inside a URL such as DATABASE_URL).
    allowed = {
        "DJANGO_SECRET_KEY": APP_SERVICES | {"migrate"},
        "POSTGRES_PASSWORD": APP_SERVICES | {"migrate", "postgres", "postgres-exporter"},
        "REDIS_PASSWORD": APP_SERVICES | {"migrate", "redis", "redis-exporter"},
        "RABBITMQ_PASSWORD": APP_SERVICES | {"migrate", "rabbitmq"},
        "FLOWER_PASSWORD": {"flower"},
        "DJANGO_SUPERUSER_PASSWORD": {"migrate"},
        # Only the processes that touch files (and the store itself); not beat, not Flower.
        "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": {"web", "migrate", "s3-bucket", "s3"} | POOLS,
        # Backups (docs/backup.md): the one-shot backup program and the local store; no app process.
        "BACKUP_PASSPHRASE": {"backup"},
        "BACKUP_S3_SECRET_ACCESS_KEY": {"backup", "backup-store"},
    }
    for name, c in containers.items():
        svc = service(c)
        env_text = "\n".join(c["Config"]["Env"]) + "\n" + " ".join(c["Config"]["Cmd"] or [])
        for secret, value in secrets.items():
            if svc not in allowed.get(secret, set()):
                assert value not in env_text, f"{name} ({svc}) carries {secret}"


def test_app_containers_are_hardened_and_share_the_media_volume(containers):
    media = set()
    for name, c in containers.items():
        svc = service(c)
        assert c["HostConfig"]["Memory"] > 0, f"{name} has no memory limit"
        assert c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", name
        if svc in APP_SERVICES:
            assert c["HostConfig"]["ReadonlyRootfs"], f"{name}: root filesystem is writable"
            assert env_of(c).get("DJANGO_DEBUG", "false") == "false"
        mounts = [m for m in c["Mounts"] if m["Destination"] == "/var/lib/app/media"]
        if svc in MEDIA_SERVICES:
            assert mounts, f"{name} lacks the media volume"
            media.add(mounts[0]["Name"])
        elif S3_MODE:
            assert not mounts, f"{name} mounts a media volume in S3 mode"
        if svc in POOLS:
            assert c["Config"].get("StopTimeout", 0) >= 300, f"{name}: grace period too short for a warm shutdown"
    assert len(media) == (0 if S3_MODE else 1), f"web and workers must share one media volume, got {media}"


def test_app_image_is_labelled_non_root_with_a_healthcheck(containers):
    web = next(c for c in containers.values() if service(c) == "web")
    image = json.loads(subprocess.run(["docker", "image", "inspect", web["Image"]], check=True,
                                      capture_output=True, text=True).stdout)[0]
    labels = image["Config"]["Labels"]
    assert labels.get("org.opencontainers.image.version"), labels
    assert len(labels.get("org.opencontainers.image.revision", "")) == 40, labels
    assert image["Config"]["User"] not in ("", "0", "root")
    assert image["Config"]["Healthcheck"]["Test"], "the image has a HEALTHCHECK"
    assert image["Config"]["Entrypoint"][0] == "tini"
