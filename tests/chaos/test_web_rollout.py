"""A redeploy of the web tier under load answers every request: `docker compose up -d --force-recreate web`
(the only web container: it stops, the next one starts) while clients read results and start tasks.
The proxy holds requests while no web container listens (compose/images/proxy/Caddyfile,
`lb_try_duration`) instead of answering 502; gunicorn's graceful stop finishes the requests in flight."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from conftest import report

THREADS = 4


@pytest.mark.xfail(strict=True, reason="issue 16: 1-3 POSTs of ~560 still get 502 'connection reset by peer' from the "
                   "stopping gunicorn (95 before the proxy's retries); a second web container or a connection drain is next")
def test_recreating_web_under_load_fails_no_request(stack):
    fresh = stack.submit("add", [1, 2])
    assert fresh.status_code == 202, fresh.text
    read_url = f"/api/tasks/{fresh.json()['id']}/"
    answers: Counter = Counter()
    accepted: list[str] = []
    stopping = threading.Event()

    def client(n: int) -> None:
        while not stopping.is_set():
            try:
                response = stack.submit("add", [n, 1]) if n % 2 else stack.get(read_url, timeout=60)
            except Exception as exc:  # noqa: BLE001 - counted: a failed request is what this test is about
                answers[type(exc).__name__] += 1
                continue
            answers[response.status_code] += 1
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(3)  # load before the redeploy
    started = time.monotonic()
    stack.compose("up", "-d", "--force-recreate", "--no-deps", "web", timeout=300)
    stack.wait_healthy("web")
    took = time.monotonic() - started
    time.sleep(3)  # and after it
    stopping.set()
    for thread in threads:
        thread.join(90)
    failed = {k: v for k, v in answers.items() if k not in (200, 202)}
    report("web-recreate-under-load", sum(answers.values()), answers[200] + answers[202], sum(failed.values()),
           recreate_seconds=round(took, 1), answers=dict(answers))
    assert answers[202] > 0 and answers[200] > 0, answers
    if failed:  # the proxy says why (its access log has the upstream error)
        print("\n".join(line for line in stack.logs("proxy").splitlines() if '"status":502' in line or "error" in line)[-6000:])
    assert not failed, f"requests that failed during the redeploy: {failed}"
    states = stack.wait_all(accepted, timeout=120)
    assert all(state == "SUCCESS" for state in states.values()), Counter(states.values())
