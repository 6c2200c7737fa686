"""Turn one run's results into docs: results.json, results.md (tables), PNG charts, and the README's
benchmark section (full runs only). Headline figures are ratios of things measured in the same run."""
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
README_START = "<!-- bench:start (written by make bench) -->"
README_END = "<!-- bench:end -->"


def _get(d, path, default=None):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def headlines(r: dict) -> list[tuple[str, object, str]]:
    """(figure, value, target) rows: the ratios the issue asks for, from one run."""
    rd = r.get("redis", {})
    drain = lambda k: _get(rd, f"{k}.drain.drain_tasks_per_s")  # noqa: E731
    conc = lambda k: _get(rd, f"{k}.concurrent.end_to_end_tasks_per_s")  # noqa: E731
    rows = [
        ("Short tasks, drain: shipped / raw redis-py ceiling", _ratio(drain("shipped"), drain("raw")), ">= 0.2"),
        ("Short tasks, drain: peer baseline / raw ceiling", _ratio(drain("baseline"), drain("raw")), "(about 0.13)"),
        ("Short tasks, drain: shipped / peer baseline", _ratio(drain("shipped"), drain("baseline")), ">= 0.9"),
        ("Short tasks, produced+consumed: shipped / peer baseline", _ratio(conc("shipped"), conc("baseline")), ">= 1"),
        ("p99 enqueue-to-start at 200 tasks/s, shipped (ms)", _get(rd, "shipped.steady.enqueue_to_start_ms.p99"), "< 20"),
        ("p99 enqueue-to-start at 200 tasks/s, peer baseline (ms)", _get(rd, "baseline.steady.enqueue_to_start_ms.p99"), ""),
        ("p99 enqueue-to-start at 200 tasks/s: shipped / peer baseline",
         _ratio(_get(rd, "shipped.steady.enqueue_to_start_ms.p99"), _get(rd, "baseline.steady.enqueue_to_start_ms.p99")), "<= 2"),
        ("I/O tasks (50 ms wait): io pool (Compose worker-io, threads x16) / peer baseline",
         _ratio(_get(rd, "io.io_pool.end_to_end_tasks_per_s"), _get(rd, "io.baseline.end_to_end_tasks_per_s")), ">= 10"),
        ("Mixed load, short-task p99 enqueue-to-start: single pool / separate pools",
         _ratio(_get(rd, "mixed.single_pool.noop.enqueue_to_start_ms.p99"),
                _get(rd, "mixed.separate_pools.noop.enqueue_to_start_ms.p99")), "> 1"),
    ]
    for ep in ("healthz", "api"):
        shipped = _get(rd, f"http.shipped.{ep}.requests_per_s")
        rows.append((f"HTTP {ep} req/s: shipped / 1 sync worker", _ratio(shipped, _get(rd, f"http.sync_1.{ep}.requests_per_s")), ">= 2"))
        rows.append((f"HTTP {ep} req/s: shipped / (2 x cores + 1) sync workers",
                     _ratio(shipped, _get(rd, f"http.sync_2n1.{ep}.requests_per_s")), ">= 1"))
    rows.append(("HTTP web memory: shipped / (2 x cores + 1) sync workers",
                 _ratio(_get(rd, "http.shipped.memory_mb"), _get(rd, "http.sync_2n1.memory_mb")), "< 1"))
    rq = r.get("rabbitmq", {})
    rows.append(("RabbitMQ, drain: shipped / peer baseline",
                 _ratio(_get(rq, "shipped.drain.drain_tasks_per_s"), _get(rq, "baseline.drain.drain_tasks_per_s")), ">= 0.5"))
    rows.append(("RabbitMQ, produced+consumed: shipped / peer baseline",
                 _ratio(_get(rq, "shipped.concurrent.end_to_end_tasks_per_s"),
                        _get(rq, "baseline.concurrent.end_to_end_tasks_per_s")), ">= 1"))
    rows.append(("RabbitMQ, p99 enqueue-to-start at 200 tasks/s, shipped (ms)",
                 _get(rq, "shipped.steady.enqueue_to_start_ms.p99"), "< 20"))
    return rows


def _fmt(v):
    if v is None:
        return "n/a"
    return f"{v:,.2f}" if isinstance(v, float) else str(v)


def task_table(r: dict) -> list[str]:
    lines = ["| Broker | Consumer | Drain tasks/s | Produced+consumed tasks/s | start p50/p95/p99 ms (produced+consumed) "
             "| done p99 ms | offered tasks/s (target 200) | start p50/p95/p99 ms at that rate | done p99 ms at that rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for broker in ("redis", "rabbitmq"):
        for who in ("shipped", "baseline", "raw"):
            x = _get(r, f"{broker}.{who}")
            if not x:
                continue
            pct = lambda path: "/".join(_fmt(_get(x, f"{path}.p{q}")) for q in (50, 95, 99))  # noqa: E731
            lines.append(f"| {broker} | {who} | {_fmt(_get(x, 'drain.drain_tasks_per_s'))} "
                         f"| {_fmt(_get(x, 'concurrent.end_to_end_tasks_per_s'))} | {pct('concurrent.enqueue_to_start_ms')} "
                         f"| {_fmt(_get(x, 'concurrent.enqueue_to_done_ms.p99'))} "
                         f"| {_fmt(_get(x, 'steady.publish.sends_per_s'))} | {pct('steady.enqueue_to_start_ms')} "
                         f"| {_fmt(_get(x, 'steady.enqueue_to_done_ms.p99'))} |")
    return lines


def traffic_table(r: dict) -> list[str]:
    """Per task during a drain: packets the consumer sent (about its round trips to the broker and the
    result store) and the Redis broker's commands, the busiest named."""
    lines = ["| Broker | Consumer | packets sent per task | Redis commands per task | busiest commands per task |",
             "|---|---|---|---|---|"]
    for broker in ("redis", "rabbitmq"):
        for who in ("shipped", "baseline"):
            x = _get(r, f"{broker}.{who}.drain.per_task")
            if not x:
                continue
            busiest = ", ".join(f"{name} {n}" for name, n in list((x.get("redis_commands_by_name") or {}).items())[:8])
            lines.append(f"| {broker} | {who} | {_fmt(x.get('packets_sent'))} | {_fmt(x.get('redis_commands'))} "
                         f"| {busiest or 'n/a'} |")
    return lines if len(lines) > 2 else ["(not measured in this run)"]


def cost_table(r: dict) -> list[str]:
    costs = _get(r, "redis.safety_costs") or {}
    base = _get(costs, "shipped.drain_tasks_per_s")
    lines = ["| Shipped worker with... | Drain tasks/s | vs shipped |", "|---|---|---|"]
    for name, x in costs.items():
        rate = x.get("drain_tasks_per_s")
        lines.append(f"| {name.replace('_', ' ')} | {_fmt(rate)} | {_fmt(_ratio(rate, base))} |")
    return lines


def profile_table(r: dict) -> list[str]:
    """Share of the worker's active py-spy samples per library, shipped worker vs peer baseline."""
    prof = _get(r, "redis.profile") or {}
    if not prof:
        return ["(no profile in this run)"]
    names = list(prof)
    areas = sorted({a for x in prof.values() for a in x.get("areas_pct", {})},
                   key=lambda a: -max(x.get("areas_pct", {}).get(a, 0) for x in prof.values()))
    lines = ["| Library (self time) | " + " | ".join(f"{n} % of {prof[n].get('samples')} samples" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for a in areas[:10]:
        lines.append(f"| {a} | " + " | ".join(_fmt(prof[n].get("areas_pct", {}).get(a, 0)) for n in names) + " |")
    for n in names:
        top = ", ".join(f"`{f}` {v}%" for f, v in prof[n].get("top_self_pct", [])[:6])
        lines += ["", f"Top functions ({n}): {top}"]
    return lines


def http_table(r: dict) -> list[str]:
    lines = ["| Web config | /healthz req/s | p50/p90/p99 ms | API (DB read) req/s | p50/p90/p99 ms | web memory MB |",
             "|---|---|---|---|---|---|"]
    for name, x in (_get(r, "redis.http") or {}).items():
        pct = lambda ep: "/".join(_fmt(_get(x, f"{ep}.p{q}_ms")) for q in (50, 90, 99))  # noqa: E731
        lines.append(f"| {x['label']} | {_fmt(_get(x, 'healthz.requests_per_s'))} | {pct('healthz')} "
                     f"| {_fmt(_get(x, 'api.requests_per_s'))} | {pct('api')} | {_fmt(x.get('memory_mb'))} |")
    return lines


def other_table(r: dict) -> list[str]:
    rd = r.get("redis", {})
    lines = ["| Workload | Configuration | tasks/s | start p50/p99 ms | done p99 ms |", "|---|---|---|---|---|"]
    for name, x in (_get(rd, "io") or {}).items():
        lines.append(f"| I/O (50 ms wait) | {name} | {_fmt(x.get('end_to_end_tasks_per_s'))} "
                     f"| {_fmt(_get(x, 'enqueue_to_start_ms.p50'))}/{_fmt(_get(x, 'enqueue_to_start_ms.p99'))} "
                     f"| {_fmt(_get(x, 'enqueue_to_done_ms.p99'))} |")
    for name, x in (_get(rd, "mixed") or {}).items():
        for task, y in x.items():
            lines.append(f"| mixed: {task} | {name} | {_fmt(y.get('end_to_end_tasks_per_s'))} "
                         f"| {_fmt(_get(y, 'enqueue_to_start_ms.p50'))}/{_fmt(_get(y, 'enqueue_to_start_ms.p99'))} "
                         f"| {_fmt(_get(y, 'enqueue_to_done_ms.p99'))} |")
    return lines


def machine_line(r: dict) -> str:
    m = r["machine"]
    return (f"{m['date_utc']} UTC, {r['profile']} profile: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, "
            f"kernel {m['kernel']}, {m['os']}, Docker {m['docker']}, load average at start "
            f"{' / '.join(map(str, m['load_average_at_start']))}"
            + (f"; run took {r['duration_s']} s" if r.get("duration_s") else ""))


def charts(r: dict, out: Path) -> list[str]:
    names = []
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    groups = [(f"{broker}\n{who}", _get(r, f"{broker}.{who}")) for broker in ("redis", "rabbitmq")
              for who in ("shipped", "baseline", "raw") if _get(r, f"{broker}.{who}")]
    labels = [g[0] for g in groups]
    a.bar([i - 0.2 for i in range(len(groups))], [_get(g, "drain.drain_tasks_per_s") or 0 for _, g in groups], 0.4, label="drain")
    a.bar([i + 0.2 for i in range(len(groups))], [_get(g, "concurrent.end_to_end_tasks_per_s") or 0 for _, g in groups], 0.4,
          label="produced+consumed")
    a.set_xticks(range(len(groups)), labels, fontsize=8)
    a.set_ylabel("tasks/s")
    a.set_title("Short no-op tasks: throughput")
    a.legend()
    steady = [(lbl, g) for lbl, g in groups if _get(g, "steady")]
    for i, q in enumerate((50, 95, 99)):
        b.bar([j + (i - 1) * 0.27 for j in range(len(steady))],
              [_get(g, f"steady.enqueue_to_start_ms.p{q}") or 0 for _, g in steady], 0.27, label=f"p{q}")
    b.axhline(20, color="red", linestyle="--", linewidth=1, label="target p99 20 ms")
    b.set_xticks(range(len(steady)), [s[0] for s in steady], fontsize=8)
    b.set_ylabel("enqueue-to-start ms")
    b.set_yscale("log")
    b.set_title("Latency at a steady 200 tasks/s")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "tasks.png", dpi=90)
    plt.close(fig)
    names.append("tasks.png")

    webs = _get(r, "redis.http") or {}
    if webs:
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        labels = list(webs)
        for i, ep in enumerate(("healthz", "api")):
            a.bar([j + (i - 0.5) * 0.4 for j in range(len(labels))],
                  [_get(webs[n], f"{ep}.requests_per_s") or 0 for n in labels], 0.4, label=ep)
            b.bar([j + (i - 0.5) * 0.4 for j in range(len(labels))],
                  [_get(webs[n], f"{ep}.p99_ms") or 0 for n in labels], 0.4, label=ep)
        a.set_title("HTTP through the proxy: requests/s")
        b.set_title("HTTP: p99 latency (ms)")
        for ax in (a, b):
            ax.set_xticks(range(len(labels)), labels)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "http.png", dpi=90)
        plt.close(fig)
        names.append("http.png")
    return names


def write(r: dict, out: Path, readme: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(r, indent=2) + "\n")
    pngs = charts(r, out)
    heads = ["| Figure (same run, side by side) | Value | Target |", "|---|---|---|"]
    heads += [f"| {name} | {_fmt(value)} | {target} |" for name, value, target in headlines(r)]
    fp = r.get("footprint")
    fp_lines = []
    if fp and "error" not in fp:
        fp_lines = ["", "Footprint (bench/footprint.py): " + ", ".join(
            f"{k} {json.dumps(v)}" for k, v in fp.items()), ""]
    elif fp:
        fp_lines = ["", f"Footprint: {fp['error']}", ""]
    body = [
        "# Benchmark results", "",
        "Written by `make bench` (bench/run.py); method and findings in [README.md](README.md).", "",
        f"Machine: {machine_line(r)}.", "", *([r["note"], ""] if r.get("note") else []),
        "## Headline ratios", "", *heads, "",
        "## Short no-op tasks", "", *task_table(r), "",
        "## Round trips per task (drain)", "", *traffic_table(r), "",
        "## What each safety setting costs (Redis, drain)", "",
        *cost_table(r), "", "## Where the worker's CPU goes (py-spy during a drain, Redis)", "",
        *profile_table(r), "", "## I/O-bound and mixed load (Redis)", "", *other_table(r), "",
        "## HTTP (wrk through the proxy, TLS, keep-alive)", "", *http_table(r), *fp_lines, "",
        *[f"![{p}]({p})" for p in pngs], "",
    ]
    (out / "results.md").write_text("\n".join(body))
    if readme:
        update_readme(r, heads, pngs)


def update_readme(r: dict, heads: list[str], pngs: list[str]) -> None:
    path = ROOT / "README.md"
    text = path.read_text()
    section = "\n".join([
        README_START, "## Benchmarks", "",
        f"Latest benchmark run ({machine_line(r)}). Every headline is a ratio measured side by side in the "
        "same run; absolute numbers, method and findings: [docs/benchmarks/](docs/benchmarks/README.md).", "",
        *([r["note"], ""] if r.get("note") else []),
        *heads, "", *[f"![{p}](docs/benchmarks/{p})" for p in pngs], README_END])
    if README_START in text:
        text = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":  # re-render the docs of a results.json: python bench/report.py DIR
    import sys

    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs/benchmarks")
    write(json.loads((out_dir / "results.json").read_text()), out_dir,
          readme=out_dir.resolve() == (ROOT / "docs/benchmarks").resolve())
