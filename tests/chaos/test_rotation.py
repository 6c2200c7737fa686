"""Credential rotation without downtime (docs/configuration.md#rotating-secrets): `compose/scripts/rotate-secret.sh`
(what `make rotate-secret` runs) rotates the database, broker and Flower passwords in one go while clients
send requests through the proxy (each on a new connection, no retries: tests/lib/load.py) and side-effect
tasks run (one row per run, counted per task id). Afterwards: no request failed, every accepted task
succeeded, every side-effect task ran exactly once, every app container was replaced, the env file holds
only the new passwords, the old ones are refused and the new ones work, and the next `up` leaves the
database and the broker running (their first password is a Compose secret, not part of their config)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter

import pytest

from conftest import (BROKER, PROJECT, compose_cmd, count_runs, env_value, report_runs, run,
                      send_side_effects)
from load import Load

NAMES = ["POSTGRES_PASSWORD", f"{BROKER.upper()}_PASSWORD", "FLOWER_PASSWORD"]
LOGIN_USERS = {"POSTGRES_PASSWORD": "POSTGRES", "RABBITMQ_PASSWORD": "RABBITMQ"}
APP_SERVICES = ("web", "worker-default", "worker-io", "worker-images", "beat", "flower")
RATE = 10  # requests/s in all: a steady trickle, not a load test


def login_user(stack, kind: str) -> str:
    return env_value(stack, f"{kind}_LOGIN_USER") or env_value(stack, f"{kind}_USER") or "app"


def postgres_login(stack, user: str, password: str) -> str:
    """Log in over TCP (password authentication, as the app does); the result or the refusal."""
    result = stack.compose("exec", "-T", "-e", f"PGPASSWORD={password}", "postgres",
                           "psql", "-h", "127.0.0.1", "-U", user, "-d", env_value(stack, "POSTGRES_DB") or "app",
                           "-tAc", "SELECT current_user", check=False)
    return result.stdout.strip() if result.returncode == 0 else "refused: " + result.stderr.strip()[-200:]


def redis_auth(stack, password: str) -> str:
    """PING as the default user with `password`: PONG, or the refusal."""
    result = stack.compose("exec", "-T", "-e", f"REDISCLI_AUTH={password}", "redis", "redis-cli", "--no-auth-warning",
                           "ping", check=False)
    return (result.stdout + result.stderr).strip()


def rabbitmq_login(stack, user: str, password: str) -> str:
    result = stack.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "--quiet", "authenticate_user", user, password,
                           check=False)
    return "ok" if result.returncode == 0 else "refused"


def flower_status(stack, password: str) -> int:
    return stack.http.get(stack.base + "/flower/", auth=(env_value(stack, "FLOWER_USER"), password), timeout=15).status_code


def side_effect_trickle(stack, sent: list[str], stopping: threading.Event, errors: Counter) -> None:
    """A few side-effect tasks every few seconds, from a Django shell in a worker container; an exec that
    meets a worker container being replaced is counted and tried again (its tasks, if any, are not counted)."""
    while not stopping.is_set():
        try:
            sent.extend(send_side_effects(stack, 3, seconds=1))
        except Exception as exc:  # noqa: BLE001 - the container went away mid-exec
            errors[type(exc).__name__] += 1
        stopping.wait(3)


@pytest.mark.skipif(BROKER not in ("redis", "rabbitmq"), reason="a broker this test does not know")
def test_rotating_database_broker_and_flower_passwords_under_load(stack):
    old = {name: env_value(stack, name) for name in NAMES}
    old_users = {name: login_user(stack, kind) for name, kind in LOGIN_USERS.items() if name in NAMES}
    before = {service: set(stack.containers(service)) for service in (*APP_SERVICES, "postgres", BROKER)}
    assert flower_status(stack, old["FLOWER_PASSWORD"]) == 200

    sent: list[str] = []
    exec_errors: Counter = Counter()
    stopping = threading.Event()
    trickle = threading.Thread(target=side_effect_trickle, args=(stack, sent, stopping, exec_errors), daemon=True)
    started = time.monotonic()
    with Load(stack.base, stack.http.verify, rate=RATE, clients=4) as load:
        trickle.start()
        time.sleep(5)  # traffic before the rotation
        rotated = run("compose/scripts/rotate-secret.sh", str(stack.env_file), *NAMES, "--",
                      *compose_cmd(stack.env_file, BROKER, project=PROJECT), env=stack.env, timeout=900)
        rotation_seconds = time.monotonic() - started - 5
        time.sleep(5)  # and after it
        stopping.set()
        trickle.join(120)
    print(rotated.stdout[-3000:])
    assert rotated.returncode == 0, rotated.stdout[-3000:] + rotated.stderr[-3000:]

    # Requests and tasks.
    answers = load.answers
    counts = count_runs(stack, sent, timeout=180)
    report_runs("rotation-under-load", counts, requests=load.total, failed=len(load.failures),
                rate=round(load.per_second, 1), rotation_s=round(rotation_seconds), exec_retries=sum(exec_errors.values()))
    assert not load.failures, f"requests that failed during the rotation: {dict(answers)}\n" + "\n".join(load.failures[:20])
    assert answers[202] > 0 and answers[200] > 0, answers
    states = stack.wait_all(load.accepted, timeout=180)
    assert all(state == "SUCCESS" for state in states.values()), Counter(states.values())
    assert counts["sent"] >= 10, (counts, exec_errors)
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts

    # Every app process was replaced; the database and the broker were not, and the next `up` leaves them be.
    after = {service: set(stack.containers(service)) for service in before}
    for service in APP_SERVICES:
        assert after[service] and not after[service] & before[service], f"{service}: {before[service]} -> {after[service]}"
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300", timeout=420)
    for service in ("postgres", BROKER):
        assert set(stack.containers(service)) == before[service], f"{service} was recreated"
        assert all(count == 0 for count, _ in stack.restarts(service).values()), f"{service} restarted"

    # The env file holds only the new values.
    text = stack.env_file.read_text()
    for name, value in old.items():
        assert env_value(stack, name) != value and value not in text, f"{name}: the old value is still in the env file"

    # Old refused, new accepted.
    new = {name: env_value(stack, name) for name in NAMES}
    user = login_user(stack, "POSTGRES")
    assert user != old_users["POSTGRES_PASSWORD"]
    owner = env_value(stack, "POSTGRES_USER") or "app"
    assert postgres_login(stack, user, new["POSTGRES_PASSWORD"]) == owner  # logs in, acts as the owner role
    for who in {user, old_users["POSTGRES_PASSWORD"]}:
        assert postgres_login(stack, who, old["POSTGRES_PASSWORD"]).startswith("refused"), who
    if BROKER == "redis":
        assert redis_auth(stack, new["REDIS_PASSWORD"]) == "PONG"
        assert "WRONGPASS" in redis_auth(stack, old["REDIS_PASSWORD"])
        # Persisted: the ACL file (read at the next start) holds the new password's hash and no other.
        acl = stack.exec("redis", "cat", "/data/users.acl")
        default = next(line for line in acl.splitlines() if line.startswith("user default "))
        hashes = [word[1:] for word in default.split() if word.startswith("#")]
        assert hashes == [hashlib.sha256(new["REDIS_PASSWORD"].encode()).hexdigest()], default
    else:
        user = login_user(stack, "RABBITMQ")
        assert rabbitmq_login(stack, user, new["RABBITMQ_PASSWORD"]) == "ok"
        for who in {user, old_users["RABBITMQ_PASSWORD"]}:
            assert rabbitmq_login(stack, who, old["RABBITMQ_PASSWORD"]) == "refused", who
    assert flower_status(stack, old["FLOWER_PASSWORD"]) == 401
    assert flower_status(stack, new["FLOWER_PASSWORD"]) == 200
