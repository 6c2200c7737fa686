"""Every task runs once where nothing crashed; after a crash nothing is lost and duplicates stay within what
was in flight. Tasks here have a side effect (jobs.tasks.side_effect: one row per run, with its task id),
and each case prints sent / done / lost / duplicated. All on the shipped defaults (DEPLOYKIT_LEASE_TTL 30,
DEPLOYKIT_RECOVERY_INTERVAL 10): nothing is tuned for the test.

Class of each case: "no crash" (warm shutdown, rate limit, countdown): duplicated must be 0;
"crash" (kill -9): duplicated <= the runs in flight on what was killed."""

from __future__ import annotations

import os
import signal
import time

from conftest import BROKER, count_runs, redis_cli, report_runs, run, runs, send_side_effects
from seclib import wait_for

RECOVERY_INTERVAL = 10  # DEPLOYKIT_RECOVERY_INTERVAL's shipped default


def last_round(stack) -> float:
    """Redis: when the last recovery round ran (deploykit.delivery.unacked.LAST_ROUND_KEY), 0 before the first."""
    return float(redis_cli(stack, "get", "deploykit.recovery_last_round") or 0) if BROKER == "redis" else time.time()


def test_counting_sees_a_task_id_that_ran_twice(stack):
    """Self-test of the count: one task id sent twice is one duplicate."""
    (first,) = send_side_effects(stack, 1)
    send_side_effects(stack, 1, task_id=first)
    wait_for(lambda: runs(stack).get(first, (0, 0))[1] == 2, 60, "both runs of one id", interval=0.5)
    counts = count_runs(stack, [first], timeout=10)
    assert counts == {"sent": 1, "done": 1, "lost": 0, "duplicated": 1}, counts


def test_warm_shutdown_of_a_worker_running_long_tasks_runs_each_once(stack):
    """No crash: `docker stop` (SIGTERM: warm shutdown, as a deploy, scale-in or recreate does) of a worker
    whose tasks outlast three recovery rounds, while another worker runs the rounds."""
    stack.compose("up", "-d", "--no-recreate", "--scale", "worker-default=2", "worker-default", timeout=300)
    try:
        stack.wait_healthy("worker-default")
        sent = send_side_effects(stack, 2, seconds=3 * RECOVERY_INTERVAL + 10)
        started = wait_for(lambda: (seen := runs(stack)) and all(i in seen for i in sent) and seen, 90,
                           "both long tasks to start", interval=0.5)
        host = started[sent[0]][2][0]
        (victim,) = [cid for cid in stack.containers("worker-default") if cid.startswith(host)]
        stopping = time.time()
        run("docker", "stop", "-t", "150", victim, timeout=200)  # returns once the worker has exited
        exit_code = stack.inspect(victim)["State"]["ExitCode"]
        rounds_during = last_round(stack) > stopping
        # A round after the exit too: a receipt left behind by the drained worker would be requeued now.
        stopped = time.time()
        wait_for(lambda: last_round(stack) > stopped, 4 * RECOVERY_INTERVAL, "a recovery round after the stop", interval=1)
        counts = count_runs(stack, sent, timeout=120)
        report_runs("warm-shutdown-long-tasks", counts, drained_s=round(stopped - stopping), exit_code=exit_code)
        assert exit_code == 0, f"the worker did not stop warmly: exit code {exit_code}"
        assert rounds_during, "no recovery round ran while the worker drained"
        assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    finally:
        stack.compose("up", "-d", "--scale", "worker-default=1", "worker-default", timeout=300)
        stack.wait_healthy("worker-default")


def test_a_rate_limited_burst_and_countdown_tasks_run_once(stack):
    """No crash: 12 tasks of a 20/m task wait in the worker's token bucket (~35 s: held, running nowhere,
    over several rounds), beside 3 tasks with a 35 s countdown held as ETA tasks."""
    sent = send_side_effects(stack, 12, task="side_effect_limited")
    sent += send_side_effects(stack, 3, countdown=35)
    counts = count_runs(stack, sent, timeout=180)
    report_runs("rate-limited-burst-and-countdown", counts)
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts


def test_kill_9_of_pool_children_loses_nothing_and_duplicates_only_what_ran(stack):
    """Crash: kill -9 of every pool process while side-effect tasks run; acks_late + reject_on_worker_lost
    requeue what they ran."""
    sent = send_side_effects(stack, 4, seconds=6)
    wait_for(lambda: any(i in runs(stack) for i in sent), 60, "a task to start", interval=0.5)
    main = stack.container_pid("worker-default")
    children = open(f"/proc/{main}/task/{main}/children").read().split()
    assert children, "no pool children"
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    in_flight = sum(1 for started, finished, _ in (runs(stack).get(i, (0, 0, [])) for i in sent) if started > finished)
    counts = count_runs(stack, sent, timeout=180)
    report_runs("kill-9-pool-children", counts, in_flight=in_flight, killed=len(children))
    assert counts["lost"] == 0 and counts["duplicated"] <= in_flight, counts


def test_kill_9_of_the_worker_main_process_loses_nothing_and_duplicates_only_what_it_held(stack):
    """Crash: kill -9 of the worker's main process (the container dies with its pool and restarts). On
    Redis its messages come back once its lease expired (TTL + a round); RabbitMQ requeues at once."""
    sent = send_side_effects(stack, 4, seconds=20)
    wait_for(lambda: any(i in runs(stack) for i in sent), 60, "a task to start", interval=0.5)
    killed_at = time.monotonic()
    os.kill(stack.container_pid("worker-default"), signal.SIGKILL)
    in_flight = sum(1 for started, finished, _ in (runs(stack).get(i, (0, 0, [])) for i in sent) if started > finished)
    counts = count_runs(stack, sent, timeout=240)
    report_runs("kill-9-worker-main", counts, in_flight=in_flight, seconds_to_complete=round(time.monotonic() - killed_at))
    stack.wait_healthy("worker-default")
    assert counts["lost"] == 0 and counts["duplicated"] <= in_flight, counts
