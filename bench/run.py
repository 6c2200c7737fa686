"""`make bench` / `make bench-quick`: bring up the real Compose stack (Redis, then RabbitMQ), run every
benchmark side by side with its baselines, write JSON + Markdown + PNG charts.

  python bench/run.py --profile full|quick [--out DIR] [--brokers redis,rabbitmq]

Fails only when something measured breaks (tasks not completed, HTTP errors), never on a figure.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402
import cpu_profile  # noqa: E402
import report  # noqa: E402
import tasks_bench as tb  # noqa: E402
from http_bench import http  # noqa: E402
from stack import BUILD, ROOT, Stack  # noqa: E402

# Fixed counts (and seeds: resize images are generated from the task's sequence number).
PROFILES = {
    "quick": dict(reps=1, tasks=300, warmup=50, steady_rate=200, steady_s=3, io_tasks=80, mixed_s=4,
                  cost_tasks=300, wrk_s=3, wrk_warmup_s=1, wrk_connections=16),
    "full": dict(reps=3, tasks=3000, warmup=300, steady_rate=200, steady_s=10, io_tasks=400, mixed_s=10,
                 cost_tasks=2000, wrk_s=8, wrk_warmup_s=2, wrk_connections=16),
}


def scaled(profile: dict, scale: float) -> dict:
    """BENCH_SCALE multiplies counts and durations (not repetitions): a slower or busier machine can
    still finish a run; the scale used is part of the results."""
    if scale <= 0:
        sys.exit(f"ERROR: BENCH_SCALE must be a positive number (got {scale})")
    keep = {"reps", "steady_rate", "wrk_connections"}
    return {k: v if k in keep else max(1, round(v * scale)) for k, v in profile.items()} | {"scale": scale}


def say(message):
    print(f"==> [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def show(name, figures):
    """Print a scenario's figures as soon as they exist (benchmarks print figures)."""
    print(f"    {name}: {json.dumps(figures)}", flush=True)
    return figures


def drain_only(stack, app, task, queue, consumer, p):
    tb.run_tasks(stack, app, task, queue, p["warmup"])  # warm-up
    return tb.median_of([tb.drain(stack, app, task, queue, consumer, p["cost_tasks"])
                         for _ in range(p["reps"])])


def profiled_drain(stack, app, task, queue, consumer, p, name):
    """One extra drain with py-spy attached to the consumer: where its CPU goes (not timed)."""
    tb.run_tasks(stack, app, task, queue, p["warmup"])  # warm-up
    raw = BUILD / f"profile-{stack.broker}-{name}.txt"
    profiler = lambda: cpu_profile.Profiler(stack, consumer, raw)  # noqa: E731
    tb.drain(stack, app, task, queue, consumer, max(p["tasks"], 1000), during=profiler)
    return cpu_profile.summarise(raw)


def safety_costs(stack, p):
    """The shipped worker with one safety setting off at a time (measured, never shipped)."""
    costs = {"shipped": drain_only(stack, "shipped", "bench.noop", "default", "worker-default", p),
             "acks_late_off": drain_only(stack, "shipped", "bench.noop_early_ack", "default", "worker-default", p),
             # Off as shipped; on for the tasks whose state is read mid-run (the API's demo tasks).
             "track_started_on": drain_only(stack, "shipped", "bench.noop_tracked", "default", "worker-default", p)}
    # Not a safety setting, but what the monitoring costs: task events are off as shipped (Celery's
    # default) and on while Flower runs (it switches them on itself): measured by switching them on.
    stack.exec_json("client", "python", "/bench/load.py", "events", "--app", "shipped", "on")
    try:
        costs["task_events_on"] = drain_only(stack, "shipped", "bench.noop", "default", "worker-default", p)
    finally:
        stack.exec_json("client", "python", "/bench/load.py", "events", "--app", "shipped", "off")
    # A tuning candidate, not a safety setting: more pool processes in the same CPU allowance, so
    # the broker round trips of one task overlap with the work of others.
    stack.recreate("worker-default", WORKER_DEFAULT_CONCURRENCY="4")
    costs["concurrency_4"] = drain_only(stack, "shipped", "bench.noop", "default", "worker-default", p)
    stack.recreate("worker-default", BENCH_PREFETCH="4")
    costs["prefetch_4"] = drain_only(stack, "shipped", "bench.noop", "default", "worker-default", p)
    stack.recreate("worker-default", BENCH_MAX_TASKS_PER_CHILD="1000000")
    costs["no_child_recycling"] = drain_only(stack, "shipped", "bench.noop", "default", "worker-default", p)
    stack.recreate("worker-default")
    return costs


def redis_suite(stack, p, out):
    say("short tasks: shipped worker (prefork x2, acks_late, prefetch 1)")
    out["shipped"] = show("shipped", tb.short_tasks(stack, "shipped", "default", "worker-default", p))
    say("profile: shipped worker during a drain (py-spy)")
    out["profile"] = {"shipped": show("profile.shipped", profiled_drain(stack, "shipped", "bench.noop", "default", "worker-default", p, "shipped"))}
    say("what each safety setting costs")
    out["safety_costs"] = show("safety_costs", safety_costs(stack, p))
    say("I/O-bound tasks: the Compose io pool (worker-io: threads x16; the Helm chart runs 8 per pod)")
    out["io"] = show("io", {"io_pool": tb.io_tasks(stack, "shipped", "io", p)})
    say("mixed load: separate pools (worker-default: default, worker-io: io, worker-images: images)")
    out["mixed"] = show("mixed", {"separate_pools": tb.mixed(stack, p)})
    stack.stop("worker-images", "worker-io")
    say("mixed load: one pool serving default, io and images (prefork x3, 2 CPUs)")
    stack.recreate("worker-default", BENCH_WORKER_QUEUES="default,io,images", WORKER_DEFAULT_CONCURRENCY="3", WORKER_DEFAULT_CPUS="2.0")
    out["mixed"]["single_pool"] = show("mixed.single_pool", tb.mixed(stack, p))
    stack.stop("worker-default")
    say("peer baseline: celery worker with Celery's defaults")
    stack.up("baseline-worker")
    out["baseline"] = show("baseline", tb.short_tasks(stack, "baseline", "celery", "baseline-worker", p))
    out["io"]["baseline"] = show("io.baseline", tb.io_tasks(stack, "baseline", "celery", p))
    say("profile: peer baseline during a drain (py-spy)")
    out["profile"]["baseline"] = show("profile.baseline", profiled_drain(stack, "baseline", "bench.noop", "celery", "baseline-worker", p, "baseline"))
    stack.stop("baseline-worker")
    say("raw ceiling: redis-py LPUSH/BRPOP, one consumer")
    out["raw"] = show("raw", tb.raw_ceiling(stack, p))
    say("HTTP: wrk through the proxy")
    stack.recreate("worker-default")
    out["http"] = show("http", http(stack, p))


def rabbitmq_suite(stack, p, out):
    say("short tasks over RabbitMQ: shipped worker")
    out["shipped"] = show("shipped", tb.short_tasks(stack, "shipped", "default", "worker-default", p))
    stack.stop("worker-default")
    say("short tasks over RabbitMQ: peer baseline")
    stack.up("baseline-worker")
    out["baseline"] = show("baseline", tb.short_tasks(stack, "baseline", "celery", "baseline-worker", p))
    stack.stop("baseline-worker")


def footprint(profile):
    script = ROOT / "bench" / "footprint.py"
    if not script.exists():
        return None
    path = BUILD / "footprint.json"
    say("footprint (bench/footprint.py)")
    cmd = [sys.executable, str(script), "--out", str(path)] + (["--quick"] if profile == "quick" else [])
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode:
        return {"error": f"bench/footprint.py exited {result.returncode}"}
    return json.loads(path.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="quick")
    parser.add_argument("--out", default=None, help="output directory (full: docs/benchmarks, quick: build/bench/quick)")
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--no-footprint", action="store_true")
    args = parser.parse_args()
    p = scaled(PROFILES[args.profile], float(os.environ.get("BENCH_SCALE", "1")))
    out_dir = Path(args.out or (ROOT / ("docs/benchmarks" if args.profile == "full" else "build/bench/quick")))
    began = time.monotonic()
    results = {"profile": args.profile, "params": p, "machine": machine.describe()}
    say(f"machine: {results['machine']}")
    if os.environ.get("BENCH_NO_BUILD") != "1":  # 1: reuse the images of the last `make images`
        subprocess.run(["compose/scripts/build-images.sh"], cwd=ROOT, check=True,
                       env=dict(os.environ, BUILD_MODE=os.environ.get("BUILD_MODE", "offline")))
    suites = {"redis": redis_suite, "rabbitmq": rabbitmq_suite}
    brokers = args.brokers.split(",")
    for broker in brokers:
        if broker not in suites:
            sys.exit(f"ERROR: --brokers: unknown broker '{broker}' (redis, rabbitmq)")
    failed = []
    for broker in brokers:
        stack = Stack(broker)
        results[broker] = {}
        try:
            say(f"starting {stack.project}")
            results[broker]["stack_up_s"] = stack.start()
            suites[broker](stack, p, results[broker])
        except Exception as exc:  # the other broker still runs; the run fails at the end
            traceback.print_exc()
            stack.logs()
            results[broker]["error"] = str(exc).splitlines()[0]
            failed.append(broker)
        finally:
            say(f"tearing down {stack.project}")
            stack.down()
    if not args.no_footprint:
        results["footprint"] = footprint(args.profile)
    results["duration_s"] = round(time.monotonic() - began, 1)
    # The README shows what docs/benchmarks/ holds: updated whenever a run writes there.
    report.write(results, out_dir, readme=out_dir.resolve() == (ROOT / "docs/benchmarks").resolve())
    say(f"done in {results['duration_s']} s: {out_dir}")
    if failed:
        sys.exit(f"ERROR: the benchmark broke on {', '.join(failed)} (see above); figures so far are in {out_dir}")


if __name__ == "__main__":
    main()
