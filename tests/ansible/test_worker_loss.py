"""Stop one worker host in the middle of long and queued work: every task runs exactly once.

Run alone by run.sh (it stops and restarts a fleet container). The host is stopped the way a VM shuts
down: systemd stops the worker, Celery's warm shutdown finishes the running tasks -- here longer than
three recovery rounds (DEPLOYKIT_RECOVERY_INTERVAL, 10 s shipped) -- and hands reserved ones back to the
broker; the remaining host runs the rest. No crash, so nothing may run twice: the tasks have a side
effect (jobs.tasks.side_effect, one row per run with its task id) and runs are counted per task id.
"""

import json
import shlex
import subprocess
import time

from conftest import WEB_CONTAINER, group, host
from polling import wait_until

LONG, LONG_SECONDS = 4, 45
SHORT, SHORT_SECONDS = 8, 1

RUNS = ("import json; from django.db.models import Count; from jobs.models import Execution; "
        "print(json.dumps({r['task_id']: [r['n'], r['done'], r['hosts']] for r in Execution.objects.values('task_id')"
        ".annotate(n=Count('id'), done=Count('finished'), hosts=Count('hostname', distinct=True))}))")


def django(code: str) -> str:
    out = host(WEB_CONTAINER).check_output(f"/usr/local/sbin/app-run python manage.py shell -c {shlex.quote(code)}")
    return out.strip().splitlines()[-1]


def send(count: int, seconds: float) -> list[str]:
    return json.loads(django("import json; from jobs import tasks; "
                             f"print(json.dumps([tasks.side_effect.delay({seconds}).id for _ in range({count})]))"))


def runs() -> dict[str, list[int]]:
    return json.loads(django(RUNS))


def started_on(hostname: str, ids: list[str]) -> bool:
    code = ("from jobs.models import Execution; "
            f"print(Execution.objects.filter(task_id__in={ids!r}, hostname={hostname!r}).count())")
    return int(django(code)) > 0


def test_remaining_worker_host_finishes_the_work_and_nothing_runs_twice():
    victim, survivor = group("workers")[:2]
    long = send(LONG, LONG_SECONDS)
    short = send(SHORT, SHORT_SECONDS)
    wait_until(lambda: started_on(victim, long), 90, interval=1, what=f"{victim} to start a long task")
    started = time.monotonic()
    subprocess.run(["docker", "stop", "-t", "150", victim], check=True, capture_output=True)
    stop_seconds = time.monotonic() - started

    sent = long + short

    def all_finished():
        seen = runs()
        return seen if all(seen.get(i, [0, 0])[1] for i in sent) else None

    seen = wait_until(all_finished, 240, interval=2, what="every task to finish a run")
    duplicated = sum(seen[i][0] - 1 for i in sent)
    done = sum(1 for i in sent if seen[i][1])
    print(f"\nworker-host-stop: sent={len(sent)} done={done} lost={len(sent) - done} duplicated={duplicated} "
          f"({victim} drained in {stop_seconds:.1f}s)")
    assert stop_seconds >= LONG_SECONDS - 15, f"{victim} stopped in {stop_seconds:.1f}s: its tasks were not drained"
    assert done == len(sent) and duplicated == 0, seen
    assert started_on(survivor, sent), f"{survivor} ran none of the queued work"


def test_stopped_worker_host_comes_back():
    victim = group("workers")[0]
    subprocess.run(["docker", "start", victim], check=True, capture_output=True)
    h = host(victim)
    wait_until(lambda: h.run("systemctl is-active app-worker@default-1").stdout.strip() == "active", 120,
             what=f"app-worker@default-1 on {victim} after boot")
    wait_until(lambda: h.run("DEPLOYKIT_HEARTBEAT_FILE=/var/lib/app/heartbeat/worker-default-1 "
                           "/srv/app/current/venv/bin/deploykit-worker-healthcheck").rc == 0,
             120, what=f"a fresh heartbeat on {victim}")
