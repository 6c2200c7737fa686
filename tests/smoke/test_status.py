"""Generic (any project): deploykit's /status, read from inside the deployment, sees the database, the
broker, a worker for every queue, and beat's tick, which deploykit itself schedules (no project code
involved). /status and /metrics are refused through the public entry, however the path is spelled."""

from __future__ import annotations

import pytest
from internal import internal_get, internal_json

from smokelib import QUEUES, exec_command, poll, served_queues

TIMEOUT = 90


def spellings(endpoint: str) -> list[str]:
    """/status, /status/, //status, /%73tatus (the first letter percent-encoded)."""
    name = endpoint.lstrip("/")
    return [f"/{name}", f"/{name}/", f"//{name}", "/%" + format(ord(name[0]), "02x") + name[1:]]


@pytest.fixture(scope="module")
def inside() -> list[str]:
    prefix = exec_command()
    if not prefix:
        pytest.fail("SMOKE_EXEC (or SMOKE_COMPOSE) is required: how to run a command in an app container")
    return prefix


def status(inside) -> dict:
    return internal_json(inside, "/status")


def test_beat_periodic_task_ran_within_its_interval(inside):
    # /status reads the last run of beat's periodic tick task (executed by a worker).
    body = poll(lambda: status(inside)["beat"], lambda b: b.get("ok") and b.get("last_run"), TIMEOUT, interval=2,
                what="beat's tick")
    assert body["age_seconds"] <= 60, body


def test_status_sees_database_broker_and_workers(inside):
    body = poll(lambda: status(inside), lambda b: b["ok"], TIMEOUT, interval=2, what="/status ok")
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert served_queues(body["workers"]) >= QUEUES, body["workers"]


@pytest.mark.parametrize("endpoint", ["/status", "/metrics"])
def test_operator_endpoints_are_refused_publicly_and_served_inside(http, target, inside, endpoint):
    for path in spellings(endpoint):
        public = http.get(target.url(path), timeout=15, allow_redirects=False)
        assert public.status_code in (403, 404), f"{path} through {target.base_url}: {public.status_code}"
        code, body = internal_get(inside, path)
        assert code in (200, 503) and ("deploykit_" in body or '"database"' in body), f"{path} inside: {code}"
