"""Fixtures of the smoke suite (tests/smoke). Target from SMOKE_* variables; see smokelib.Target."""

from __future__ import annotations

import os
import shlex

import pytest

from smokelib import Target


def pytest_configure(config):
    config.addinivalue_line("markers", "compose: needs the Docker Compose stack itself (docker inspect, scaling)")
    config.addinivalue_line("markers", "browser: drives Debian's headless Chromium through Playwright")
    config.addinivalue_line("markers", "disruptive: changes the running stack (scales/stops workers); runs last")
    config.addinivalue_line("markers", "restore: replaces the stack's data (backup, destroy, restore); runs after "
                            "every other test, the disruptive ones included")
    config.addinivalue_line("markers", "reference: exercises the reference project's own API (app/); the generic "
                            "suite, run against any project, is `-m 'not reference'`")


def pytest_collection_modifyitems(config, items):
    # Stable sort: disruptive tests move to the end, the restore test after them; the rest keep their order.
    items.sort(key=lambda item: (item.get_closest_marker("disruptive") is not None,
                                 item.get_closest_marker("restore") is not None))


@pytest.fixture(scope="session")
def target() -> Target:
    return Target.from_env()


@pytest.fixture(scope="session")
def http(target):
    with target.session() as session:
        yield session


@pytest.fixture(scope="session")
def flower_auth(target):
    if not target.flower_user or not target.flower_password:
        pytest.fail("SMOKE_FLOWER_USER and SMOKE_FLOWER_PASSWORD are required")
    return (target.flower_user, target.flower_password)


@pytest.fixture(scope="session")
def compose_cmd() -> list[str]:
    """The `docker compose -p ... -f ... --env-file ...` command of the stack under test."""
    command = os.environ.get("SMOKE_COMPOSE")
    if not command:
        pytest.skip("SMOKE_COMPOSE is not set: not a Compose target")
    return shlex.split(command)
