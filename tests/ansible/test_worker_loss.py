"""Stop one worker host in the middle of queued work: the other host finishes it, nothing is lost.

Run alone by run.sh (it stops and restarts a fleet container). The host is stopped the way a VM shuts
down: systemd stops the worker, Celery's warm shutdown finishes running tasks and hands reserved ones
back to the broker, and the remaining host picks them up.
"""

import subprocess
import time

from conftest import group, host
from polling import wait_until

TASKS = 12
SECONDS_EACH = 3


def test_remaining_worker_host_finishes_the_queued_work(web):
    victim, survivor = group("workers")[:2]
    ids = []
    for _ in range(TASKS):
        created = web.post(f"{web.base}/api/tasks/", json={"task": "sleep", "args": [SECONDS_EACH]}, timeout=10)
        assert created.status_code == 202, created.text
        ids.append(created.json()["url"])

    # Wait until the victim is busy with some of them, then shut its host down.
    task_ids = [url.rstrip("/").rsplit("/", 1)[-1] for url in ids]
    wait_until(lambda: any(t in host(victim).check_output("journalctl -u 'app-worker@*' --no-pager -o cat")
                         for t in task_ids),
             60, interval=0.5, what=f"{victim} to receive one of the queued tasks")
    started = time.monotonic()
    subprocess.run(["docker", "stop", "-t", "120", victim], check=True, capture_output=True)
    stop_seconds = time.monotonic() - started

    def all_done():
        states = [web.get(f"{web.base}{url}", timeout=10).json()["state"] for url in ids]
        return states if all(s in ("SUCCESS", "FAILURE") for s in states) else None

    states = wait_until(all_done, 180, interval=2, what="all queued tasks to finish on the remaining host")
    print(f"{victim} stopped in {stop_seconds:.1f}s; {states.count('SUCCESS')}/{TASKS} tasks succeeded")
    assert states == ["SUCCESS"] * TASKS, states
    log = host(survivor).check_output("journalctl -u 'app-worker@*' --no-pager -o cat")
    assert "succeeded" in log


def test_stopped_worker_host_comes_back():
    victim = group("workers")[0]
    subprocess.run(["docker", "start", victim], check=True, capture_output=True)
    h = host(victim)
    wait_until(lambda: h.run("systemctl is-active app-worker@default-1").stdout.strip() == "active", 120,
             what=f"app-worker@default-1 on {victim} after boot")
    wait_until(lambda: h.run("CELERY_WORKER_HEARTBEAT_FILE=/var/lib/app/heartbeat/worker-default-1 "
                           "/srv/app/current/app/bin/worker-healthcheck").rc == 0,
             120, what=f"a fresh heartbeat on {victim}")
