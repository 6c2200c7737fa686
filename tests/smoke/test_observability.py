"""The observability profile, live (compose/observability.yaml, docs/observability.md): Prometheus scrapes
every target it finds, every panel of the Grafana dashboards (helm/django-celery/files/dashboards) finds
data in it, and a stopped worker pool fires CeleryPoolDown through to Alertmanager.

Runs when the stack has the profile (SMOKE_PROMETHEUS_URL, set by compose/scripts/test-stack.sh's
`observability` argument); Grafana is not needed: the panels' PromQL goes straight to Prometheus' API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from smokelib import QUEUES, exec_command, poll

pytestmark = pytest.mark.compose

PROMETHEUS = os.environ.get("SMOKE_PROMETHEUS_URL", "")
ALERTMANAGER = os.environ.get("SMOKE_ALERTMANAGER_URL", "")
BROKER = os.environ.get("SMOKE_BROKER", "redis")
DASHBOARDS = Path(__file__).resolve().parents[2] / "helm" / "django-celery" / "files" / "dashboards"
# Panels about one broker only say so in their title; the other broker's find nothing on this stack.
OTHER_BROKER = {"redis": "RabbitMQ:", "rabbitmq": "Redis:"}[BROKER]
# A scrape every 10 s and DNS discovery every 30 s (compose/observability/prometheus.yml).
TIMEOUT = 120


@pytest.fixture(scope="module", autouse=True)
def profile():
    if not PROMETHEUS:
        pytest.skip("SMOKE_PROMETHEUS_URL is not set: the stack runs without the observability profile")


def api(path: str, **params) -> dict:
    response = requests.get(PROMETHEUS + path, params=params, timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def query(expr: str) -> list[dict]:
    return api("/api/v1/query", query=expr)["result"]


def compose(compose_cmd, *args: str) -> str:
    return subprocess.run([*compose_cmd, *args], check=True, capture_output=True, text=True, timeout=400).stdout


def containers(compose_cmd, *services: str) -> int:
    return len(compose(compose_cmd, "ps", "-q", *services).split())


@pytest.fixture(scope="module")
def pools(compose_cmd) -> list[str]:
    return [s for s in compose(compose_cmd, "config", "--services").split() if s.startswith("worker-")]


def test_every_scrape_target_is_up(compose_cmd, pools):
    broker_job = {"redis": "redis", "rabbitmq": "rabbitmq"}[BROKER]
    expected = {"web": containers(compose_cmd, "web"), "celery-workers": containers(compose_cmd, *pools),
                broker_job: 1, "postgres": 1, "alertmanager": 1, "prometheus": 1}

    def jobs(targets):
        return {job: sum(1 for t in targets if t["labels"]["job"] == job and t["health"] == "up")
                for job in {t["labels"]["job"] for t in targets}}

    targets = poll(lambda: api("/api/v1/targets", state="active")["activeTargets"],
                   lambda ts: jobs(ts) == expected and all(t["health"] == "up" for t in ts),
                   TIMEOUT, 2, what=f"every target up: {expected}")
    assert jobs(targets) == expected


def panels():
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield pytest.param(panel["title"], target["expr"], id=f"{path.stem}:{panel['title']}")


def promql(expr: str) -> str:
    """A panel's query as Grafana would send it with every template variable at "All"."""
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$\{?(queue|task|pool)\}?", ".*", expr)


@pytest.fixture(scope="module")
def tasks_ran():
    """A task on every queue first, so the task and worker panels have something recent to show."""
    prefix = exec_command()
    done = subprocess.run([*prefix, "python", "-m", "django", "probe_queues", "--timeout", "90", *sorted(QUEUES)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


@pytest.mark.parametrize("title,expr", list(panels()))
def test_every_dashboard_panel_finds_data(tasks_ran, title, expr):
    if title.startswith(OTHER_BROKER):
        pytest.skip(f"about the other broker ({OTHER_BROKER[:-1]})")
    result = poll(lambda: query(promql(expr)), bool, TIMEOUT, 2, what=f"data for {promql(expr)}")
    assert result


@pytest.mark.disruptive
def test_a_stopped_worker_pool_fires_its_alert(compose_cmd, pools):
    # The pool to stop: images if the project has it (nothing else waits on it), else its last pool.
    service = "worker-images" if "worker-images" in pools else pools[-1]
    def answering() -> set[str]:
        return {r["metric"]["pool"] for r in query("deploykit_pool_workers") if float(r["value"][1]) > 0}

    before = poll(answering, bool, TIMEOUT, 2, what="deploykit_pool_workers")
    compose(compose_cmd, "stop", service)
    try:
        # The pool's label is the one that leaves the web tier's deploykit_pool_workers (or drops to 0).
        gone = poll(lambda: before - answering(), bool, TIMEOUT, 2, what=f"{service} gone from deploykit_pool_workers")
        (pool,) = gone
        # The test copy (`for: 0s`, tests/smoke/fast_rules.py) fires; the shipped rule, same expression, waits
        # out its 10 minutes as pending.
        fired = f'ALERTS{{alertname="CeleryPoolDown",pool="{pool}",copy="fast-test",alertstate="firing"}}'
        poll(lambda: query(fired), bool, TIMEOUT, 2, what=fired)
        # (Polled: the two groups are evaluated at different moments of the 10 s interval.)
        pending = f'ALERTS{{alertname="CeleryPoolDown",pool="{pool}",copy="",alertstate="pending"}}'
        poll(lambda: query(pending), bool, 60, 2, what=pending)
        assert not query(f'ALERTS{{alertname="CeleryPoolDown",pool="{pool}",copy="",alertstate="firing"}}')
        # And Alertmanager has it (after its group_wait).
        received = poll(lambda: [a for a in requests.get(ALERTMANAGER + "/api/v2/alerts", timeout=10).json()
                                 if a["labels"].get("alertname") == "CeleryPoolDown"
                                 and a["labels"].get("pool") == pool],
                        bool, TIMEOUT, 2, what="CeleryPoolDown in Alertmanager")
        assert received[0]["labels"]["severity"] == "page"
    finally:
        compose(compose_cmd, "up", "-d", "--wait", "--no-recreate", service)
