"""HTTP benchmark: wrk through the proxy (TLS, keep-alive) against /healthz and a database-backed API
read, for the shipped gunicorn config and the two sync-worker baselines."""
import json
import os
import re
import subprocess
import ssl
import time
import urllib.request

from stack import Stack
from tasks_bench import median_of

CORES = os.cpu_count() or 1
# name -> (variables for the web service, what it is)
WEB_CONFIGS = {
    "shipped": ({}, "shipped: gthread, GUNICORN_WORKERS=2 x GUNICORN_THREADS=4"),
    "sync_1": ({"GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "1", "BENCH_GUNICORN_CMD_ARGS": "--worker-class sync"},
               "peer default: gunicorn with 1 sync worker"),
    "sync_2n1": ({"GUNICORN_WORKERS": str(2 * CORES + 1), "GUNICORN_THREADS": "1",
                  "BENCH_GUNICORN_CMD_ARGS": "--worker-class sync"},
                 f"strong baseline: {2 * CORES + 1} sync workers (2 x cores + 1)"),
}
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def wrk(url: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    figures = {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for q, value in re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M):
        figures[f"p{q}_ms"] = round(_ms(value), 3)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    # Failed responses or broken connections mean the thing measured broke: say how, publish nothing.
    # Requests slower than the 10 s timeout are counted instead (an overloaded machine, not a failure).
    if "Non-2xx or 3xx responses" in out or (socket and any(int(n) for n in socket.groups()[:3])):
        raise RuntimeError(f"wrk against {url} saw errors:\n{out}")
    figures["timeouts"] = int(socket.group(4)) if socket else 0
    return figures


def proxy_ca(stack: Stack) -> str:
    """The proxy's local CA root (it appears shortly after the proxy starts), to verify TLS against."""
    path = stack.env_file.with_suffix(".ca.crt")
    for _ in range(60):
        if stack.compose("cp", "proxy:/data/caddy/pki/authorities/local/root.crt", str(path),
                         check=False, capture=True).returncode == 0:
            return str(path)
        time.sleep(0.5)
    raise RuntimeError("the proxy's CA certificate did not appear")


def db_backed_url(stack: Stack, base: str) -> str:
    """Create one report (a database row) through the API; its detail endpoint is a DB read."""
    ctx = ssl.create_default_context(cafile=proxy_ca(stack))
    req = urllib.request.Request(f"{base}/api/reports/", data=json.dumps({"kind": "tasks"}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=30) as response:
        return base + json.load(response)["url"]


def http(stack: Stack, p: dict) -> dict:
    base = f"https://localhost:{stack.https_port}"
    api = db_backed_url(stack, base)
    results = {}
    for name, (variables, label) in WEB_CONFIGS.items():
        stack.recreate("web", **variables)
        wrk(f"{base}/healthz", p["wrk_warmup_s"], p["wrk_connections"])  # warm-up
        reps = []
        for _ in range(p["reps"]):
            reps.append({"healthz": wrk(f"{base}/healthz", p["wrk_s"], p["wrk_connections"]),
                         "api": wrk(api, p["wrk_s"], p["wrk_connections"])})
        results[name] = {**median_of(reps), "memory_mb": stack.memory_mb("web"), "label": label}
    stack.recreate("web")  # back to what ships
    return results
