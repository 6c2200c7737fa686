"""Development mode (`make dev`, compose/compose.dev.yaml) against the real stack.

A throw-away copy of examples/bookshop (build/dev-test/bookshop) is started in development mode through
`make dev-start` (what `make dev` runs after the image build) under the Compose project blueprint-dev-test
on 127.0.0.1:28443/28080, from a configuration file of its own (the bookshop's, with PROJECT_DIR naming
the copy). Then a view and a task of the copy are edited on the host and, by polling, the web answer
changes and the worker runs the new task code; every worker pool and beat is seen restarting. The stack
is always torn down with its volumes. The image is the bookshop's own (IMAGE_NAMESPACE=blueprint-bookshop,
shared with `make test-compose-project`), built offline unless BUILD_MODE says otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from polling import wait_until

ROOT = Path(__file__).resolve().parents[2]

PROJECT = "blueprint-dev-test"
HTTPS_PORT, HTTP_PORT = os.environ.get("DEV_TEST_HTTPS_PORT", "28443"), os.environ.get("DEV_TEST_HTTP_PORT", "28080")
WORK = ROOT / "build" / "dev-test"
COPY = WORK / "bookshop"
PROJECT_ENV = WORK / "compose.env"
ENV_FILE = ROOT / "build" / f"{PROJECT}.env"
IMAGES_ENV = ROOT / "build" / f"{PROJECT}-images.env"
CA_FILE = ROOT / "build" / f"{PROJECT}-ca.crt"
POOLS_FILE = WORK / "pools.yaml"  # `make dev-start` writes the bookshop's pools here, with compose.dev.yaml's x-pool
BASE = f"https://localhost:{HTTPS_PORT}"
# The services that run under the reloader in the bookshop's configuration: its two pools (WORKER_POOLS) and beat.
RELOADING = ("worker-main", "worker-emails", "beat")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, check=True, **kw)


def timed(what: str, started: float) -> None:
    print(f"==> {what} in {time.monotonic() - started:.1f} s", flush=True)


@pytest.fixture(scope="module")
def stack(request):
    env = {**os.environ, "BUILD_MODE": os.environ.get("BUILD_MODE", "offline"),
           "PROXY_BIND": "127.0.0.1", "PROXY_HOSTNAME": "localhost",
           "PROXY_HTTPS_PORT": HTTPS_PORT, "PROXY_HTTP_PORT": HTTP_PORT}
    started = time.monotonic()
    # Made by `make test-dev` (its prerequisite examples/bookshop/uv.lock, as for test-compose-project).
    assert (ROOT / "examples" / "bookshop" / "uv.lock").is_file(), "no examples/bookshop/uv.lock: run make test-dev"
    # The bookshop's image, under the name `make test-compose-project` gives it (its own images env file).
    run(["bash", "-c", "set -a && . examples/bookshop/deploy/compose.env && set +a && "
         f"IMAGE_NAMESPACE=blueprint-bookshop COMPOSE_IMAGES_ENV={IMAGES_ENV} ENV_FILE=/dev/null "
         "compose/scripts/build-images.sh"], env=env)
    timed("images", started)

    shutil.rmtree(WORK, ignore_errors=True)
    shutil.copytree(ROOT / "examples" / "bookshop", COPY,
                    ignore=shutil.ignore_patterns("__pycache__", ".venv", "uv.lock", "staticfiles"))
    config = (ROOT / "examples" / "bookshop" / "deploy" / "compose.env").read_text()
    config = re.sub(r"(?m)^PROJECT_DIR=.*$", f"PROJECT_DIR={COPY.relative_to(ROOT)}", config)
    PROJECT_ENV.write_text(config)
    ENV_FILE.unlink(missing_ok=True)
    run(["compose/scripts/gen-env.sh", str(ENV_FILE)], stdout=subprocess.DEVNULL)

    make = ["make", "dev-start", f"COMPOSE_PROJECT={PROJECT}", f"COMPOSE_ENV_FILE={ENV_FILE}",
            f"PROJECT_ENV={PROJECT_ENV.relative_to(ROOT)}", f"COMPOSE_IMAGES_ENV={IMAGES_ENV}",
            f"COMPOSE_DEV_POOLS={POOLS_FILE}"]
    compose = ["docker", "compose", "-p", PROJECT, "-f", "compose/compose.yaml", "-f", "compose/compose.dev.yaml",
               "-f", str(POOLS_FILE), "--env-file", str(ENV_FILE), "--env-file", str(PROJECT_ENV), "--env-file", str(IMAGES_ENV)]
    compose_env = {**env, "DEV_PROJECT_DIR": str(COPY)}
    subprocess.run([*compose, "down", "-v", "--remove-orphans", "--timeout", "5"], cwd=ROOT, env=compose_env,
                   capture_output=True)  # leftovers of an interrupted run
    passed = False
    try:
        up = time.monotonic()
        run(make, env=env)
        timed("development stack healthy", up)
        for _ in range(60):  # the proxy's local CA root: TLS is verified against it
            if subprocess.run([*compose, "cp", "proxy:/data/caddy/pki/authorities/local/root.crt", str(CA_FILE)],
                              cwd=ROOT, env=compose_env, capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        session = requests.Session()
        # As the smoke suite does: without trust_env off, REQUESTS_CA_BUNDLE would replace this CA.
        session.trust_env = False
        session.verify = str(CA_FILE)
        yield {"compose": compose, "env": compose_env, "http": session}
        passed = request.session.testsfailed == 0
    finally:
        if not passed:
            subprocess.run([*compose, "ps", "-a"], cwd=ROOT, env=compose_env)
            subprocess.run([*compose, "logs", "--no-color", "--tail=80"], cwd=ROOT, env=compose_env)
        down = time.monotonic()
        subprocess.run([*compose, "down", "-v", "--remove-orphans", "--timeout", "10"], cwd=ROOT, env=compose_env,
                       capture_output=True)
        timed(f"{PROJECT} torn down", down)
        timed(f"test-dev {'passed' if passed else 'FAILED'}", started)


def logs(stack, service: str) -> str:
    return subprocess.run([*stack["compose"], "logs", "--no-color", service], cwd=ROOT, env=stack["env"],
                          capture_output=True, text=True, check=True).stdout


def starts(stack, service: str) -> int:
    """How many times the reloader started the service's command (its log line per start)."""
    return logs(stack, service).count("restarted when a Python file changes")


def edit(stack, name: str, old: str, new: str) -> tuple[dict[str, int], float]:
    """Edit a module of the copy's shop app, as a developer saves it; the reloader's starts so far and when."""
    before = {s: starts(stack, s) for s in RELOADING}
    path = COPY / "bookshop" / "shop" / name
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new))
    return before, time.monotonic()


def test_runs_in_development_mode(stack):
    http = stack["http"]
    assert http.get(f"{BASE}/orders/", timeout=10).json()["orders"] == []
    # DEBUG on: Django's technical 404 page, which production never shows.
    missing = http.get(f"{BASE}/no-such-page/", timeout=10)
    assert missing.status_code == 404 and "Using the URLconf defined in" in missing.text
    assert all(starts(stack, s) == 1 for s in RELOADING), {s: starts(stack, s) for s in RELOADING}


def wait_restarted(stack, before: dict[str, int], started: float) -> None:
    wait_until(lambda: {s: starts(stack, s) for s in RELOADING}, 120, "every pool and beat restarted",
               done=lambda now: all(now[s] > before[s] for s in RELOADING))
    timed("every worker pool and beat restarted", started)


def test_view_change_reloads_web(stack):
    """Web answers with the new view; the pools and beat restart too (their reloader imports the URLconf)."""
    http, token = stack["http"], uuid.uuid4().hex[:8]
    before, started = edit(stack, "views.py", 'JsonResponse({"orders": rows})',
                           f'JsonResponse({{"orders": rows, "edition": "{token}"}})')

    def edition():
        return http.get(f"{BASE}/orders/", timeout=10).json().get("edition")

    wait_until(edition, 120, "the edited view's answer", done=lambda e: e == token,
               retry_on=(requests.RequestException, ValueError))
    timed("web answers with the edited view", started)
    wait_restarted(stack, before, started)


def test_task_change_reloads_workers_and_beat(stack):
    http, token = stack["http"], uuid.uuid4().hex[:8]
    before, started = edit(stack, "tasks.py", "Confirmation.objects.create(task_id=self.request.id,",
                           f'Confirmation.objects.create(task_id=f"{{self.request.id}}-{token}",')

    def confirmation_of_new_order():
        """An order placed now, and its confirmation's task id once the worker ran the task."""
        order = http.post(f"{BASE}/orders/", data=json.dumps({"title": "Dune", "email": "a@example.com"}),
                          timeout=10).json()["id"]

        def confirmed():
            rows = http.get(f"{BASE}/orders/", timeout=10).json()["orders"]
            return next((r["confirmations"] for r in rows if r["id"] == order and r["confirmations"]), None)

        return wait_until(confirmed, 60, f"the confirmation of order {order}",
                          retry_on=(requests.RequestException, ValueError))[0]

    # Orders placed before the restart are confirmed by the old code; the next ones by the new.
    wait_until(confirmation_of_new_order, 180, "a confirmation written by the edited task",
               done=lambda task_id: task_id.endswith(f"-{token}"), retry_on=(requests.RequestException,))
    timed("the worker runs the edited task", started)
    wait_restarted(stack, before, started)
