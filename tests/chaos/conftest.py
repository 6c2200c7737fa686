"""A throw-away Compose stack of our own (project sec-chaos-<broker>, loopback ports 28443/28080) for the fault
tests, built like compose/scripts/test-stack.sh does it, torn down with its volumes at the end.

`make chaos-ci` runs a subset on its own project and ports (CHAOS_PROJECT, CHAOS_HTTPS_PORT/CHAOS_HTTP_PORT),
so it never meets a `make chaos` running at the same time."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
from seclib import REPO, clean_env, compose_cmd, generate_env_file, run, wait_for  # noqa: E402

from internal import internal_get  # noqa: E402  (tests/lib, on the path by pytest.ini)
from load import task_state  # noqa: E402
from polling import wait_all_succeeded  # noqa: E402

BROKER = os.environ.get("CHAOS_BROKER", "redis")  # redis | rabbitmq (compose/rabbitmq.yaml)
PROJECT = os.environ.get("CHAOS_PROJECT", f"sec-chaos-{BROKER}")
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
                    "PROXY_HTTPS_PORT": str(HTTPS_PORT), "PROXY_HTTP_PORT": str(HTTP_PORT),
                    # Every request of these tests comes from this one host: the API's per-client limits
                    # (docs/configuration.md) would refuse the bursts they are about.
                    "DEPLOYKIT_API_THROTTLE_RATE": "off", "DEPLOYKIT_API_THROTTLE_UPLOAD_RATE": "off"}

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        result = run(*compose_cmd(self.env_file, BROKER, project=PROJECT), *args, env=self.env, timeout=timeout)
        if check:
            assert result.returncode == 0, f"compose {args}: {result.stderr[-2000:]}"
        return result

    def status(self) -> tuple[int, dict]:
        """/status, read inside the web container (the front door refuses it)."""
        code, body = internal_get([*compose_cmd(self.env_file, BROKER, project=PROJECT), "exec", "-T", "web"],
                                  "/status", env=self.env)
        return code, json.loads(body)

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self.base + path, timeout=kw.pop("timeout", 15), **kw)

    def submit(self, task: str, args: list | None = None) -> requests.Response:
        body = {"task": task} if args is None else {"task": task, "args": args}
        return self.http.post(self.base + "/api/tasks/", json=body, timeout=30)

    def state(self, task_id: str) -> str:
        return task_state(self.http, self.base, task_id)

    def wait_all(self, ids: list[str], timeout: float, stall: float | None = None) -> dict[str, str]:
        """Poll until every task is SUCCESS or the time is up; the last state of each (polling.py)."""
        return wait_all_succeeded(self.state, ids, timeout, stall)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def container_pid(self, service: str, cid: str | None = None) -> int:
        """Host PID of the service's main process (tini's child) in its (first) container."""
        cid = cid or self.containers(service)[0]
        tini = int(run("docker", "inspect", "-f", "{{.State.Pid}}", cid).stdout.strip())
        children = Path(f"/proc/{tini}/task/{tini}/children").read_text().split()
        return int(children[0]) if children else tini

    def inspect(self, cid: str) -> dict:
        return json.loads(run("docker", "inspect", cid).stdout)[0]

    def restarts(self, service: str) -> dict[str, tuple[int, bool]]:
        """Container id -> (restart count, OOM-killed) for each container of the service."""
        return {cid: (info["RestartCount"], info["State"]["OOMKilled"])
                for cid in self.containers(service) for info in [self.inspect(cid)]}

    def exec(self, service: str, *cmd: str, timeout: float = 120) -> str:
        return self.compose("exec", "-T", service, *cmd, timeout=timeout).stdout

    def psql(self, sql: str) -> str:
        return self.exec("postgres", "sh", "-c", f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -tAc "{sql}"').strip()

    def django(self, code: str, timeout: float = 120) -> str:
        """Run Python in a Django shell inside a worker container (tasks not exposed by the API)."""
        return self.exec("worker-default", "python", "manage.py", "shell", "-c", code, timeout=timeout).strip()

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, timeout=120).stdout

    def wait_healthy(self, service: str, timeout: float = 180) -> None:
        def healthy():
            states = self.compose("ps", "-a", "--format", "{{.Health}}", service).stdout.split()
            return states and all(state == "healthy" for state in states)

        wait_for(healthy, timeout, f"every {service} container healthy", interval=1)


MIXED = [("add", lambda: [random.randint(-1000, 1000), random.randint(-1000, 1000)]),
         ("multiply", lambda: [random.randint(-100, 100), random.randint(-100, 100)]),
         ("noop", lambda: [])]


class Load:
    """Background API traffic: `threads` loops submitting tasks from `mix` (name, args factory) until
    stop(). Accepted ids and refusals (by kind) are kept; no response may carry a traceback."""

    def __init__(self, stack: Stack, mix=MIXED, threads: int = 4, pause: float = 0.0):
        self.stack, self.mix, self.pause = stack, mix, pause
        self.accepted: list[str] = []
        self.refused: Counter = Counter()
        self.tracebacks: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def one(self) -> None:
        task, args = random.choice(self.mix)
        try:
            response = self.stack.submit(task, args())
        except Exception as exc:  # noqa: BLE001 - a refused request, counted by kind
            with self.lock:
                self.refused[type(exc).__name__] += 1
            return
        with self.lock:
            if response.status_code == 202:
                self.accepted.append(response.json()["id"])
            else:
                self.refused[f"HTTP {response.status_code}"] += 1
                if "Traceback" in response.text:
                    self.tracebacks.append(response.text[:2000])

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.one()
            time.sleep(self.pause)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


def send_burst(stack: Stack, count: int, during=None, after: int = 0) -> tuple[list[str], Counter, list[str]]:
    """Send `count` mixed tasks from 6 threads; start `during()` in a thread once `after` were accepted."""
    load = Load(stack)
    fired = threading.Event()

    def one(_):
        load.one()
        if during and len(load.accepted) >= after and not fired.is_set():
            fired.set()
            threading.Thread(target=during, daemon=True).start()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, range(count)))
    return load.accepted, load.refused, load.tracebacks


def outcome(stack: Stack, accepted: list[str], timeout: float,
            stall: float | None = None) -> tuple[int, list[str], dict[str, str]]:
    """Wait for the accepted tasks: (completed, lost ids, last states); `stall`: see Stack.wait_all."""
    states = stack.wait_all(accepted, timeout=timeout, stall=stall)
    lost = [i for i, s in states.items() if s != "SUCCESS"]
    return len(accepted) - len(lost), lost, states


def redeliveries(stack: Stack, service: str = "worker-default") -> int:
    """Task runs that were redeliveries (deploykit.celery logs each): the documented duplicates."""
    return stack.logs(service).count("redelivered (")


def upload(stack, picture: Image.Image, name: str) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    response = stack.http.post(stack.base + "/api/images/", files={"file": (name, buffer.getvalue(), "image/png")},
                               timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def image_status(stack, image_id: str, timeout: float = 180) -> dict:
    return wait_for(lambda: (body := stack.get(f"/api/images/{image_id}/").json())["status"] in ("done", "failed")
                    and body, timeout, f"image {image_id} processed", interval=1)


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
        # Not `up --wait`: on a loaded machine one timed-out health check is final for --wait.
        stack.compose("up", "-d", timeout=420)
        for service in ("web", "worker-default", "worker-io", "worker-images", "beat", "flower", "proxy"):
            stack.wait_healthy(service, timeout=300)

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


# --- runs of tasks with a side effect (jobs.tasks.side_effect: one jobs_execution row per run) ----------
def send_side_effects(stack: Stack, count: int, seconds: float = 0, task: str = "side_effect", **options) -> list[str]:
    """Enqueue `count` side-effect tasks from a Django shell in a worker container; their ids."""
    code = ("import json; from jobs import tasks; "
            f"print(json.dumps([tasks.{task}.apply_async(({seconds!r},), **{options!r}).id for _ in range({count})]))")
    return json.loads(stack.django(code).splitlines()[-1])


def runs(stack: Stack) -> dict[str, tuple[int, int, list[str]]]:
    """Task id -> (runs started, runs finished, hosts that started one), from the append-only table."""
    out = stack.psql("SELECT task_id, count(*), count(finished), string_agg(hostname, ',') FROM jobs_execution GROUP BY task_id")
    return {task_id: (int(started), int(finished), hosts.split(","))
            for task_id, started, finished, hosts in (line.split("|") for line in out.splitlines() if line)}


def count_runs(stack: Stack, sent: list[str], timeout: float) -> dict[str, int]:
    """Wait until every sent task finished a run (or the timeout); sent / done / lost / duplicated, where
    duplicated counts every run beyond the first (a killed run included)."""
    def all_done():
        seen = runs(stack)
        return all(seen.get(i, (0, 0))[1] for i in sent) and seen

    try:
        seen = wait_for(all_done, timeout, f"{len(sent)} side-effect tasks to finish", interval=1)
    except TimeoutError:
        seen = runs(stack)
    done = sum(1 for i in sent if seen.get(i, (0, 0))[1])
    return {"sent": len(sent), "done": done, "lost": len(sent) - done,
            "duplicated": sum(max(0, seen[i][0] - 1) for i in sent if i in seen)}


def report_runs(name: str, counts: dict[str, int], **extra) -> None:
    more = " ".join(f"{k}={v}" for k, v in {**counts, **extra}.items())
    print(f"\nCHAOS {name}: {more}")


def env_value(stack: Stack, name: str) -> str:
    """A variable's current value in the stack's env file (a rotation changes it: test_rotation.py)."""
    values = [line.split("=", 1)[1] for line in stack.env_file.read_text().splitlines() if line.startswith(f"{name}=")]
    return values[-1] if values else ""


def redis_cli(stack: Stack, *args: str) -> str:
    # The env file's password, not the redis container's secret: that one is the first password only.
    return stack.compose("exec", "-T", "-e", f"REDISCLI_AUTH={env_value(stack, 'REDIS_PASSWORD')}", "redis",
                         "redis-cli", "--no-auth-warning", "--raw", *args, timeout=120).stdout.strip()
