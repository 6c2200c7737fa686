"""A web redeploy under load answers every request: `compose/scripts/rollout-web.sh` (what `make up` runs
on a running stack) starts a new web container beside the old one, waits until it is healthy, then stops
the old, while clients send 30 requests/s through the proxy, each on a new connection and without retries:
half read a task's result, half start tasks. The old web closes its listener as soon as it stops accepting
(deploykit/ops/gunicorn_drain.py), so the proxy's dial of `web` goes on to the new container's address."""

from __future__ import annotations

import time
from collections import Counter

from conftest import BROKER, PROJECT, compose_cmd, report, run
from load import Load

CLIENTS = 6
RATE = 30  # requests/s in all


def test_rolling_web_under_load_fails_no_request(stack):
    old = set(stack.compose("ps", "-q", "web").stdout.split())
    with Load(stack.base, stack.http.verify, rate=RATE, clients=CLIENTS) as load:
        time.sleep(3)  # load before the redeploy
        rolled = run("compose/scripts/rollout-web.sh", *compose_cmd(stack.env_file, BROKER, project=PROJECT),
                     env=stack.env, timeout=300)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        time.sleep(3)  # and after it
    new = set(stack.compose("ps", "-q", "web").stdout.split())
    answers = load.answers
    report("web-rollout-under-load", load.total, answers[200] + answers[202], len(load.failures),
           seconds=round(load.seconds, 1), rate=round(load.per_second, 1), answers=dict(answers))
    assert new and not new & old, f"web containers before {old}, after {new}: not every one was replaced"
    assert not load.failures, f"requests that failed during the rollout: {dict(answers)}\n" + "\n".join(load.failures[:20])
    assert load.per_second >= 20, f"the load was {load.per_second:.1f} requests/s, not 20"
    assert answers[202] > 0 and answers[200] > 0, answers
    states = stack.wait_all(load.accepted, timeout=120)
    assert all(state == "SUCCESS" for state in states.values()), Counter(states.values())
