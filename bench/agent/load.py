"""Load generator and collector, run inside the bench client container (same image as the app).

  load.py publish --app shipped|baseline --stream TASK,QUEUE,RATE,COUNT [--stream ...] --key KEY
      publish task streams (RATE 0: as fast as possible, one by one), print JSON with the send rate
  load.py collect --key KEY --count N [--timeout S]
      wait for N task records in the sink, print JSON with throughput and latency percentiles
  load.py run --app ... --stream ... --key KEY [--warmup N]
      warm-up, publish and collect in one process
      wait for N task records in the sink, print JSON with throughput and latency percentiles
  load.py raw-publish --count N --key KEY     plain redis-py LPUSH of JSON messages, one by one
  load.py raw-consume --count N --key KEY     plain redis-py BRPOP loop (run in a worker-sized container)
  load.py broker-commands                     calls per Redis command on the broker so far (INFO
      commandstats; {} on RabbitMQ), to count what each task costs the broker
  load.py events --app shipped on|off         switch the workers' task events at run time (what Flower
      itself does with enable_events), to measure what they cost; prints how many workers answered

Exits non-zero only when the thing measured breaks (tasks not completed in time), never on a figure.
"""
import argparse
import json
import os
import sys
import time

import redis

sys.path.insert(0, "/app")  # the shipped app's packages (config, jobs) when run as a script
SLOW_URL = os.environ.get("BENCH_SLOW_URL", "http://slow:8080/")


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summarise(records):
    """records: [(sent, started, finished)] -> throughput and latency figures (ms)."""
    to_start = sorted((s - q) * 1000 for q, s, _ in records)
    to_done = sorted((f - q) * 1000 for q, _, f in records)
    first_sent = min(r[0] for r in records)
    first_start = min(r[1] for r in records)
    last_done = max(r[2] for r in records)
    out = {"count": len(records),
           # Pre-queued drain: the consumer's rate from its first task to its last.
           "drain_tasks_per_s": len(records) / max(last_done - first_start, 1e-9),
           # Produced and consumed together: from the first send to the last completion.
           "end_to_end_tasks_per_s": len(records) / max(last_done - first_sent, 1e-9)}
    for name, values in (("enqueue_to_start_ms", to_start), ("enqueue_to_done_ms", to_done)):
        out[name] = {f"p{q}": round(percentile(values, q), 3) for q in (50, 95, 99)}
    return out


def celery_app(which):
    if which == "shipped":
        import django

        django.setup()  # as in the web process that enqueues (the django-db result backend needs it)
        from config.celery import app
    else:
        from baseline_app import app
    return app


def publish(args):
    print(json.dumps(publish_streams(celery_app(args.app), args.stream, args.key)))


def run(args):
    """Warm-up, then publish and collect in one process (one `docker exec` instead of three)."""
    app = celery_app(args.app)
    task, queue = args.stream[0].split(",")[:2]
    if args.warmup:
        publish_streams(app, [f"{task},{queue},0,{args.warmup}"], args.key + ":warmup")
        collect_key(args.key + ":warmup", args.warmup, args.timeout)
    sent = publish_streams(app, args.stream, args.key)
    count = sum(int(s.split(",")[3]) for s in args.stream)
    print(json.dumps({**collect_key(args.key, count, args.timeout), "publish": sent}))


def publish_streams(app, specs, key):
    streams = []
    for spec in specs:
        task, queue, rate, count = spec.split(",")
        streams.append({"task": task, "queue": queue, "interval": 1 / float(rate) if float(rate) else 0.0,
                        "left": int(count), "due": 0.0, "n": 0})
    extra = {"bench.http_wait": lambda s: [SLOW_URL], "bench.resize": lambda s: [s["n"]]}
    with app.producer_or_acquire() as producer:  # one connection for the whole run, as a web process keeps
        begin = time.perf_counter()
        for s in streams:
            s["due"] = begin
        sent = 0
        while True:
            live = [s for s in streams if s["left"]]
            if not live:
                break
            s = min(live, key=lambda x: x["due"])
            wait = s["due"] - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            args_ = [key, time.time(), *extra.get(s["task"], lambda _: [])(s)]
            app.send_task(s["task"], args=args_, queue=s["queue"], producer=producer)
            s["left"] -= 1
            s["n"] += 1
            s["due"] += s["interval"]
            sent += 1
        seconds = time.perf_counter() - begin
    return {"published": sent, "seconds": round(seconds, 3), "sends_per_s": round(sent / seconds, 1)}


def collect(args):
    print(json.dumps(collect_key(args.key, args.count, args.timeout)))


def collect_key(key, count, timeout):
    sink = redis.Redis.from_url(os.environ["BENCH_SINK_URL"])
    deadline = time.monotonic() + timeout
    while (n := sink.llen(key)) < count:
        if time.monotonic() > deadline:
            sys.exit(f"ERROR: only {n} of {count} tasks completed within {timeout} s (key {key})")
        time.sleep(0.05)
    records = [tuple(map(float, line.split(b","))) for line in sink.lrange(key, 0, -1)]
    sink.delete(key)
    return summarise(records)


def raw_publish(args):
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    begin = time.perf_counter()
    for i in range(args.count):
        broker.lpush(args.key, json.dumps({"id": i, "task": "noop", "args": [], "sent": time.time()}))
    seconds = time.perf_counter() - begin
    print(json.dumps({"published": args.count, "seconds": round(seconds, 3),
                      "sends_per_s": round(args.count / seconds, 1)}))


def raw_consume(args):
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    records = []
    for _ in range(args.count):
        popped = broker.brpop(args.key, timeout=args.timeout)
        if popped is None:
            sys.exit(f"ERROR: raw consumer got {len(records)} of {args.count} messages (key {args.key})")
        started = time.time()
        message = json.loads(popped[1])
        records.append((message["sent"], started, time.time()))
    print(json.dumps(summarise(records)))


def broker_commands(args):
    url = os.environ["CELERY_BROKER_URL"]
    if not url.startswith("redis"):
        print(json.dumps({}))
        return
    stats = redis.Redis.from_url(url).info("commandstats")
    print(json.dumps({name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}))


def events(args):
    """Broadcast enable_events/disable_events: the workers' setting is left as shipped (off) and
    switched only for the measurement, the way Flower switches it on at run time."""
    command = "enable_events" if args.state == "on" else "disable_events"
    replies = celery_app(args.app).control.broadcast(command, reply=True, timeout=5) or []
    if not replies:
        sys.exit(f"ERROR: no worker answered {command}")
    print(json.dumps({"command": command, "workers": len(replies)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("publish", "run"):
        p = sub.add_parser(name)
        p.add_argument("--app", choices=["shipped", "baseline"], required=True)
        p.add_argument("--stream", action="append", required=True, help="TASK,QUEUE,RATE,COUNT")
        p.add_argument("--key", required=True)
        p.add_argument("--warmup", type=int, default=0, help="run: tasks of the first stream before measuring")
        p.add_argument("--timeout", type=float, default=300)
    p = sub.add_parser("collect")
    p.add_argument("--key", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=300)
    for name in ("raw-publish", "raw-consume"):
        p = sub.add_parser(name)
        p.add_argument("--key", required=True)
        p.add_argument("--count", type=int, required=True)
        p.add_argument("--timeout", type=float, default=120)
    sub.add_parser("broker-commands")
    p = sub.add_parser("events")
    p.add_argument("--app", choices=["shipped", "baseline"], required=True)
    p.add_argument("state", choices=["on", "off"])
    args = parser.parse_args()
    {"events": events, "broker-commands": broker_commands, "publish": publish, "run": run, "collect": collect, "raw-publish": raw_publish, "raw-consume": raw_consume}[args.command](args)


if __name__ == "__main__":
    main()
