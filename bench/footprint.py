"""Footprint of the Compose stack (issue #7): image sizes, code-only rebuild time, `up` to all healthy,
idle memory per Celery worker process and per gunicorn worker. Prints figures and writes flat JSON;
never asserts on a number.

    python bench/footprint.py [--out build/bench/footprint.json] [--quick] [--reps N]

Everything runs on a scratch clone of this repository's HEAD (uncommitted changes are not measured):
`make images` there with IMAGE_NAMESPACE=blueprint-fp (the user's image tags are never touched), a
one-line change to app code and `make images` again (the command users run, timed), then a stack of
its own (project blueprint-fp, host ports 48443/48080) brought up from fresh volumes and timed until
every service is healthy, idle memory read from /proc inside the containers, and `down -v`. The scratch
clone and the blueprint-fp tags are removed at the end. Median of --reps repetitions (1 with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "blueprint-fp"
PROJECT = "blueprint-fp"
PORTS = {"PROXY_HTTPS_PORT": "48443", "PROXY_HTTP_PORT": "48080"}  # this benchmark's range: 48000-48999
# Images of the stack, by key in the JSON: the variable naming each in build/compose-images.env.
IMAGE_VARS = {"app": "APP_IMAGE", "proxy": "PROXY_IMAGE", "postgres": "POSTGRES_IMAGE",
              "redis": "REDIS_IMAGE", "rabbitmq": "RABBITMQ_IMAGE"}
# The file a "one-line app change" edits: imported by every app process, so nothing can cache it away.
CHANGED_FILE = "app/config/urls.py"
# Seconds of quiet after all services are healthy before idle memory is read (beat's first tick,
# gunicorn workers finishing their imports), then a few samples whose median is kept.
IDLE_SETTLE_S = 10
IDLE_SAMPLES = 3

# Runs inside an app container (its own Python): every process with RSS and PSS in kB, as JSON.
PROC_SCRIPT = r"""
import json, os
out = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        status = dict(l.split(':', 1) for l in open(f'/proc/{pid}/status') if ':' in l)
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\0', b' ').decode().strip()
        pss = None
        try:
            pss = int(next(l.split()[1] for l in open(f'/proc/{pid}/smaps_rollup') if l.startswith('Pss:')))
        except (OSError, StopIteration):
            pass
        out.append({'pid': int(pid), 'ppid': int(status['PPid']), 'cmd': cmd,
                    'rss_kb': int(status.get('VmRSS', '0 kB').split()[0]), 'pss_kb': pss})
    except (OSError, KeyError, ValueError):
        pass
print(json.dumps(out))
"""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(*cmd: str, cwd: Path | None = None, env: dict | None = None, check: bool = True,
        timeout: float = 1800) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise SystemExit(f"ERROR: `{' '.join(cmd)}` failed (exit {result.returncode}):\n{tail}")
    return result


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def make_images(scratch: Path, env: dict) -> float:
    began = time.monotonic()
    run("make", "images", cwd=scratch, env=env)
    return time.monotonic() - began


def image_sizes(scratch: Path) -> dict[str, float]:
    images = read_env_file(scratch / "build/compose-images.env")
    sizes = {}
    for key, var in IMAGE_VARS.items():
        name = images.get(var)
        if not name:
            continue
        size = run("docker", "image", "inspect", "-f", "{{.Size}}", name, check=False).stdout.strip()
        if size.isdigit():
            sizes[key] = round(int(size) / 1e6, 1)  # MB as `docker images` counts them (10^6 bytes)
    return sizes


def rebuild_times(scratch: Path, env: dict, reps: int) -> list[float]:
    """`make images` after appending one distinct comment line to app code (a new layer each time)."""
    target = scratch / CHANGED_FILE
    times = []
    for rep in range(reps):
        with target.open("a") as handle:
            handle.write(f"# footprint benchmark: one-line change {rep} at {time.time_ns()}\n")
        seconds = make_images(scratch, env)
        times.append(seconds)
        say(f"rebuild {rep + 1}/{reps}: make images after a one-line change in {CHANGED_FILE}: {seconds:.1f} s")
    return times


class Stack:
    def __init__(self, scratch: Path, env: dict):
        self.scratch, self.env = scratch, env
        self.env_file = scratch / f"build/{PROJECT}.env"
        run("compose/scripts/gen-env.sh", str(self.env_file), cwd=scratch, env=env)
        # The worker pools of the env file, as `make up` writes them (docs/compose.md#worker-pools).
        pools = scratch / f"build/{PROJECT}-pools.yaml"
        run(sys.executable, "compose/scripts/gen-pools.py", "--env-file", str(self.env_file), "-o", str(pools),
            cwd=scratch, env=env)
        self.compose = ["docker", "compose", "-p", PROJECT, "-f", "compose/compose.yaml", "-f", str(pools),
                        "--env-file", str(self.env_file), "--env-file", "build/compose-images.env"]

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return run(*self.compose, *args, cwd=self.scratch, env=self.env, check=check, timeout=timeout)

    def down(self) -> None:
        self("down", "-v", "--remove-orphans", "--timeout", "20", check=False)

    def containers(self) -> dict[str, str]:
        """service name -> container id (one per service here: no scaling)."""
        lines = self("ps", "-a", "--format", "{{.Service}} {{.ID}}").stdout.split("\n")
        return dict(line.split() for line in lines if line.strip())

    def up_to_healthy(self) -> tuple[float, dict[str, float]]:
        """Fresh volumes, `up -d --wait` timed; per service, seconds until its first healthy status
        (or its exit, for the one-shot migrate), from Docker's event stream recorded during the `up`."""
        self.down()
        events = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter", f"label=com.docker.compose.project={PROJECT}",
             "--filter", "event=health_status", "--filter", "event=die"],
            stdout=subprocess.PIPE, text=True)
        try:
            began_wall, began = time.time(), time.monotonic()
            self("up", "-d", "--wait", "--wait-timeout", "300", timeout=420)
            total = time.monotonic() - began
        finally:
            time.sleep(1)  # let the daemon flush the last events before the stream is cut
            events.terminate()
            lines = events.communicate(timeout=30)[0].splitlines()
        per_service: dict[str, float] = {}
        for line in lines:
            event = json.loads(line)
            attributes = event.get("Actor", {}).get("Attributes", {})
            service = attributes.get("com.docker.compose.service")
            status = event.get("status") or event.get("Action", "")
            if service and service not in per_service and status in ("health_status: healthy", "die"):
                per_service[service] = round(event["timeNano"] / 1e9 - began_wall, 1)
        return total, per_service

    def processes(self, service: str) -> list[dict]:
        cid = self.containers()[service]
        return json.loads(run("docker", "exec", cid, "python", "-c", PROC_SCRIPT).stdout)


def children_of_root(procs: list[dict], marker: str) -> tuple[list[dict], list[dict]]:
    """(main processes, their children) for the process tree whose command line contains marker."""
    mains = [p for p in procs if marker in p["cmd"] and p["ppid"] == 1]
    main_pids = {p["pid"] for p in mains}
    return mains, [p for p in procs if p["ppid"] in main_pids]


def idle_memory(stack: Stack) -> dict[str, dict[str, float]]:
    """Median over samples of: Celery pool processes, Celery main processes, gunicorn workers."""
    samples: dict[str, list[float]] = {}
    for sample in range(IDLE_SAMPLES):
        if sample:
            time.sleep(1)
        for service, marker, main_key, child_key in (("worker-default", "celery", "worker_main", "worker_process"),
                                                     ("worker-images", "celery", "worker_main", "worker_process"),
                                                     # the io pool: one process, its tasks on threads
                                                     ("worker-io", "celery", "io_worker", "io_worker_child"),
                                                     ("web", "gunicorn", "web_master", "web_worker")):
            mains, children = children_of_root(stack.processes(service), marker)
            for key, group in ((main_key, mains), (child_key, children)):
                for proc in group:
                    samples.setdefault(f"rss:{key}", []).append(proc["rss_kb"] / 1024)
                    if proc["pss_kb"] is not None:
                        samples.setdefault(f"pss:{key}", []).append(proc["pss_kb"] / 1024)
    result: dict[str, dict[str, float]] = {"rss": {}, "pss": {}}
    for name, values in samples.items():
        kind, key = name.split(":")
        result[kind][key] = round(statistics.median(values), 1)
    return result


def scratch_clone(workdir: Path) -> Path:
    scratch = workdir / "repo"
    run("git", "clone", "-q", "--shared", str(REPO), str(scratch))
    wheelhouse = REPO / "build/wheelhouse"
    if wheelhouse.is_dir():  # offline builds: reuse the downloaded wheels (and their lock stamp)
        shutil.copytree(wheelhouse, scratch / "build/wheelhouse")
    return scratch


def remove_own_tags() -> None:
    names = run("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                "--filter", f"reference={NAMESPACE}/*").stdout.split()
    if names:
        run("docker", "image", "rm", *names, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "build/bench/footprint.json", help="JSON output path")
    parser.add_argument("--quick", action="store_true", help="a single repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions for the median (default 3)")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    reps = 1 if args.quick else args.reps
    if shutil.which("docker") is None or run("docker", "info", check=False).returncode != 0:
        raise SystemExit("ERROR: Docker is not running (make docker starts it)")
    if run("git", "status", "--porcelain", "--untracked-files=no", cwd=REPO).stdout.strip():
        say("note: the working tree has uncommitted changes; HEAD is what gets measured")

    env = {**os.environ, "IMAGE_NAMESPACE": NAMESPACE, "PROXY_BIND": "127.0.0.1", **PORTS}
    workdir = Path(tempfile.mkdtemp(prefix="footprint-"))
    stack = None
    try:
        scratch = scratch_clone(workdir)
        say(f"warm-up: make images in a scratch clone of HEAD (IMAGE_NAMESPACE={NAMESPACE})")
        warm = make_images(scratch, env)
        say(f"warm-up make images: {warm:.1f} s")
        rebuilds = rebuild_times(scratch, env, reps)
        sizes = image_sizes(scratch)
        stack = Stack(scratch, env)
        ups, per_service_runs = [], []
        for rep in range(reps):
            total, per_service = stack.up_to_healthy()
            ups.append(total)
            per_service_runs.append(per_service)
            slowest = max(per_service, key=per_service.get) if per_service else "?"
            say(f"up {rep + 1}/{reps}: all healthy in {total:.1f} s (last: {slowest}); {per_service}")
        time.sleep(IDLE_SETTLE_S)  # idle means idle: no readiness signal marks "nothing left to do"
        memory = idle_memory(stack)
    finally:
        if stack is not None:
            stack.down()
        remove_own_tags()
        shutil.rmtree(workdir, ignore_errors=True)

    services = sorted({s for run_ in per_service_runs for s in run_})
    result = {
        "image_mb": sizes,
        "rebuild_s": round(statistics.median(rebuilds), 1),
        "up_to_healthy_s": round(statistics.median(ups), 1),
        "idle_rss_mb": {"worker_process": memory["rss"].get("worker_process"),
                        "web_worker": memory["rss"].get("web_worker"),
                        "worker_main": memory["rss"].get("worker_main"),
                        "web_master": memory["rss"].get("web_master")},
        "idle_pss_mb": memory["pss"],
        "up_to_healthy_by_service_s": {s: round(statistics.median(r[s] for r in per_service_runs if s in r), 1)
                                       for s in services},
        "rebuild_runs_s": [round(t, 1) for t in rebuilds],
        "up_to_healthy_runs_s": [round(t, 1) for t in ups],
        "runs": reps,
        "nproc": os.cpu_count(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
