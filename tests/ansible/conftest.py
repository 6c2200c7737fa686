"""Fixtures for the Ansible fleet tests (run by tests/ansible/run.sh after the playbook).

testinfra reaches every host through the same inventory as the playbook (ansible backend, which
uses `docker exec` for the community.docker connection). HTTP checks go through nginx on the web
host's HTTPS port, published on 127.0.0.1 only.
"""

import json
import os
import pathlib
import subprocess

import pytest
import requests
import testinfra
import urllib3
from polling import wait_until
from testinfra.utils.ansible_runner import AnsibleRunner

ROOT = pathlib.Path(__file__).resolve().parents[2]
INVENTORY = str(ROOT / "ansible/inventories/test/hosts.yml")
SECRETS = pathlib.Path(os.environ.get("FLEET_SECRETS", ROOT / "build/ansible-test/secrets.yml"))
SERVER_NAME = "app.fleet.test"
WEB_CONTAINER = "fleet-web1"

# The fleet's certificate is self-signed (tests only); TLS itself is checked, the issuer is not.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def group(name: str) -> list[str]:
    return AnsibleRunner(INVENTORY).get_hosts(name)


def host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


@pytest.fixture(scope="session")
def secrets() -> dict:
    return json.loads(SECRETS.read_text())


@pytest.fixture(scope="session")
def base_url() -> str:
    out = subprocess.run(["docker", "port", WEB_CONTAINER, "443/tcp"], check=True, capture_output=True, text=True)
    address = out.stdout.split()[0]
    assert address.startswith("127.0.0.1:"), f"HTTPS must be published on loopback only, got {address}"
    return f"https://{address}"


@pytest.fixture(scope="session")
def status():
    """/status read on the web host (nginx refuses it): gunicorn on loopback, through the release's app-run."""
    from internal import internal_json

    return lambda: internal_json(["docker", "exec", WEB_CONTAINER, "/usr/local/sbin/app-run"], "/status")


@pytest.fixture(scope="session")
def web(base_url):
    """A requests session to nginx on the web host, with the app's host name."""
    session = requests.Session()
    session.trust_env = False  # no proxy, and no CA bundle from the environment overriding verify
    session.verify = False
    session.headers["Host"] = SERVER_NAME
    session.base = base_url
    return session


def run_task(web, task: str, args: list, timeout: float = 60) -> dict:
    created = web.post(f"{web.base}/api/tasks/", json={"task": task, "args": args}, timeout=10)
    assert created.status_code == 202, created.text
    url = f"{web.base}{created.json()['url']}"

    def finished():
        state = web.get(url, timeout=10).json()
        return state if state["state"] in ("SUCCESS", "FAILURE") else None

    return wait_until(finished, timeout, what=f"task {task}{args}")
