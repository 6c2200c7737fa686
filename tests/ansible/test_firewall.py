"""The fleet's private network, host firewall and database TLS (issue #20 item 4), on the running fleet.

Each data service admits only the app hosts: the same TCP probe succeeds from an app host and is
dropped from a host outside the group (a throw-away container on the fleet's network that is in no
inventory group; the test runner itself sends nothing to the fleet's addresses). Flower listens on
loopback on the web host: another host cannot reach its port, while https://…/flower/ works through
nginx with its basic auth."""
import json
import subprocess

import pytest

from conftest import group, host

NETWORK = "blueprint-fleet"
IMAGE = "blueprint/systemd-host:trixie"
PROBE_SECONDS = 3


def address_of(name: str) -> str:
    return host(name).interface("eth0").addresses[0]


def probe_from_host(name: str, address: str, port: int) -> str:
    """'open' (connected), 'refused' (RST: nothing listens) or 'dropped' (no answer: the firewall)."""
    rc = host(name).run(f"timeout {PROBE_SECONDS} bash -c '</dev/tcp/{address}/{port}'").rc
    return {0: "open", 124: "dropped"}.get(rc, "refused")


def probe_from_outsider(targets: list[tuple[str, int]]) -> dict[str, str]:
    """One throw-away container on the fleet's network, in no group, probes every target once (in parallel)."""
    script = " ".join(
        f"(timeout {PROBE_SECONDS} bash -c '</dev/tcp/{a}/{p}' 2>/dev/null; echo {a}:{p}=$?) &" for a, p in targets) + " wait"
    out = subprocess.run(["docker", "run", "--rm", "--network", NETWORK, "--entrypoint", "bash", IMAGE, "-c", script],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    codes = dict(line.split("=") for line in out.split())
    return {target: {"0": "open", "124": "dropped"}.get(code, "refused") for target, code in codes.items()}


@pytest.fixture(scope="module")
def infra():
    (name,) = group("db")
    return name, address_of(name)


DATA_PORTS = {5432: "postgresql", 6379: "redis", 9000: "object store"}


@pytest.fixture(scope="module")
def outsider(infra):
    """Every probe of the outsider at once: the data services' ports and Flower's (one container)."""
    (flower,) = group("flower")
    return probe_from_outsider([(infra[1], port) for port in DATA_PORTS] + [(address_of(flower), 5555)])


def test_every_host_loads_the_firewall_with_inbound_dropped():
    for name in group("fleet"):
        h = host(name)
        assert h.service("blueprint-firewall").is_enabled, name
        table = h.check_output("nft list table inet blueprint_firewall")
        assert "policy drop;" in table, (name, table)


@pytest.mark.parametrize("client", ["fleet-worker1", "fleet-web1"])
def test_data_services_answer_an_app_host(infra, client):
    name, address = infra
    for port, service in DATA_PORTS.items():
        assert probe_from_host(client, address, port) == "open", f"{service} ({port}) on {name} from {client}"


def test_data_services_drop_a_host_outside_the_app_groups(infra, outsider):
    name, address = infra
    result = {target: state for target, state in outsider.items() if target.startswith(f"{address}:")}
    assert result == {f"{address}:{port}": "dropped" for port in DATA_PORTS}, result


def test_pg_hba_admits_each_app_host_not_a_subnet(infra):
    name, _ = infra
    hba = host(name).file("/etc/postgresql/17/main/pg_hba.conf").content_string
    app_lines = [line.split() for line in hba.splitlines() if line.startswith("host") and " app " in f" {line} "]
    apps = sorted({address_of(h) for h in group("web") + group("workers") + group("beat") + group("flower")})
    assert sorted(fields[3] for fields in app_lines) == sorted(f"{a}/32" for a in apps), hba


def test_flower_listens_on_loopback_only_and_other_hosts_cannot_reach_it(web, secrets, outsider):
    (flower,) = group("flower")
    h = host(flower)
    assert h.socket("tcp://127.0.0.1:5555").is_listening
    assert not h.socket("tcp://0.0.0.0:5555").is_listening
    address = address_of(flower)
    assert not h.socket(f"tcp://{address}:5555").is_listening
    assert probe_from_host("fleet-worker1", address, 5555) == "dropped"
    assert outsider[f"{address}:5555"] == "dropped", outsider
    # ...while nginx on that host serves it over HTTPS, with Flower's basic auth.
    assert web.get(f"{web.base}/flower/api/workers", timeout=10).status_code == 401
    response = web.get(f"{web.base}/flower/api/workers", auth=("admin", secrets["vault_flower_password"]), timeout=30)
    assert response.status_code == 200, response.text[:300]
    json.loads(response.text)


def test_app_database_connections_are_tls_verified_and_plaintext_is_refused(infra):
    """PostgreSQL between hosts runs over TLS, the certificate checked (sslmode=verify-full against the
    db host's certificate for its private address); a plaintext login from an app host is refused."""
    name, address = infra
    worker = host("fleet-worker1")
    env = worker.file("/etc/app/app.env").content_string
    assert f"@{address}:5432/" in env and "sslmode=verify-full&sslrootcert=/etc/app/db-ca.crt" in env
    script = ("import os, re, psycopg\n"
              "url = re.sub(r'[?].*', '', os.environ['DATABASE_URL'])\n"
              "try:\n"
              "    psycopg.connect(url + '?sslmode=disable', connect_timeout=5).close()\n"
              "    print('PLAINTEXT ACCEPTED')\n"
              "except psycopg.OperationalError as error:\n"
              "    print('REFUSED', error)\n"
              "with psycopg.connect(os.environ['DATABASE_URL'], connect_timeout=5) as c:\n"
              "    print('SSL', c.execute('select ssl from pg_stat_ssl where pid = pg_backend_pid()').fetchone()[0])\n")
    out = worker.check_output(f"/usr/local/sbin/app-run python -c \"{script}\"")
    assert "REFUSED" in out and "no encryption" in out, out
    assert "SSL True" in out, out
    # Every connection the app processes hold at this moment (beat's lock connection at least) is encrypted.
    counts = host(name).check_output(
        "sudo -u postgres psql -Atc \"select count(*) filter (where s.ssl), count(*) from pg_stat_activity a "
        "join pg_stat_ssl s using (pid) where a.usename = 'app' and a.client_addr is not null\"")
    encrypted, total = (int(n) for n in counts.split("|"))
    assert encrypted == total, counts
