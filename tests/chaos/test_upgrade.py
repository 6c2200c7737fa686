"""`make upgrade` on Compose (compose/scripts/upgrade.sh, docs/release.md#upgrading-on-compose): release N (the
image the stack runs) upgraded to N+1 while tasks are queued and running and clients send requests.

N+1 is a thin image built FROM N: a migration that expands the schema (jobs_execution gets a nullable `release`
column) and a side-effect task that writes `n+1` into it, so each run says which release ran it (N's code does
not know the column: its rows keep it empty, and N's code keeps working on the new schema during the roll).
A second thin image renames a task without an alias: its migrate step refuses, and nothing is replaced.

Counted: every side-effect task run exactly once (one row per run, per task id: tests/chaos/conftest.py),
requests that failed while the upgrade ran (each on a new connection, no retries: tests/lib/load.py)."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import BROKER, PROJECT, REPO, compose_cmd, count_runs, report_runs, run, send_side_effects
from load import Load

APP_SERVICES = ("web", "worker-default", "worker-io", "worker-images", "beat", "flower")
LONG = 25  # s: started as worker-default's roll begins, still running when its old container is stopped
QUEUED = 16  # short tasks queued behind the long ones: they wait for N+1's worker
MARKER = "n+1"
RATE = 10  # requests/s in all: a steady trickle through the front door
TAG = f"{PROJECT}/app-upgrade"
IMAGES_ENV = REPO / "build" / f"{PROJECT}-upgrade-images.env"


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the N image's code changed: {old!r} is not there exactly once"
    return text.replace(old, new)


def build(name: str, context: Path, base: str, files: dict[str, str]) -> str:
    """A thin image FROM `base`, the given files (paths under /app) copied over it; its id."""
    for path, text in files.items():
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        (context / path).write_text(text)
    (context / "Dockerfile").write_text(f"FROM {base}\nCOPY jobs/ /app/jobs/\n")
    built = run("docker", "build", "-q", "-t", name, str(context), timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    return built.stdout.strip()


@pytest.fixture(scope="module")
def releases(stack, tmp_path_factory):
    """Release N (the running web's image, tagged), N+1 and the refused N+1; their tags."""
    (web,) = stack.containers("web")
    n_id = stack.inspect(web)["Image"]
    run("docker", "tag", n_id, f"{TAG}:n")
    read = run("docker", "run", "--rm", "--entrypoint", "python", n_id, "-c",
               "import json, os, pathlib; j = pathlib.Path('/app/jobs'); print(json.dumps("
               "{'tasks': (j / 'tasks.py').read_text(), 'models': (j / 'models.py').read_text(),"
               " 'migrations': sorted(f[:-3] for f in os.listdir(j / 'migrations') if f[:4].isdigit())}))")
    assert read.returncode == 0, read.stderr
    source = json.loads(read.stdout)
    latest = source["migrations"][-1]
    number = int(latest[:4]) + 1
    migration = (f"from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
                 f"    dependencies = [('jobs', '{latest}')]\n"
                 f"    operations = [migrations.AddField('execution', 'release',"
                 f" models.CharField(max_length=16, null=True, blank=True))]\n")
    tasks = replace_once(source["tasks"], "pid=os.getpid())", f"pid=os.getpid(), release={MARKER!r})")
    models = replace_once(source["models"], "    pid = models.IntegerField()\n",
                          "    pid = models.IntegerField()\n    release = models.CharField(max_length=16, null=True, blank=True)\n")
    root = tmp_path_factory.mktemp("upgrade")
    build(f"{TAG}:n1", root / "n1", f"{TAG}:n", {"jobs/tasks.py": tasks, "jobs/models.py": models,
                                                  f"jobs/migrations/{number:04d}_execution_release.py": migration})
    renamed = replace_once(tasks, "def side_effect_flaky(self", "def side_effect_flaky_renamed(self")
    build(f"{TAG}:n1-renamed", root / "renamed", f"{TAG}:n1", {"jobs/tasks.py": renamed})
    IMAGES_ENV.unlink(missing_ok=True)
    yield {"n": f"{TAG}:n", "n1": f"{TAG}:n1", "renamed": f"{TAG}:n1-renamed", "migration": f"{number:04d}_execution_release"}
    IMAGES_ENV.unlink(missing_ok=True)


def upgrade(stack, image: str):
    return run("compose/scripts/upgrade.sh", str(IMAGES_ENV), image, "--",
               *compose_cmd(stack.env_file, BROKER, project=PROJECT), env=stack.env, timeout=900)


def app_containers(stack) -> dict[str, set[str]]:
    return {service: set(stack.containers(service)) for service in APP_SERVICES}


def migration_applied(stack, name: str) -> bool:
    return stack.psql(f"SELECT count(*) FROM django_migrations WHERE app = 'jobs' AND name = '{name}'") == "1"


def release_of(stack) -> dict[str, str]:
    """Task id -> the release that finished its run: N+1's code writes its marker, N's leaves the column empty."""
    return dict(line.split("|") for line in stack.psql(
        "SELECT task_id, coalesce(release, 'n') FROM jobs_execution WHERE finished IS NOT NULL").splitlines())


def assert_all_replaced_by(stack, before: dict[str, set[str]], image: str) -> None:
    """Every app service runs `image` in new containers only, and the images file names it."""
    image_id = run("docker", "image", "inspect", "-f", "{{.Id}}", image).stdout.strip()
    after = app_containers(stack)
    for service in APP_SERVICES:
        assert after[service] and not after[service] & before[service], f"{service}: {before[service]} -> {after[service]}"
        images = {stack.inspect(cid)["Image"] for cid in after[service]}
        assert images == {image_id}, f"{service} runs {images}, not {image} ({image_id})"
    assert f"APP_IMAGE={image}" in IMAGES_ENV.read_text().splitlines()


def test_upgrade_refuses_a_release_that_renames_a_task_before_replacing_anything(stack, releases):
    before = app_containers(stack)
    refused = upgrade(stack, releases["renamed"])
    out = refused.stdout + refused.stderr
    print(out[-1500:])
    assert refused.returncode != 0, out
    assert "jobs.tasks.side_effect_flaky" in out, out  # check_tasks names the dropped task
    assert "before any service was replaced" in out, out
    assert app_containers(stack) == before, "a container was replaced by a refused upgrade"
    assert not migration_applied(stack, releases["migration"]), "the refused release's migration ran"
    assert not IMAGES_ENV.exists(), "the refused release was recorded"


def test_upgrade_refuses_bad_input_before_running_anything(stack, releases):
    compose = compose_cmd(stack.env_file, BROKER, project=PROJECT)
    absent = compose_cmd(stack.env_file, BROKER, project=f"{PROJECT}-absent")
    cases = {"no image given": [str(IMAGES_ENV), "", "--", *compose],
             "not on this host": [str(IMAGES_ENV), f"{TAG}:no-such-release", "--", *compose],
             "the stack does not run": [str(IMAGES_ENV), releases["n1"], "--", *absent],
             "usage:": [str(IMAGES_ENV), releases["n1"], *compose]}
    for says, args in cases.items():
        refused = run("compose/scripts/upgrade.sh", *args, env=stack.env, timeout=120)
        assert refused.returncode == 2 and says in refused.stderr, (says, refused.stdout, refused.stderr)
        assert "migrate" not in refused.stdout, (says, refused.stdout)
    assert not IMAGES_ENV.exists()


class Enqueuer:
    """A Python process in N's worker-default container with Django set up ahead of time, which enqueues the
    side-effect tasks the moment it is told: two long ones (the worker's two slots), then short ones queued
    behind them. Told when the upgrade starts worker-default's new container, the old one, idle and consuming,
    takes the long ones at once, long before a container being created can consume: they run on N while the
    pool is rolled, and the queued ones, enqueued on N, wait for N+1's worker."""

    CODE = ("import json, sys, django; django.setup(); from jobs import tasks; print('ready', flush=True); "
            "sys.stdin.readline(); "
            f"ids = [tasks.side_effect.apply_async(({LONG!r},)).id for _ in range(2)]; "
            f"ids += [tasks.side_effect.apply_async((0.5,)).id for _ in range({QUEUED})]; print(json.dumps(ids), flush=True)")

    def __init__(self, stack):
        self.process = subprocess.Popen([*compose_cmd(stack.env_file, BROKER, project=PROJECT), "exec", "-T",
                                         "worker-default", "python", "-c", self.CODE],
                                        cwd=REPO, env=stack.env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = self.process.stdout.readline()
        assert ready.strip() == "ready", f"the enqueuing process did not start: {ready!r}"

    def go(self) -> None:
        if not self.process.stdin.closed:
            self.process.stdin.write("go\n")
            self.process.stdin.close()

    def ids(self) -> tuple[list[str], list[str]]:
        ids = json.loads(self.process.stdout.readline())
        self.process.wait(60)
        return ids[:2], ids[2:]


def test_upgrade_n_to_n1_with_tasks_queued_and_running_runs_each_once(stack, releases):
    before = app_containers(stack)
    enqueuer = Enqueuer(stack)
    output: list[str] = []
    started = time.monotonic()
    with Load(stack.base, stack.http.verify, rate=RATE, clients=4) as load:
        script = subprocess.Popen(["compose/scripts/upgrade.sh", str(IMAGES_ENV), releases["n1"], "--",
                                   *compose_cmd(stack.env_file, BROKER, project=PROJECT)],
                                  cwd=REPO, env=stack.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in script.stdout:
            output.append(line)
            if "new worker-default container" in line:  # rollout-web.sh, before it creates the new one
                enqueuer.go()
        script.wait(900)
        seconds = time.monotonic() - started
    enqueuer.go()  # unblocks it if the line never came (the assertion below says so)
    text = "".join(output)
    print(text[-4000:])
    assert script.returncode == 0, text[-6000:]
    assert "new worker-default container" in text, "worker-default was not rolled"
    long, queued = enqueuer.ids()

    counts = count_runs(stack, long + queued, timeout=180)
    release = release_of(stack)
    ran_on = Counter(release.get(i, "none") for i in queued)
    new_default = next(iter(set(stack.containers("worker-default")) - before["worker-default"]), None)
    rolled_at = stack.inspect(new_default)["Created"][:19] + "Z" if new_default else ""
    # Long tasks that N's worker was still running when the new worker-default started (so during its roll).
    in_flight = int(stack.psql("SELECT count(*) FROM jobs_execution WHERE task_id IN ({}) AND finished > '{}'".format(
        ",".join(f"'{i}'" for i in long), rolled_at))) if rolled_at else 0
    answers = load.answers
    report_runs("upgrade-n-to-n1", counts, upgrade_s=round(seconds), requests=load.total, failed=len(load.failures),
                rate=round(load.per_second, 1), queued_ran_on=dict(ran_on), long_in_flight_at_roll=in_flight)

    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    assert all(release[i] == "n" for i in long), "a long task was not finished by N's worker (warm shutdown)"
    assert ran_on[MARKER] > 0, f"no task enqueued on N ran on N+1: {ran_on}"
    assert in_flight > 0, f"the long tasks ended before worker-default was rolled: raise LONG ({LONG} s)"
    assert not load.failures, f"requests that failed during the upgrade: {dict(answers)}\n" + "\n".join(load.failures[:20])
    states = stack.wait_all(load.accepted, timeout=120)
    assert all(state == "SUCCESS" for state in states.values()), Counter(states.values())

    assert migration_applied(stack, releases["migration"])
    assert_all_replaced_by(stack, before, releases["n1"])


def test_upgrade_back_to_n_leaves_the_expanded_schema_and_runs_n(stack, releases):
    """Rollback (after the test above): `make upgrade` with N's image. N's migrate step has nothing to apply
    (N+1's expand-only migration stays: N's code ran against it during the roll) and N's names are N+1's, so
    check_tasks passes; every app service runs N again, and side-effect tasks run once, on N."""
    before = app_containers(stack)
    with Load(stack.base, stack.http.verify, rate=RATE, clients=4) as load:
        rolled = upgrade(stack, releases["n"])
    print(rolled.stdout[-2500:])
    assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr[-3000:]
    sent = send_side_effects(stack, 4)
    counts = count_runs(stack, sent, timeout=120)
    release = release_of(stack)
    report_runs("upgrade-back-to-n", counts, requests=load.total, failed=len(load.failures))
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    assert all(release[i] == "n" for i in sent), "a task ran on N+1 after the rollback"
    assert not load.failures, f"requests that failed during the rollback: {dict(load.answers)}\n" + "\n".join(load.failures[:20])
    assert migration_applied(stack, releases["migration"])
    assert_all_replaced_by(stack, before, releases["n"])
