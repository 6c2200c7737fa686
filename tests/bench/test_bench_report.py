"""bench/report.py and the medians of bench/tasks_bench.py, on the committed full run
(docs/benchmarks/results.json) and on hand-made figures: what `make bench` writes can be re-rendered,
every headline ratio is computed from figures of the same run, and missing figures say so."""
import copy
import json
from pathlib import Path

import pytest
import report
from tasks_bench import median_of

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def results():
    return json.loads((ROOT / "docs" / "benchmarks" / "results.json").read_text())


def test_the_committed_run_renders_into_tables_and_charts(results, tmp_path):
    report.write(results, tmp_path, readme=False)
    md = (tmp_path / "results.md").read_text()
    for heading in ("## Headline ratios", "## Short no-op tasks", "## What each safety setting costs",
                    "## Where the worker's CPU goes", "## I/O-bound and mixed load", "## HTTP"):
        assert heading in md
    assert report.machine_line(results) in md
    for chart in ("tasks.png", "http.png"):
        assert (tmp_path / chart).read_bytes().startswith(PNG)
        assert f"![{chart}]({chart})" in md
    assert json.loads((tmp_path / "results.json").read_text()) == results


def test_headline_ratios_come_from_the_same_run(results):
    rows = {name: value for name, value, _ in report.headlines(results)}
    redis = results["redis"]
    shipped, baseline, raw = (redis[k]["drain"]["drain_tasks_per_s"] for k in ("shipped", "baseline", "raw"))
    assert rows["Short tasks, drain: shipped / peer baseline"] == round(shipped / baseline, 2)
    assert rows["Short tasks, drain: shipped / raw redis-py ceiling"] == round(shipped / raw, 2)
    assert rows["p99 enqueue-to-start at 200 tasks/s, shipped (ms)"] == \
        redis["shipped"]["steady"]["enqueue_to_start_ms"]["p99"]


def test_a_figure_missing_from_a_run_is_shown_as_not_available(results, tmp_path):
    partial = copy.deepcopy(results)
    del partial["redis"]["baseline"]
    partial.pop("rabbitmq", None)
    rows = {name: value for name, value, _ in report.headlines(partial)}
    assert rows["Short tasks, drain: shipped / peer baseline"] is None
    assert rows["RabbitMQ, drain: shipped / peer baseline"] is None
    report.write(partial, tmp_path, readme=False)
    assert "| Short tasks, drain: shipped / peer baseline | n/a |" in (tmp_path / "results.md").read_text()


def test_the_readme_section_is_replaced_in_place(results, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "ROOT", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Project\n\n{report.README_START}\nold figures\n{report.README_END}\n\n## After\n")
    heads = ["| Figure | Value | Target |", "|---|---|---|", "| x | 1 | >= 1 |"]
    for _ in range(2):
        report.update_readme(results, heads, ["tasks.png"])
    text = readme.read_text()
    assert text.count(report.README_START) == 1 and "old figures" not in text
    assert text.startswith("# Project\n") and text.endswith("## After\n")
    assert "| x | 1 | >= 1 |" in text and "![tasks.png](docs/benchmarks/tasks.png)" in text


def test_repetitions_are_reduced_to_their_element_wise_median():
    reps = [{"drain": {"tasks_per_s": 10.0, "p": {"p99": 5}}, "label": "a"},
            {"drain": {"tasks_per_s": 30.0, "p": {"p99": 1}}, "label": "b"},
            {"drain": {"tasks_per_s": 20.0, "p": {"p99": 9}}, "label": "c"}]
    assert median_of(reps) == {"drain": {"tasks_per_s": 20.0, "p": {"p99": 5}}, "label": "a"}


def test_per_task_traffic_is_the_difference_of_two_snapshots_divided_by_the_tasks():
    from tasks_bench import per_task

    before = {"packets": 1000, "commands": {"lpush": 5, "brpop": 10, "info": 1}}
    after = {"packets": 1600, "commands": {"lpush": 5, "brpop": 110, "evalsha": 200, "info": 2}}
    figures = per_task(before, after, 100)
    assert figures == {"packets_sent": 6.0, "redis_commands": 3.0,
                       "redis_commands_by_name": {"evalsha": 2.0, "brpop": 1.0}}
    # RabbitMQ: no Redis commands to count, packets still are.
    assert per_task({"packets": 0, "commands": {}}, {"packets": 50, "commands": {}}, 10)["redis_commands"] is None


def test_the_traffic_table_names_both_workers_and_says_when_not_measured(results):
    run = copy.deepcopy(results)
    for broker in ("redis", "rabbitmq"):
        for who in ("shipped", "baseline"):
            run.get(broker, {}).get(who, {}).get("drain", {}).pop("per_task", None)
    assert report.traffic_table(run) == ["(not measured in this run)"]
    run["redis"]["shipped"]["drain"]["per_task"] = {"packets_sent": 9.5, "redis_commands": 12.0,
                                                    "redis_commands_by_name": {"evalsha": 4.0}}
    run["redis"]["baseline"]["drain"]["per_task"] = {"packets_sent": 3.1, "redis_commands": 4.0,
                                                     "redis_commands_by_name": {"brpop": 1.0}}
    rows = report.traffic_table(run)
    assert "| redis | shipped | 9.50 | 12.00 | evalsha 4.0 |" in rows
    assert "| redis | baseline | 3.10 | 4.00 | brpop 1.0 |" in rows
