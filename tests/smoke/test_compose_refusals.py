"""Compose-only: the Compose files are valid, and a stack with a missing or default secret does not
start, saying which variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.compose
REPO = Path(__file__).resolve().parents[2]


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=120, **kwargs)


def images_env() -> dict[str, str]:
    path = REPO / "build" / "compose-images.env"
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


def test_compose_refuses_a_missing_password_naming_it(tmp_path):
    env_file = tmp_path / "missing.env"
    env_file.write_text("DJANGO_SECRET_KEY=" + "k" * 60 + "\nREDIS_PASSWORD=r4nd0mr4nd0mr4nd0m\n"
                        "FLOWER_USER=ops\nFLOWER_PASSWORD=f1owerf1owerf1ower\n")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "REDIS_", "DJANGO_", "FLOWER_"))}
    result = run("docker", "compose", "-f", "compose/compose.yaml", "--env-file", str(env_file), "config", "-q",
                 env=clean_env)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD is required" in result.stderr, result.stderr


def test_env_generation_refuses_a_default_password_naming_it(tmp_path):
    env_file = tmp_path / "generated.env"
    assert run("compose/scripts/gen-env.sh", str(env_file)).returncode == 0  # fresh random secrets pass
    text = env_file.read_text()
    env_file.write_text(text.replace("REDIS_PASSWORD=", "REDIS_PASSWORD=changeme\n#", 1))
    result = run("compose/scripts/gen-env.sh", str(env_file))
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr, result.stderr


def test_app_image_refuses_a_placeholder_secret_naming_it():
    image = images_env()["APP_IMAGE"]
    result = run("docker", "run", "--rm", "-e", "DJANGO_SECRET_KEY=change-me", "-e", "DJANGO_ALLOWED_HOSTS=localhost",
                 "-e", "DATABASE_URL=postgres://app:x@127.0.0.1:1/app", "-e", "CELERY_BROKER_URL=redis://127.0.0.1:1/0",
                 image, "python", "manage.py", "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stdout + result.stderr, result.stderr[-2000:]


def test_compose_files_follow_the_compose_spec():
    # The RabbitMQ override uses Compose's `!override` tag, so it is checked merged, by Compose itself.
    result = run(str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                 "compose/compose.yaml", "compose/proxy-certs.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_env_file_is_generated_over_a_projects_existing_data(tmp_path):
    """A deleted .env (or a second checkout) must not start fresh passwords on the old stack's volumes."""
    project = f"refusal-{os.getpid()}"
    env_file = tmp_path / "new.env"
    volume = f"{project}_pgdata"
    assert run("docker", "volume", "create", "--label", f"com.docker.compose.project={project}", volume).returncode == 0
    try:
        result = run("compose/scripts/gen-env.sh", str(env_file), project)
        assert result.returncode != 0 and not env_file.exists()
        assert volume in result.stderr and "make down V=1" in result.stderr, result.stderr
    finally:
        run("docker", "volume", "rm", volume)
    assert run("compose/scripts/gen-env.sh", str(env_file), project).returncode == 0  # no data: generated
    assert env_file.exists()


def test_a_failed_start_prints_the_failing_services_last_log_lines(tmp_path):
    """What `make up` prints when a service fails: its state, exit code and last log lines, and the way out
    when the database refuses the env file's password."""
    project = f"failing-{os.getpid()}"
    image = images_env()["APP_IMAGE"]
    (tmp_path / "compose.yaml").write_text(f"""
services:
  migrate:
    image: {image}
    command: ["sh", "-c", "echo 'FATAL:  password authentication failed for user \\"app\\"'; exit 1"]
  ok:
    image: {image}
    command: ["sh", "-c", "echo fine"]
""")
    compose = ["docker", "compose", "-p", project, "-f", str(tmp_path / "compose.yaml")]
    try:
        assert run(*compose, "up", "--wait", "--wait-timeout", "60").returncode != 0
        result = run("compose/scripts/show-failed.sh", *compose)
        assert "migrate: exited, exit 1" in result.stderr, result.stderr
        assert 'password authentication failed for user "app"' in result.stderr
        assert "make down V=1" in result.stderr
        assert "==> ok:" not in result.stderr  # a service that completed is not reported
    finally:
        run(*compose, "down", "-v", "--timeout", "1")
