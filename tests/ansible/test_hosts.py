"""testinfra against every fleet host: services, sockets, users, file modes, secrets, hardening."""

import pytest

from conftest import group, host

INFRA_SERVICES = ["postgresql@17-main", "redis-server", "s3"]
WEB_SERVICES = ["nginx", "app-web"]


def hosts_of(name):
    return pytest.mark.parametrize("name", group(name))


def private_address(h) -> str:
    return h.interface("eth0").addresses[0]


def assert_running_and_enabled(h, *services) -> None:
    for service in services:
        assert h.service(service).is_running, service
        assert h.service(service).is_enabled, service


@hosts_of("db")
def test_infra_services_running_and_enabled(name):
    assert_running_and_enabled(host(name), *INFRA_SERVICES)


@hosts_of("db")
def test_infra_listens_on_loopback_and_private_address_only(name):
    h = host(name)
    address = private_address(h)
    for port in (5432, 6379):
        assert h.socket(f"tcp://127.0.0.1:{port}").is_listening
        assert h.socket(f"tcp://{address}:{port}").is_listening
        assert not h.socket(f"tcp://0.0.0.0:{port}").is_listening, f"port {port} open on every interface"
    assert h.socket(f"tcp://{address}:9000").is_listening
    assert not h.socket("tcp://0.0.0.0:9000").is_listening


@hosts_of("web")
def test_web_services_and_sockets(name):
    h = host(name)
    assert_running_and_enabled(h, *WEB_SERVICES)
    assert h.socket("tcp://0.0.0.0:443").is_listening
    assert h.socket("tcp://0.0.0.0:80").is_listening
    # gunicorn is reachable through nginx only, on the socket systemd holds (app-web.socket), which it
    # inherits (LISTEN_FDS) instead of binding its own: one listener, shared by systemd and gunicorn.
    assert_running_and_enabled(h, "app-web.socket")
    assert h.socket("tcp://127.0.0.1:8000").is_listening
    assert not h.socket("tcp://0.0.0.0:8000").is_listening
    listeners = h.check_output("ss -Hltnpe 'sport = :8000'").splitlines()
    assert len(listeners) == 1 and '"systemd",pid=1,' in listeners[0], listeners
    inode = listeners[0].split(" ino:")[1].split()[0]
    # gunicorn's master holds that very socket (root in the fleet's containers cannot read another
    # user's fds: look as the app user).
    master = h.check_output("systemctl show -p MainPID --value app-web").strip()
    fds = h.check_output(f"setpriv --reuid=app --regid=app --init-groups find /proc/{master}/fd -lname 'socket:*' "
                         "-printf '%l\\n'")
    assert f"socket:[{inode}]" in fds.split(), (inode, fds)
    # No database or broker on a web host.
    assert not h.socket("tcp://0.0.0.0:5432").is_listening
    assert not h.socket("tcp://0.0.0.0:6379").is_listening


@hosts_of("beat")
def test_beat_runs_on_its_single_host(name):
    assert len(group("beat")) == 1
    assert_running_and_enabled(host(name), "app-beat")


@hosts_of("workers")
def test_workers_run_and_listen_nowhere(name):
    h = host(name)
    assert_running_and_enabled(h, "app-worker@default-1")
    listening = [s for s in h.socket.get_listening_sockets() if s.startswith("tcp://")
                 and not s.startswith("tcp://127.0.0.11:")]  # Docker's embedded DNS, not ours
    assert listening == [], f"a worker host should not listen on TCP: {listening}"
    assert not h.service("app-web").is_running
    assert not h.service("app-beat").is_running


@hosts_of("workers")
def test_worker_units_carry_their_pools_resource_limits(name):
    # The test inventory's pool: memory_max 768M, cpu_quota 100% (one CPU second per second).
    props = dict(line.split("=", 1) for line in host(name).check_output(
        "systemctl show app-worker@default-1 -p MemoryMax -p CPUQuotaPerSecUSec").splitlines())
    assert props == {"MemoryMax": str(768 * 1024 * 1024), "CPUQuotaPerSecUSec": "1s"}, props


@pytest.mark.parametrize("name", group("web") + group("workers"))
def test_app_processes_run_as_the_app_user_with_hardening(name):
    h = host(name)
    units = ["app-web"] if name in group("web") else ["app-worker@default-1"]
    for unit in units:
        props = dict(line.split("=", 1) for line in
                     h.check_output(f"systemctl show {unit} -p User -p NoNewPrivileges -p ProtectSystem "
                                    "-p PrivateTmp -p Restart -p TimeoutStopUSec -p MainPID -p KillMode").splitlines())
        assert props["User"] == "app"
        assert props["NoNewPrivileges"] == "yes"
        assert props["ProtectSystem"] == "strict"
        assert props["PrivateTmp"] == "yes"
        assert props["Restart"] in ("always", "on-failure")
        assert props["KillMode"] == "mixed"  # TERM to the main process: warm shutdown
        assert h.check_output(f"ps -o user= -p {props['MainPID']}").strip() == "app"
        if unit.startswith("app-worker"):
            # Warm shutdown bound longer than the hard task time limit (60 s in the test inventory).
            assert props["TimeoutStopUSec"] in ("1min 30s", "90s"), props["TimeoutStopUSec"]


@pytest.mark.parametrize("name", group("web") + group("workers"))
def test_release_layout_and_modes(name):
    h = host(name)
    current = h.file("/srv/app/current")
    assert current.is_symlink
    release = h.file(current.linked_to)
    assert release.user == "root" and release.mode & 0o022 == 0, "code must not be writable by the app"
    assert h.file(f"{current.linked_to}/.complete").exists
    env = h.file("/etc/app/app.env")
    assert (env.user, env.group, env.mode) == ("root", "app", 0o640)
    assert h.file("/etc/app").mode == 0o750
    state = h.file("/var/lib/app")
    assert (state.user, state.mode) == ("app", 0o750)
    # The app user cannot write its code or its configuration.
    assert h.run(f"setpriv --reuid=app --regid=app --init-groups test -w {current.linked_to}/app").rc != 0
    assert h.run("setpriv --reuid=app --regid=app --init-groups test -w /etc/app/app.env").rc != 0


@pytest.mark.parametrize("name", group("fleet"))
def test_no_secret_is_world_readable(name, secrets):
    h = host(name)
    # Every file under the configuration and data trees that others may read must not hold a secret.
    values = [v for k, v in secrets.items() if k != "vault_s3_access_key_id"]
    pattern = " ".join(f"-e {v}" for v in values)
    found = h.run(f"find /etc /srv /var/lib/app /usr/local -xdev -type f -perm -o=r "
                  f"-exec grep -l -F {pattern} {{}} + 2>/dev/null")
    assert found.stdout.strip() == "", f"world-readable files holding a secret: {found.stdout}"
    for path, mode in (("/etc/s3/s3.env", 0o600), ("/etc/nginx/tls/app.key", 0o600), ("/etc/redis/redis.conf", 0o640)):
        f = h.file(path)
        if f.exists:
            assert f.mode & 0o007 == 0 and f.mode <= mode, f"{path} mode {oct(f.mode)}"
