"""Fixtures of `make test-matrix`, loaded with `-p matrix_fixtures`: the suite runs with --noconftest, so
that tests/app's deploykit tests run without the reference project's conftest. The real redis-server and
PostgreSQL are tests/app/app_services.py's, as in `make test-app`."""

from __future__ import annotations

import importlib.metadata as metadata
import platform

import pytest

from app_services import Postgres, Redis


def pytest_report_header(config):
    # Which end this run is, in the log: the versions actually installed.
    found = ", ".join(f"{name} {metadata.version(name)}" for name in ("Django", "celery", "kombu", "deploykit"))
    return f"deploykit matrix: Python {platform.python_version()}, {found}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = Redis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    server = Postgres().start()
    yield server
    server.stop()
