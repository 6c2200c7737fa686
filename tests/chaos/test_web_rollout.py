"""A web redeploy under load answers every request: `compose/scripts/rollout-web.sh` (what `make up` runs
on a running stack) starts a new web container beside the old one, waits until it is healthy, then stops
the old, while clients send 30 requests/s through the proxy, each on a new connection and without retries:
half read a task's result, half start tasks. The old web closes its listener as soon as it stops accepting
(deploykit/gunicorn_drain.py), so the proxy's dial of `web` goes on to the new container's address."""

from __future__ import annotations

import threading
import time
from collections import Counter

import requests
from conftest import BROKER, PROJECT, compose_cmd, report, run

CLIENTS = 6
RATE = 30  # requests/s in all


def test_rolling_web_under_load_fails_no_request(stack):
    fresh = stack.submit("add", [1, 2])
    assert fresh.status_code == 202, fresh.text
    read_url = f"{stack.base}/api/tasks/{fresh.json()['id']}/"
    answers: Counter = Counter()
    failures: list[str] = []
    accepted: list[str] = []
    stopping = threading.Event()

    def client(n: int) -> None:
        next_at = time.monotonic()
        while not stopping.is_set():
            try:
                with requests.Session() as session:  # a new connection every time, no retry
                    session.trust_env, session.verify = False, stack.http.verify
                    session.headers["Connection"] = "close"
                    response = (session.post(f"{stack.base}/api/tasks/", json={"task": "add", "args": [n, 1]}, timeout=60)
                                if n % 2 else session.get(read_url, timeout=60))
                answers[response.status_code] += 1
                if response.status_code == 202:
                    accepted.append(response.json()["id"])
                elif response.status_code >= 500:
                    failures.append(f"{time.strftime('%H:%M:%S')} {response.status_code} {response.text[:200]}")
            except requests.RequestException as exc:
                answers[type(exc).__name__] += 1
                failures.append(f"{time.strftime('%H:%M:%S')} {exc}")
            next_at += CLIENTS / RATE
            stopping.wait(max(0.0, next_at - time.monotonic()))

    old = set(stack.compose("ps", "-q", "web").stdout.split())
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(3)  # load before the redeploy
    rolled = run("compose/scripts/rollout-web.sh", *compose_cmd(stack.env_file, BROKER, project=PROJECT),
                 env=stack.env, timeout=300)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    time.sleep(3)  # and after it
    stopping.set()
    for thread in threads:
        thread.join(90)
    seconds = time.monotonic() - started
    new = set(stack.compose("ps", "-q", "web").stdout.split())
    total = sum(answers.values())
    report("web-rollout-under-load", total, answers[200] + answers[202], len(failures),
           seconds=round(seconds, 1), rate=round(total / seconds, 1), answers=dict(answers))
    assert new and not new & old, f"web containers before {old}, after {new}: not every one was replaced"
    assert not failures, f"requests that failed during the rollout: {dict(answers)}\n" + "\n".join(failures[:20])
    assert total / seconds >= 20, f"the load was {total / seconds:.1f} requests/s, not 20"
    assert answers[202] > 0 and answers[200] > 0, answers
    states = stack.wait_all(accepted, timeout=120)
    assert all(state == "SUCCESS" for state in states.values()), Counter(states.values())
