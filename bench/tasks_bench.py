"""Task benchmarks: short no-op tasks (pre-queued drain, produced-and-consumed, steady 200/s), the raw
redis-py ceiling, what each safety setting costs, I/O-bound tasks and mixed load. Each function runs
one configuration and returns figures; run.py repeats them and takes medians."""
import contextlib
import itertools
import statistics
import time

from stack import Stack

_keys = itertools.count()


def _key(label):
    return f"bench:{label}:{next(_keys)}"


def publish(stack: Stack, app: str, *streams: str, key: str) -> dict:
    argv = ["python", "/bench/load.py", "publish", "--app", app, "--key", key]
    for s in streams:
        argv += ["--stream", s]
    return stack.exec_json("client", *argv)


def collect(stack: Stack, key: str, count: int, timeout: float = 300) -> dict:
    return stack.exec_json("client", "python", "/bench/load.py", "collect", "--key", key,
                           "--count", str(count), "--timeout", str(timeout))


def run_tasks(stack: Stack, app: str, task: str, queue: str, count: int, rate: float = 0, warmup: int = 0) -> dict:
    """Publish COUNT tasks (RATE/s, 0 = as fast as possible) to a running consumer and collect them."""
    return stack.exec_json("client", "python", "/bench/load.py", "run", "--app", app, "--key", _key(task),
                           "--stream", f"{task},{queue},{rate},{count}", "--warmup", str(warmup))


def drain(stack: Stack, app: str, task: str, queue: str, consumer: str, count: int,
          during=contextlib.nullcontext) -> dict:
    """Pre-queue COUNT tasks while the consumer is frozen (docker pause), then let it drain them.
    `during()` is a context manager held while it drains (a profiler)."""
    key = _key(task)
    freeze(stack, consumer)
    try:
        sent = publish(stack, app, f"{task},{queue},0,{count}", key=key)
        before = traffic(stack, consumer)
    finally:
        stack.compose("unpause", consumer)
    with during():
        figures = collect(stack, key, count)
    return {**figures, "publish": sent, "per_task": per_task(before, traffic(stack, consumer), count)}


def traffic(stack: Stack, consumer: str) -> dict:
    """What the consumer has sent so far: packets from its containers, calls per command on a Redis broker
    (every client of the broker counts, but while a drain runs only the consumers talk to it)."""
    return {"packets": stack.packets_sent(consumer),
            "commands": stack.exec_json("client", "python", "/bench/load.py", "broker-commands")}


def per_task(before: dict, after: dict, count: int) -> dict:
    """Packets sent (about the broker and result-store round trips: most requests are one packet and
    the ACKs ride on the next request) and Redis commands per task, the busiest commands first."""
    calls = {name: n - before["commands"].get(name, 0) for name, n in after["commands"].items()}
    calls = {name: round(n / count, 2) for name, n in sorted(calls.items(), key=lambda kv: -kv[1]) if n}
    # The broker-commands call itself (one INFO) is not the consumer's.
    calls.pop("info", None)
    return {"packets_sent": round((after["packets"] - before["packets"]) / count, 2),
            "redis_commands": round(sum(calls.values()), 2) if after["commands"] else None,
            "redis_commands_by_name": calls}


def freeze(stack: Stack, service: str, attempts: int = 5) -> None:
    """docker pause, retried: under heavy load the cgroup v1 freezer can fail with "unable to freeze"
    while a process is in the middle of a system call; a moment later it succeeds."""
    for attempt in range(attempts):
        if stack.compose("pause", service, check=False).returncode == 0:
            return
        time.sleep(1 + attempt)
    stack.compose("pause", service)  # the last try reports the daemon's error


def short_tasks(stack: Stack, app: str, queue: str, consumer: str, p: dict, task="bench.noop") -> dict:
    """Drain, concurrent produce/consume and the steady-rate run for one worker configuration."""
    reps = []
    for _ in range(p["reps"]):
        # Warm-up (imports, connections, pool processes) in the same process as the measured run.
        c = run_tasks(stack, app, task, queue, p["tasks"], warmup=p["warmup"])
        d = drain(stack, app, task, queue, consumer, p["tasks"])
        s = run_tasks(stack, app, task, queue, int(p["steady_rate"] * p["steady_s"]), rate=p["steady_rate"])
        reps.append({"drain": d, "concurrent": c, "steady": s})
    return median_of(reps)


def raw_ceiling(stack: Stack, p: dict) -> dict:
    """Plain redis-py: LPUSH JSON messages one by one, one consumer BRPOPs them (worker-sized container)."""
    n = str(p["tasks"])
    load = ["python", "/bench/load.py"]
    stack.exec_json("client", *load, "raw-publish", "--count", str(p["warmup"]), "--key", "bench:raw:warm")
    stack.exec_json("rawc", *load, "raw-consume", "--count", str(p["warmup"]), "--key", "bench:raw:warm")
    reps = []
    for i in range(p["reps"]):
        key = f"bench:raw:{i}"
        sent = stack.exec_json("client", *load, "raw-publish", "--count", n, "--key", key)
        d = {**stack.exec_json("rawc", *load, "raw-consume", "--count", n, "--key", key), "publish": sent}
        wait = stack.popen_json("rawc", *load, "raw-consume", "--count", n, "--key", key + "c")
        sent = stack.exec_json("client", *load, "raw-publish", "--count", n, "--key", key + "c")
        c = {**wait(), "publish": sent}
        reps.append({"drain": d, "concurrent": c})
    return median_of(reps)


def io_tasks(stack: Stack, app: str, queue: str, p: dict) -> dict:
    return median_of([run_tasks(stack, app, "bench.http_wait", queue, p["io_tasks"], warmup=20)
                      for _ in range(p["reps"])])


def mixed(stack: Stack, p: dict) -> dict:
    """Short tasks at a steady rate while image resizes (images queue) and e-mail-like I/O (io queue)
    flow at the same time; returns the short tasks' figures and the other streams' completions."""
    secs = p["mixed_s"]
    rates = {"bench.noop": ("default", 100), "bench.resize": ("images", 4), "bench.http_wait": ("io", 20)}
    run_tasks(stack, "shipped", "bench.resize", "images", 4)  # warm-up of the image pool and noop pool
    run_tasks(stack, "shipped", "bench.noop", "default", 50)
    reps = []
    for _ in range(p["reps"]):
        keys = {t: _key(t) for t in rates}
        # One publisher per stream would need separate keys per stream: publish each stream with its key.
        waits = [stack.popen_json("client", "python", "/bench/load.py", "publish", "--app", "shipped",
                                  "--key", keys[t], "--stream", f"{t},{q},{r},{int(r * secs)}")
                 for t, (q, r) in rates.items()]
        for w in waits:
            w()
        figures = {t.split(".")[1]: collect(stack, keys[t], int(r * secs)) for t, (_, r) in rates.items()}
        reps.append(figures)
    return median_of(reps)


def median_of(reps: list) -> dict:
    """Element-wise median of a list of nested dicts of numbers (and the raw runs); a key missing from
    some runs (a Redis command one drain did not use) is the median of the runs that have it."""
    def merge(values):
        first = values[0]
        if isinstance(first, dict):
            return {k: merge([v[k] for v in values if k in v]) for k in first}
        if isinstance(first, (int, float)):
            return round(statistics.median(values), 3)
        return first
    return merge(reps)
