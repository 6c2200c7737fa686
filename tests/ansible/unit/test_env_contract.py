"""The Ansible env file follows the configuration contract (issue #17 goal 6): a variable declared once
and regenerated (`make contract-render`) is accepted in app_env_extra and lands in /etc/app/app.env; an
undeclared one fails the play naming the key; the project's own variables (app_env_project) pass
unchecked, and a contract name there is refused. The role's own validate.yml and app.env.j2 run, with
ansible-playbook against localhost, on a copy of the role whose allow-list was regenerated."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploykit import contract
from deploykit.contract import render

ROOT = Path(__file__).resolve().parents[3]
PROJECT = ROOT / "app" / "contract.toml"
DUMMY = '''
[[variable]]
name = "DUMMY_ANSIBLE_KNOB"
type = "str"
default = "x"
owner = "app"
section = "E-mail"
doc = "A dummy the Ansible env file carries."
'''
# What validate.yml and app.env.j2 read besides the role's defaults (the inventory's and the build's part).
EXTRA = {
    "app_secret_key": "k" * 50, "app_db_password": "p" * 16, "app_broker_password": "b" * 16,
    "app_flower_password": "f" * 12, "app_storage_backend": "filesystem", "app_db_host": "db",
    "app_broker_host": "broker", "app_settings_module": "config.settings", "ansible_managed": "test",
}
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.import_role:
        name: app
        tasks_from: validate.yml
    - ansible.builtin.template:
        src: {template}
        dest: {dest}
        mode: "0600"
"""


def regenerated_role(tmp_path: Path) -> Path:
    """A copy of the app role whose contract-names.yml is generated from the contract plus the dummy."""
    shutil.copytree(ROOT / "ansible" / "roles" / "app", tmp_path / "ansible" / "roles" / "app")
    project = tmp_path / "contract.toml"
    project.write_text(PROJECT.read_text() + DUMMY)
    names = tmp_path / render.ANSIBLE_NAMES
    names.write_text(render.GENERATORS[render.ANSIBLE_NAMES](contract.load(project=project), names.read_text()))
    return tmp_path / "ansible" / "roles" / "app"


def play(role: Path, tmp_path: Path, **variables) -> tuple[subprocess.CompletedProcess, Path]:
    dest = tmp_path / "app.env"
    book = tmp_path / "play.yml"
    book.write_text(PLAYBOOK.format(template=role / "templates/app.env.j2", dest=dest))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({**EXTRA, **variables}))
    # The copy is the only role on the path: its lookup('file', 'contract-names.yml') reads the regenerated list.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
         "-e", f"@{extra}", "-e", "{\"groups\": {\"web\": [], \"workers\": [], \"db\": [\"db\"], \"broker\": [\"broker\"]}}",
         str(book)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(role.parent), "HOME": str(tmp_path),
             "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-tmp"), "ANSIBLE_NOCOLOR": "1"})
    return result, dest


@pytest.fixture(scope="module")
def role(tmp_path_factory):
    return regenerated_role(tmp_path_factory.mktemp("role"))


def test_a_declared_variable_reaches_the_env_file(role, tmp_path):
    result, dest = play(role, tmp_path, app_env_extra={"DUMMY_ANSIBLE_KNOB": "hello"},
                        app_env_project={"SHOP_CURRENCY": "EUR"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = dest.read_text().splitlines()
    assert "DUMMY_ANSIBLE_KNOB='hello'" in lines and "SHOP_CURRENCY='EUR'" in lines


def test_an_undeclared_variable_fails_the_play_naming_it(role, tmp_path):
    result, dest = play(role, tmp_path, app_env_extra={"DUMMY_UNDECLARED_KNOB": "hello"})
    assert result.returncode != 0 and not dest.exists()
    assert "app_env_extra.DUMMY_UNDECLARED_KNOB is not a variable of the configuration contract" in result.stdout


def test_the_shipped_allow_list_lacks_the_dummy_until_regenerated(tmp_path):
    shipped = (ROOT / render.ANSIBLE_NAMES).read_text()
    assert "DUMMY_ANSIBLE_KNOB" not in shipped and "DEPLOYKIT_CONSUMED_QUEUES" in shipped


def test_a_contract_name_in_app_env_project_is_refused(role, tmp_path):
    result, _ = play(role, tmp_path, app_env_project={"DJANGO_SECRET_KEY": "y" * 50})
    assert result.returncode != 0
    assert "app_env_project.DJANGO_SECRET_KEY: a variable of the configuration contract: set it in app_env_extra" in result.stdout


OLD_KEY = "o" * 20 + "ld-previous-key-" + "0123456789" * 2


def test_secret_key_fallbacks_reach_the_env_file_joined_empty_by_default(role, tmp_path):
    """app_secret_key_fallbacks (rotating the key, docs/configuration.md#rotating-secrets): the previous keys,
    comma-joined into DJANGO_SECRET_KEY_FALLBACKS; none by default, an empty value (the app reads: no fallback)."""
    result, dest = play(role, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "DJANGO_SECRET_KEY_FALLBACKS=''" in dest.read_text().splitlines()
    second = "s" * 50
    result, dest = play(role, tmp_path, app_secret_key_fallbacks=[OLD_KEY, second])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"DJANGO_SECRET_KEY_FALLBACKS='{OLD_KEY},{second}'" in dest.read_text().splitlines()


@pytest.mark.parametrize("fallbacks", [["k" * 50], ["short"], ["change-me-" + "x" * 50], [OLD_KEY + ",x"], OLD_KEY])
def test_bad_secret_key_fallbacks_fail_the_play_naming_the_variable(role, tmp_path, fallbacks):
    """The current key (EXTRA's app_secret_key), a short one, a placeholder, a comma, a string instead of a list."""
    result, dest = play(role, tmp_path, app_secret_key_fallbacks=fallbacks)
    assert result.returncode != 0 and not dest.exists()
    assert "Invalid app_secret_key_fallbacks (DJANGO_SECRET_KEY_FALLBACKS)" in result.stdout
    assert OLD_KEY not in result.stdout and "k" * 50 not in result.stdout
