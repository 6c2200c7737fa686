"""The fleet's private network and host firewall without a fleet (issue #20 item 4): which address each
host's services bind (ansible/filter_plugins/private_network.py, used by playbooks/preflight.yml) and
what the firewall role's rules admit, rendered from an inventory's groups by ansible-playbook on the
control machine (checked by `nft -c` where nft may run)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "ansible" / "filter_plugins"))
from private_network import private_address_choice  # noqa: E402

VPS = {"hostname": "vps1", "default_ipv4": {"address": "203.0.113.10"},
       "all_ipv4_addresses": ["203.0.113.10", "10.20.0.5"]}


def test_the_public_default_address_of_a_vps_is_refused_naming_the_setting():
    choice = private_address_choice(VPS)
    assert choice["address"] == ""
    assert "203.0.113.10" in choice["problem"] and "public address" in choice["problem"]
    assert "private_network" in choice["problem"] and "private_address" in choice["problem"]


def test_private_network_picks_the_address_inside_it():
    assert private_address_choice(VPS, private_network="10.20.0.0/16") == {"address": "10.20.0.5", "problem": ""}


def test_private_address_wins_and_must_belong_to_the_host():
    assert private_address_choice(VPS, private_address="10.20.0.5")["address"] == "10.20.0.5"
    assert "not an address of vps1" in private_address_choice(VPS, private_address="10.20.0.9")["problem"]
    assert "outside private_network" in private_address_choice(
        VPS, private_address="10.20.0.5", private_network="192.168.0.0/24")["problem"]


def test_no_address_in_private_network_and_a_public_network_are_refused():
    assert "no IPv4 address in private_network" in private_address_choice(VPS, private_network="192.168.1.0/24")["problem"]
    assert "not a private range" in private_address_choice(VPS, private_network="203.0.113.0/24")["problem"]
    # Stated on purpose: a provider network that is private to the fleet but uses public addresses.
    assert private_address_choice(VPS, private_network="203.0.113.0/24", allow_public=True)["address"] == "203.0.113.10"


def test_a_private_default_address_is_the_default():
    facts = {"default_ipv4": {"address": "172.18.0.2"}, "all_ipv4_addresses": ["172.18.0.2"]}
    assert private_address_choice(facts) == {"address": "172.18.0.2", "problem": ""}
    assert private_address_choice({"default_ipv4": {"address": "100.64.1.2"}})["address"] == "100.64.1.2"


def test_a_one_host_stack_uses_loopback_and_loopback_may_be_stated():
    assert private_address_choice(VPS, single_host=True) == {"address": "127.0.0.1", "problem": ""}
    assert private_address_choice(VPS, private_address="127.0.0.1")["address"] == "127.0.0.1"
    # An explicit setting still wins on a one-host stack.
    assert private_address_choice(VPS, private_network="10.20.0.0/16", single_host=True)["address"] == "10.20.0.5"


INVENTORY = {
    "all": {
        "vars": {"fleet_app_addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"], "fleet_web_addresses": ["10.0.0.2"]},
        "children": {
            "db": {"hosts": {"infra": {"private_address": "10.0.0.1"}}},
            "broker": {"hosts": {"infra": {}}},
            "storage": {"hosts": {"infra": {}}},
            "web": {"hosts": {"web1": {"private_address": "10.0.0.2"}}},
            "flower": {"hosts": {"web1": {}}},
            "beat": {"hosts": {"web1": {}}},
            "workers": {"hosts": {"worker1": {"private_address": "10.0.0.3"}, "worker2": {"private_address": "10.0.0.4"}}},
        },
    }
}
RENDER = """
- hosts: all
  gather_facts: false
  connection: local
  vars_files: [{role}/defaults/main.yml, {role}/vars/main.yml]
  tasks:
    - ansible.builtin.template:
        src: {role}/templates/nftables-blueprint.nft.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.nft"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("firewall")
    (tmp / "hosts.json").write_text(json.dumps(INVENTORY))
    (tmp / "play.yml").write_text(RENDER.format(role=ROOT / "ansible/roles/firewall", out=tmp))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp / "hosts.json"), str(tmp / "play.yml")],
        capture_output=True, text=True, timeout=180, cwd=tmp,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp), "ANSIBLE_LOCAL_TEMP": str(tmp / ".ansible-tmp"),
             "ANSIBLE_NOCOLOR": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return {name: (tmp / f"{name}.nft").read_text() for name in ("infra", "web1", "worker1")}


def accepts(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().endswith('"') and " accept comment " in line]


def test_data_services_admit_only_the_app_hosts(rules):
    infra = accepts(rules["infra"])
    app = "{ 10.0.0.2, 10.0.0.3, 10.0.0.4 }"
    assert f'ip saddr {app} tcp dport 5432 accept comment "postgresql from the app hosts"' in infra
    assert f'ip saddr {app} tcp dport 6379 accept comment "broker from the app hosts"' in infra
    assert f'ip saddr {app} tcp dport 9000 accept comment "object store from the app hosts"' in infra
    assert not any("dport 80 " in r or "dport 443 " in r for r in infra)


def test_web_admits_http_from_anywhere_and_flower_stays_closed_on_loopback(rules):
    web = accepts(rules["web1"])
    assert 'tcp dport 80 accept comment "http"' in web and 'tcp dport 443 accept comment "https"' in web
    assert not any("5555" in r or "5432" in r for r in web)


def test_every_host_drops_by_default_and_admits_ssh(rules):
    for text in rules.values():
        assert "policy drop;" in text and 'tcp dport 22 accept comment "ssh"' in text
    assert [r for r in accepts(rules["worker1"]) if "DHCP" not in r] == ['tcp dport 22 accept comment "ssh"']


def test_rules_load_in_nft_check_mode(rules, tmp_path):
    nft = shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)
    if not nft:
        pytest.skip("nft is not installed on this machine (the fleet test loads the rules for real)")
    for name, text in rules.items():
        path = tmp_path / f"{name}.nft"
        path.write_text(text)
        result = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True)
        if result.returncode != 0 and "Operation not permitted" in result.stderr:
            pytest.skip("nft -c needs CAP_NET_ADMIN here")
        assert result.returncode == 0, (name, result.stderr)
