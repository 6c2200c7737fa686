"""Operator endpoints (/status, /metrics) are refused through every public entry: tests read them from
inside, as a probe or an operator does -- a command in an app container (or on the web host) that asks
gunicorn on 127.0.0.1, with the path exactly as given (`//status` and `/%73tatus` are not rewritten)."""

from __future__ import annotations

import json
import subprocess

SCRIPT = (
    "import http.client, os, sys\n"
    "c = http.client.HTTPConnection('127.0.0.1', int(os.environ.get('PORT') or 8000), timeout=30)\n"
    "c.request('GET', sys.argv[1]); r = c.getresponse()\n"
    "sys.stdout.write(str(r.status) + '\\n' + r.read().decode())\n"
)


def internal_get(prefix: list[str], path: str, timeout: float = 90, env: dict | None = None) -> tuple[int, str]:
    """(status, body) of GET `path` on the web process, run through `prefix` (`docker compose exec -T web`,
    `kubectl exec deploy/... --`, the fleet's `app-run`); `env`: the prefix command's environment."""
    result = subprocess.run([*prefix, "python", "-c", SCRIPT, path], capture_output=True, text=True, timeout=timeout,
                            env=env)
    if result.returncode != 0 or "\n" not in result.stdout:
        raise RuntimeError(f"internal GET {path} failed ({result.returncode}): {result.stdout[-500:]} {result.stderr[-2000:]}")
    status, body = result.stdout.split("\n", 1)
    return int(status), body


def internal_json(prefix: list[str], path: str = "/status") -> dict:
    return json.loads(internal_get(prefix, path)[1])
