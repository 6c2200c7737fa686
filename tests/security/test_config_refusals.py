"""Bad configuration: every variable docs/configuration.md marks *required*, missing and then malformed in
turn, stops the real process entry (deploykit-web, deploykit-worker, deploykit-flower) in production mode
with a non-zero exit and a message naming the variable. Host-side and fast: the processes refuse
before they connect to anything (the URLs below point at closed ports)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seclib import REPO, free_port, port_open, wait_for

BIN = Path(sys.executable).parent  # the venv: deploykit installs its start scripts there


def required_in_contract() -> set[str]:
    """Names whose Default column in docs/configuration.md starts with 'required'."""
    names = set()
    for row in (REPO / "docs" / "configuration.md").read_text().splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].startswith("required"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]))
    return names


REQUIRED = required_in_contract()

# A complete production configuration that passes (checked by test_the_baseline_starts_checks_cleanly).
def baseline(tmp: Path) -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "app.example.com",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "redis://:s3cr3t-broker-pass@127.0.0.1:9/0",
        "FLOWER_USER": "ops",
        "FLOWER_PASSWORD": secrets.token_urlsafe(24),
        "DEPLOYKIT_STORAGE_BACKEND": "s3",
        "DEPLOYKIT_STORAGE_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "DEPLOYKIT_STORAGE_S3_BUCKET": "media",
        "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": "AKIDEXAMPLEKEY0001",
        "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "MEDIA_ROOT": str(tmp / "media"),
        "DEPLOYKIT_HEARTBEAT_FILE": str(tmp / "heartbeat"),
    }


# Which process entry reads each variable, and malformed values it must refuse (value, why).
ENTRY = {"FLOWER_USER": "deploykit-flower", "FLOWER_PASSWORD": "deploykit-flower"}
MALFORMED = {
    "DJANGO_SECRET_KEY": [("change-me", "placeholder"), ("tooshort" * 3, "too short")],
    "DJANGO_ALLOWED_HOSTS": [("*", "wildcard"), (" , ", "no host names")],
    "DATABASE_URL": [("mysql://u:p@db:3306/app", "unsupported scheme"), ("not a url", "no scheme")],
    "CELERY_BROKER_URL": [("http://broker:80/", "not a broker scheme")],
    "FLOWER_USER": [("ops:admin", "contains ':'")],
    "FLOWER_PASSWORD": [("changeme", "placeholder"), ("short", "too short")],
    "DEPLOYKIT_STORAGE_S3_BUCKET": [],  # any non-empty name is accepted locally; the store itself checks it
    "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": [],
    "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": [("changeme", "placeholder")],
}
# Accepted today although malformed: reported defects (strict xfail: fixing them turns these red).
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def start(entry: str, env: dict[str, str], timeout: float = 90) -> tuple[int, str]:
    """Run the entry until it exits (-> its code and output) or serves (-> the test fails at once)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "CELERY_", "FLOWER_", "STORAGE_", "EMAIL_", "DATABASE_", "GUNICORN_"))}
    base["PATH"] = f"{Path(sys.executable).parent}:{base.get('PATH', '/usr/bin:/bin')}"
    port = free_port()
    # Loopback only, should a bad value be accepted (the command line wins over gunicorn.conf.py).
    base["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port}"
    proc = subprocess.Popen([str(BIN / entry)], env={**base, **env}, cwd=REPO / "app", stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or port_open(port), timeout, f"{entry} to exit", interval=0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate(timeout=30)[0]
            pytest.fail(f"{entry} started instead of refusing:\n{output[-1500:]}")
    return proc.returncode, proc.communicate(timeout=30)[0]


def test_the_contract_lists_the_required_variables():
    assert {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL",
            "FLOWER_USER", "FLOWER_PASSWORD"} <= REQUIRED, REQUIRED
    assert REQUIRED <= set(MALFORMED), f"add malformed cases for {sorted(REQUIRED - set(MALFORMED))}"


def test_the_baseline_starts_checks_cleanly(tmp_path):
    """The baseline is valid, so each refusal below is caused by the one variable changed."""
    env = baseline(tmp_path)
    check = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                           cwd=REPO / "app", capture_output=True, text=True, timeout=120,
                           env={**os.environ, **env})
    assert check.returncode == 0, check.stdout + check.stderr
    flower = subprocess.run([sys.executable, "-c", "import sys; from deploykit.config.env import check_flower; "
                             "sys.exit(str(check_flower()) if check_flower() else 0)"],
                            cwd=REPO / "app", capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert flower.returncode == 0, flower.stderr


def cases():
    for name in sorted(REQUIRED):
        yield pytest.param(name, None, id=f"{name}-missing")
        yield pytest.param(name, "", id=f"{name}-empty")
        for value, why in MALFORMED.get(name, []):
            marks = ()
            if (name, value) in KNOWN_DEFECTS:
                marks = pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[(name, value)])
            yield pytest.param(name, value, id=f"{name}-{why.replace(' ', '-')}", marks=marks)


@pytest.mark.parametrize(("name", "value"), list(cases()))
def test_the_process_refuses_to_start_naming_the_variable(name, value, tmp_path):
    env = baseline(tmp_path)
    if value is None:
        del env[name]
    else:
        env[name] = value
    entry = ENTRY.get(name, "deploykit-web")
    code, output = start(entry, env)
    assert code != 0, f"{entry} accepted {name}={value!r}:\n{output[-2000:]}"
    assert name in output, f"{entry} refused without naming {name}:\n{output[-2000:]}"


@pytest.mark.parametrize("name", ["DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"])
def test_the_worker_refuses_too(name, tmp_path):
    env = baseline(tmp_path)
    del env[name]
    code, output = start("deploykit-worker", env)
    assert code != 0, output[-2000:]
    assert name in output, output[-2000:]
