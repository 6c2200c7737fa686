"""compose/scripts/gen-pools.py: pools declared in env files become services; anything malformed is refused.

Run by `make pools-check`. The Compose model cases run the real `docker compose config` (skipped without it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "compose" / "scripts" / "gen-pools.py"
_spec = importlib.util.spec_from_file_location("gen_pools", SCRIPT)
gen_pools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_pools)

# Four pools named nothing like the reference's, with hyphenated, dotted and colon queue names.
UNUSUAL = """
WORKER_POOLS=fast-lane  bulk,reports-2026 solo1
WORKER_FAST_LANE_QUEUES=checkout.high, checkout-express
WORKER_FAST_LANE_POOL=threads
WORKER_FAST_LANE_CONCURRENCY=32
WORKER_BULK_QUEUES=bulk:import
WORKER_BULK_AUTOSCALE=6,1
WORKER_BULK_REPLICAS=3
WORKER_BULK_CPUS=2.5
WORKER_BULK_MEMORY=1g
WORKER_REPORTS_2026_QUEUES=reports.monthly,reports.yearly
WORKER_REPORTS_2026_REPLICAS=0
WORKER_SOLO1_QUEUES="legacy_queue"   # a comment
WORKER_SOLO1_POOL=solo
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def generated(tmp_path: Path, *env_texts: str, variants: tuple[str, ...] = ()) -> dict:
    import yaml

    files = [write(tmp_path, f"{i}.env", text) for i, text in enumerate(env_texts)]
    text = gen_pools.generate(files, [ROOT / v for v in variants], "test")
    return yaml.load(text, Loader=gen_pools.Loader)["services"]


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(gen_pools.Refused) as caught:
        generated(tmp_path, text)
    return str(caught.value)


def test_the_reference_pools_are_todays_three_services(tmp_path):
    services = generated(tmp_path, (ROOT / ".env.example").read_text())
    env = {name: s["environment"] for name, s in services.items() if name != "migrate"}
    assert env == {
        "worker-default": {"CELERY_WORKER_QUEUES": "default", "CELERY_WORKER_POOL": "prefork", "CELERY_WORKER_CONCURRENCY": "2"},
        "worker-io": {"CELERY_WORKER_QUEUES": "io", "CELERY_WORKER_POOL": "threads", "CELERY_WORKER_CONCURRENCY": "16"},
        "worker-images": {"CELERY_WORKER_QUEUES": "images", "CELERY_WORKER_POOL": "prefork", "CELERY_WORKER_CONCURRENCY": "1"},
    }
    assert services["migrate"]["environment"] == {"DEPLOYKIT_CONSUMED_QUEUES": "default,io,images"}
    assert all(s["extends"]["service"] == "pool" for n, s in services.items() if n != "migrate")


def test_any_number_of_pools_with_any_names(tmp_path):
    services = generated(tmp_path, UNUSUAL)
    assert list(services) == ["worker-fast-lane", "worker-bulk", "worker-reports-2026", "worker-solo1", "migrate"]
    assert services["worker-fast-lane"]["environment"] == {
        "CELERY_WORKER_QUEUES": "checkout.high,checkout-express", "CELERY_WORKER_POOL": "threads",
        "CELERY_WORKER_CONCURRENCY": "32"}
    assert services["worker-bulk"]["environment"]["CELERY_WORKER_AUTOSCALE"] == "6,1"
    assert services["worker-bulk"]["deploy"] == {"replicas": 3, "resources": {"limits": {"cpus": "2.5", "memory": "1g"}}}
    assert services["worker-reports-2026"]["deploy"] == {"replicas": 0}
    assert services["worker-solo1"]["environment"]["CELERY_WORKER_QUEUES"] == "legacy_queue"
    assert services["migrate"]["environment"]["DEPLOYKIT_CONSUMED_QUEUES"] == (
        "checkout.high,checkout-express,bulk:import,reports.monthly,reports.yearly,legacy_queue")


def test_a_later_env_file_declares_the_pools_and_the_earlier_ones_settings_of_other_pools_are_ignored(tmp_path):
    project = "WORKER_POOLS=main emails\nWORKER_MAIN_QUEUES=celery\nWORKER_EMAILS_QUEUES=emails\nWORKER_EMAILS_POOL=threads\n"
    services = generated(tmp_path, (ROOT / ".env.example").read_text(), project)
    assert set(services) == {"worker-main", "worker-emails", "migrate"}
    assert services["migrate"]["environment"]["DEPLOYKIT_CONSUMED_QUEUES"] == "celery,emails"


def test_the_longest_pool_name_owns_a_variable(tmp_path):
    services = generated(tmp_path, "WORKER_POOLS=io io-bulk\nWORKER_IO_QUEUES=io\nWORKER_IO_BULK_QUEUES=io.bulk\n")
    assert services["worker-io"]["environment"]["CELERY_WORKER_QUEUES"] == "io"
    assert services["worker-io-bulk"]["environment"]["CELERY_WORKER_QUEUES"] == "io.bulk"


@pytest.mark.parametrize("text, message", [
    ("WORKER_DEFAULT_QUEUES=default\n", "WORKER_POOLS is not set in any env file"),
    ("WORKER_POOLS=\n", "WORKER_POOLS (in"),
    ("WORKER_POOLS=Big\nWORKER_BIG_QUEUES=q\n", "pool name 'Big' is malformed"),
    ("WORKER_POOLS=a_b\nWORKER_A_B_QUEUES=q\n", "pool name 'a_b' is malformed"),
    ("WORKER_POOLS=a--b\n", "pool name 'a--b' is malformed"),
    ("WORKER_POOLS=io io\nWORKER_IO_QUEUES=io\n", "pool 'io' is declared twice"),
    ("WORKER_POOLS=io\n", "WORKER_IO_QUEUES is missing or empty"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES= , \n", "WORKER_IO_QUEUES (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io,bad queue\n", "WORKER_IO_QUEUES (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=${Q}\n", "queue name '${Q}' is malformed"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io,io\n", "queue 'io' is listed twice"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_IO_POOL=gevent\n", "WORKER_IO_POOL (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_IO_CONCURRENCY=-1\n", "WORKER_IO_CONCURRENCY (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_IO_AUTOSCALE=1,4\n", "WORKER_IO_AUTOSCALE (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_IO_REPLICAS=two\n", "WORKER_IO_REPLICAS (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_IO_CPUS=0\n", "WORKER_IO_CPUS (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_IO_MEMORY=lots\n", "WORKER_IO_MEMORY (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_IO_QUEUE=x\n", "WORKER_IO_QUEUE (in"),
    ("WORKER_POOLS=io\nWORKER_IO_QUEUES=io\nWORKER_QUEUES=default\n", "WORKER_QUEUES (in"),
])
def test_malformed_declarations_are_refused_naming_the_variable(tmp_path, text, message):
    assert message in refusal(tmp_path, text)


def test_an_env_file_from_before_pools_were_data_is_refused_naming_its_old_variables(tmp_path):
    message = refusal(tmp_path, "WORKER_QUEUES=default\nWORKER_IO_QUEUES=io\nWORKER_CONCURRENCY=2\n")
    assert "WORKER_POOLS is not set" in message
    assert "WORKER_QUEUES (in" in message and "WORKER_CONCURRENCY (in" in message


def test_every_problem_is_reported_at_once(tmp_path):
    message = refusal(tmp_path, "WORKER_POOLS=a b\nWORKER_B_QUEUES=q\nWORKER_B_POOL=x\n")
    assert "WORKER_A_QUEUES" in message and "WORKER_B_POOL" in message


def test_a_variant_changes_every_pool(tmp_path):
    services = generated(tmp_path, UNUSUAL, variants=("compose/rabbitmq.yaml", "compose/compose.s3.yaml"))
    pools = {n: s for n, s in services.items() if n.startswith("worker-")}
    assert len(pools) == 4
    for service in pools.values():
        assert service["environment"]["CELERY_BROKER_URL"].startswith("amqp://")
        assert service["environment"]["DEPLOYKIT_STORAGE_BACKEND"] == "s3"
        assert service["volumes"].tag == "!reset" and service["volumes"].value == []
    # Development mode after S3 mode: the code mount alone (the media volume stays reset).
    services = generated(tmp_path, UNUSUAL, variants=("compose/compose.s3.yaml", "compose/compose.dev.yaml"))
    volumes = services["worker-bulk"]["volumes"]
    assert volumes.tag == "!override" and [v["target"] for v in volumes.value] == ["/app"]


def test_check_names_the_stale_file_and_the_command_that_regenerates_it(tmp_path):
    env = write(tmp_path, "a.env", UNUSUAL)
    out = tmp_path / "pools.yaml"
    stale = run("--env-file", env, "-o", out, "--check")
    assert stale.returncode == 1
    assert str(out) in stale.stderr and f"compose/scripts/gen-pools.py --env-file {env} -o {out}" in stale.stderr
    assert run("--env-file", env, "-o", out).returncode == 0
    assert run("--env-file", env, "-o", out, "--check").returncode == 0
    refused = run("--env-file", write(tmp_path, "b.env", "WORKER_POOLS=x\n"), "-o", out)
    assert refused.returncode == 2 and "WORKER_X_QUEUES" in refused.stderr


# --- the generated file in the real Compose model ------------------------------------------------------

needs_compose = pytest.mark.skipif(
    shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode,
    reason="docker compose is not installed")


def compose_model(tmp_path: Path, *variants: str) -> dict:
    env = write(tmp_path, "stack.env", (ROOT / ".env.example").read_text() + UNUSUAL + "".join(
        f"{name}=x\n" for name in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD",
                                   "FLOWER_USER", "FLOWER_PASSWORD", "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID",
                                   "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY")))
    out = tmp_path / "pools.yaml"
    variant_args = [a for v in variants for a in ("-f", v)]
    assert run("--env-file", env, *variant_args, "-o", out).returncode == 0
    result = subprocess.run(["docker", "compose", "-p", "pools-unit", "-f", "compose/compose.yaml", *variant_args,
                             "-f", str(out), "--env-file", str(env), "config", "--format", "json"],
                            capture_output=True, text=True, cwd=ROOT, env={"PATH": os.environ["PATH"], "DEV_PROJECT_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


@needs_compose
def test_compose_runs_each_declared_pool_from_the_template(tmp_path):
    services = compose_model(tmp_path)
    pools = sorted(n for n, s in services.items() if "CELERY_WORKER_QUEUES" in s.get("environment", {}))
    assert pools == ["worker-bulk", "worker-fast-lane", "worker-reports-2026", "worker-solo1"]
    assert "pool" not in services  # the template is never started
    bulk = services["worker-bulk"]
    assert bulk["command"] == ["deploykit-worker"] and bulk["environment"]["CELERY_WORKER_AUTOSCALE"] == "6,1"
    assert bulk["deploy"]["replicas"] == 3 and bulk["deploy"]["resources"]["limits"]["cpus"] == 2.5
    assert services["worker-fast-lane"]["healthcheck"]["test"] == ["CMD", "deploykit-worker-healthcheck"]
    assert [v["target"] for v in services["worker-solo1"]["volumes"]] == ["/var/lib/app/media"]
    assert services["migrate"]["environment"]["DEPLOYKIT_CONSUMED_QUEUES"].split(",") == [
        "checkout.high", "checkout-express", "bulk:import", "reports.monthly", "reports.yearly", "legacy_queue"]


@needs_compose
def test_compose_applies_rabbitmq_s3_and_development_mode_to_every_pool(tmp_path):
    services = compose_model(tmp_path, "compose/rabbitmq.yaml", "compose/compose.s3.yaml", "compose/compose.dev.yaml")
    pools = {n: s for n, s in services.items() if n.startswith("worker-")}
    assert len(pools) == 4
    for name, service in pools.items():
        assert service["environment"]["CELERY_BROKER_URL"].startswith("amqp://"), name
        assert service["environment"]["DEPLOYKIT_STORAGE_BACKEND"] == "s3", name
        assert service["environment"]["DJANGO_DEBUG"] == "true", name
        assert "run_with_reloader" in service["command"], name
        assert [v["target"] for v in service["volumes"]] == ["/app"], name
