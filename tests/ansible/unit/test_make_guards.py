"""A deploy names its environment (issue #20 item 8): `make deploy`, `deploy-check`, `rollback` and
`deploy-helm` without ENV refuse with a usage line before anything runs, instead of landing on staging."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def make(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ENV", "MAKEFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("target", ["deploy", "deploy-check", "rollback"])
def test_an_ansible_deploy_without_env_is_refused(target):
    result = make(target)
    assert result.returncode == 2
    assert f"usage: make {target} ENV=<production|staging>" in result.stderr
    assert "ansible-playbook" not in result.stdout + result.stderr


def test_a_helm_deploy_without_env_is_refused_before_any_tool():
    result = make("deploy-helm")
    assert result.returncode == 2 and "usage: make deploy-helm ENV=<production|staging>" in result.stderr
    assert "helm upgrade" not in result.stdout


def test_an_unknown_inventory_is_named():
    result = make("deploy-check", "ENV=nowhere")
    assert result.returncode == 2 and "no inventory ansible/inventories/nowhere/hosts.yml" in result.stderr
