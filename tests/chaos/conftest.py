"""A throw-away Compose stack of our own (project sec-chaos-<broker>, loopback ports 28443/28080) for the fault
tests, built like compose/scripts/test-stack.sh does it, torn down with its volumes at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
from seclib import REPO, clean_env, compose_cmd, generate_env_file, run, wait_for  # noqa: E402

BROKER = os.environ.get("CHAOS_BROKER", "redis")  # redis | rabbitmq (compose/rabbitmq.yaml)
PROJECT = f"sec-chaos-{BROKER}"
HTTPS_PORT = int(os.environ.get("CHAOS_HTTPS_PORT", "28443"))
HTTP_PORT = int(os.environ.get("CHAOS_HTTP_PORT", "28080"))


class Stack:
    def __init__(self, env_file: Path, ca_file: Path):
        self.env_file = env_file
        self.base = f"https://localhost:{HTTPS_PORT}"
        self.http = requests.Session()
        # Verify against the stack's own CA; trust_env off, or REQUESTS_CA_BUNDLE/*_PROXY would take over.
        self.http.trust_env = False
        self.http.verify = str(ca_file)
        self.env = {**clean_env(), "PROXY_BIND": "127.0.0.1", "PROXY_HOSTNAME": "localhost",
                    "PROXY_HTTPS_PORT": str(HTTPS_PORT), "PROXY_HTTP_PORT": str(HTTP_PORT)}

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = run(*compose_cmd(self.env_file, BROKER, project=PROJECT), *args, env=self.env, timeout=timeout)
        if check:
            assert result.returncode == 0, f"compose {args}: {result.stderr[-2000:]}"
        return result

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self.base + path, timeout=kw.pop("timeout", 15), **kw)

    def submit(self, task: str, args: list | None = None) -> requests.Response:
        body = {"task": task} if args is None else {"task": task, "args": args}
        return self.http.post(self.base + "/api/tasks/", json=body, timeout=30)

    def state(self, task_id: str) -> str:
        response = self.get(f"/api/tasks/{task_id}/")
        return response.json().get("state", "?") if response.status_code == 200 else f"HTTP {response.status_code}"

    def wait_all(self, ids: list[str], timeout: float) -> dict[str, str]:
        """Poll until every task is SUCCESS or the timeout passes; returns the last state of each."""
        states = {i: "?" for i in ids}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [i for i, s in states.items() if s != "SUCCESS"]
            if not pending:
                break
            with ThreadPoolExecutor(4) as pool:
                for task_id, state in zip(pending, pool.map(self._safe_state, pending)):
                    states[task_id] = state
            time.sleep(1)
        return states

    def _safe_state(self, task_id: str) -> str:
        try:
            return self.state(task_id)
        except requests.RequestException as exc:
            return f"error {type(exc).__name__}"

    def container_pid(self, service: str) -> int:
        """Host PID of the service's main process (tini's child) in its first container."""
        cid = self.compose("ps", "-q", service).stdout.split()[0]
        tini = int(run("docker", "inspect", "-f", "{{.State.Pid}}", cid).stdout.strip())
        children = Path(f"/proc/{tini}/task/{tini}/children").read_text().split()
        return int(children[0]) if children else tini


def report(name: str, sent: int, completed: int, lost: int, **extra) -> None:
    more = " ".join(f"{k}={v}" for k, v in extra.items())
    print(f"\nCHAOS {name}: sent={sent} completed={completed} lost={lost} {more}".rstrip())


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    build = REPO / "build"
    build.mkdir(exist_ok=True)
    env_file = build / f"{PROJECT}.env"
    env_file.unlink(missing_ok=True)
    generate_env_file(env_file)
    ca_file = build / f"{PROJECT}-ca.crt"
    stack = Stack(env_file, ca_file)
    stack.compose("down", "-v", "--remove-orphans", check=False)
    try:
        stack.compose("up", "-d", "--wait", "--wait-timeout", "300", timeout=420)

        def copy_ca():
            return stack.compose("cp", "proxy:/data/caddy/pki/authorities/local/root.crt", str(ca_file),
                                 check=False).returncode == 0 and ca_file.stat().st_size > 0

        wait_for(copy_ca, 60, "the proxy's CA certificate", interval=0.5)
        wait_for(lambda: stack.get("/readyz").status_code == 200, 60, "/readyz through the proxy")
        yield stack
    except BaseException:
        print(stack.compose("logs", "--no-color", "--tail=80", check=False).stdout[-8000:])
        raise
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
