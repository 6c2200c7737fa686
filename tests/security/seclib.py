"""Shared by tests/security (and tests/fuzz, tests/chaos): the repository, the Compose command line with
a throw-away env file from compose/scripts/gen-env.sh (fresh random secrets), and the built image names."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The app suite's helpers for real services and processes (one copy: tests/app/app_services.py).
sys.path.insert(0, str(REPO / "tests" / "app"))
from app_services import AppProcess, Redis, app_env, free_port, port_open, wait_for  # noqa: E402,F401
# Each variant checked: the two brokers, and the observability profile on each (docs/observability.md).
COMPOSE_FILES = {"redis": ["compose/compose.yaml"], "rabbitmq": ["compose/compose.yaml", "compose/rabbitmq.yaml"],
                 "redis-observability": ["compose/compose.yaml", "compose/observability.yaml"],
                 "rabbitmq-observability": ["compose/compose.yaml", "compose/rabbitmq.yaml", "compose/observability.yaml",
                                            "compose/observability.rabbitmq.yaml"]}
# Services that run the app image (web, the reference's Celery pools of .env.example, beat, Flower, migrations).
APP_SERVICES = ("web", "worker-default", "worker-io", "worker-images", "beat", "flower", "migrate")
# Environment variable names whose values are secrets (docs/configuration.md, .env.example).
SECRET_NAMES = ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD", "FLOWER_PASSWORD",
                "DJANGO_SUPERUSER_PASSWORD", "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY", "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID",
                "DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_URL", "AWS_SECRET_ACCESS_KEY", "BACKUP_PASSPHRASE",
                "BACKUP_S3_SECRET_ACCESS_KEY")


def run(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


def clean_env() -> dict[str, str]:
    """The caller's environment without anything Compose would interpolate into the stack."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "POSTGRES_", "REDIS_", "RABBITMQ_", "FLOWER_", "STORAGE_", "CELERY_",
                                 "COMPOSE_", "PROXY_", "WORKER_", "APP_IMAGE"))}


def generate_env_file(path: Path) -> Path:
    result = run("compose/scripts/gen-env.sh", str(path))
    assert result.returncode == 0, result.stderr
    return path


def images_env() -> dict[str, str]:
    """Image names chosen by the last `make images` (build/compose-images.env), or {}."""
    path = REPO / "build" / "compose-images.env"
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


@functools.cache
def pools_file(env_file: Path, broker: str, project: str) -> str:
    """The worker pools env_file declares, with the broker variant's changes (as `make up` writes them)."""
    out = f"build/{project}-{broker}-pools.yaml"
    variants = [a for f in COMPOSE_FILES[broker][1:] for a in ("-f", f)]
    result = run(sys.executable, "compose/scripts/gen-pools.py", "--env-file", str(env_file), *variants, "-o", out)
    assert result.returncode == 0, result.stderr
    return out


def compose_cmd(env_file: Path, broker: str = "redis", project: str = "sec-policy") -> list[str]:
    cmd = ["docker", "compose", "-p", project]
    for f in COMPOSE_FILES[broker]:
        cmd += ["-f", f]
    cmd += ["-f", pools_file(env_file, broker, project)]
    cmd += ["--env-file", str(env_file)]
    images = REPO / "build" / "compose-images.env"
    if images.exists():
        cmd += ["--env-file", str(images)]
    return cmd


def compose_model(env_file: Path, broker: str = "redis") -> dict:
    result = run(*compose_cmd(env_file, broker), "config", "--format", "json", env=clean_env())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
