"""The chart on the live local cluster (make test-k8s; tests/k8s/chart/chart.sh installed it and
tests/smoke/run-k8s.sh ran the Compose smoke suite against it first). Tests run in file order: the
release's pods from the inside, KEDA scaling a pool on its queue, `helm upgrade` rolling the pods
with tasks in flight, and `helm uninstall` last."""

from __future__ import annotations

import json
import time
from collections import Counter
from functools import partial

import pytest
import testinfra

from chart_lib import (ENV, FULL, NAMESPACE, RELEASE, chart_script, count_runs, following_logs, front_door,
                       get, namespaced_objects, release_pods, send_side_effects)
from conftest import K, kubectl, require_live
import scale_in
from internal import internal_json
from load import Load, task_state
from polling import wait_all_succeeded, wait_until

# A word of PID 1's command line per component (the images' start scripts exec into these).
MAIN_PROCESS = {
    "web": "/opt/venv/bin/gunicorn", "worker": "worker", "beat": "run_beat", "flower": "flower",
    "redis": "redis-server", "postgresql": "/usr/lib/postgresql/17/bin/postgres",
}


@pytest.fixture(scope="module", autouse=True)
def live():
    require_live()
    assert kubectl("-n", NAMESPACE, "get", "deployment", f"{FULL}-web", "-o", "name"), "install the release first"


@pytest.fixture(autouse=True)
def kubectl_env(monkeypatch):
    """testinfra's kubectl backend runs `kubectl` from PATH: the pinned one, on the local cluster."""
    for key in ("PATH", "KUBECONFIG"):
        monkeypatch.setenv(key, ENV[key])


def hosts():
    for pod in release_pods():
        component = pod["metadata"]["labels"]["app.kubernetes.io/component"]
        component = "worker" if component.startswith("worker-") else component  # one per pool
        if component in MAIN_PROCESS:
            yield component, pod, testinfra.get_host(f"kubectl://{pod['metadata']['name']}?namespace={NAMESPACE}"
                                                     f"&container={pod['spec']['containers'][0]['name']}")


def test_every_component_runs_its_process_as_non_root_on_a_read_only_root():
    seen = set()
    for component, pod, host in hosts():
        name = pod["metadata"]["name"]
        status = host.file("/proc/1/status").content_string
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert "0" not in uids, f"{name}: PID 1 runs with uids {uids}"
        args = host.file("/proc/1/cmdline").content_string.split("\0")
        want = MAIN_PROCESS[component]  # redis-server retitles itself "redis-server *:6379"
        assert any(arg == want or arg.startswith(want + " ") for arg in args), f"{name}: PID 1 is {args[:12]}"
        write = host.run("touch /written-by-test")
        assert write.rc != 0 and "Read-only file system" in write.stderr, f"{name}: {write}"
        # The writable places are the mounted ones (/tmp is an emptyDir).
        assert host.run("touch /tmp/written-by-test").rc == 0, name
        seen.add(component)
    assert seen == set(MAIN_PROCESS), f"components found running: {sorted(seen)}"


def test_app_pods_have_no_service_account_token_but_workers_publishing_their_deletion_cost():
    for component, pod, host in hosts():
        token = host.file("/var/run/secrets/kubernetes.io/serviceaccount/token").exists
        publishes = any(e["name"] == "DEPLOYKIT_POD_DELETION_COST_INTERVAL" for e in pod["spec"]["containers"][0].get("env", []))
        if component == "worker" and publishes:  # workers.deletionCost is on here (tests/k8s/chart/values.yaml)
            assert token and pod["spec"]["serviceAccountName"] == f"{FULL}-worker", pod["metadata"]["name"]
        elif component in ("web", "beat", "flower", "worker"):  # and the pool that opts out (baseline)
            assert not token, pod["metadata"]["name"]


def test_migration_job_completed_and_every_pod_is_ready():
    jobs = get("jobs", "-l", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=migrate")
    assert jobs and all(j["status"].get("succeeded") == 1 for j in jobs), [j["status"] for j in jobs]
    # The web HPA may have added a pod during the smoke suite (the test values request 20m CPU), and a
    # new pod is Running before its first readiness probe: wait for it, and report any restart.
    def not_ready():
        return {p["metadata"]["name"]: [c["restartCount"] for c in p["status"].get("containerStatuses", [])]
                for p in release_pods()
                if {c["type"]: c["status"] for c in p["status"]["conditions"]}.get("Ready") != "True"}

    wait_until(not_ready, 120, "every release pod Ready (name: restart counts)", 2, done=lambda left: not left)


def container_env(deployment: dict, name: str) -> str | None:
    return next((e.get("value") for c in deployment["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])
                 if e["name"] == name), None)


def test_the_migration_job_checked_the_routes_against_the_queues_the_pools_consume():
    """DEPLOYKIT_CONSUMED_QUEUES, computed by the chart from workers.pools, names the queues the worker
    Deployments consume; the migration Job's check_queues compared the project's routes with it (not
    skipped), and /status lists each of those queues with a consumer."""
    deployments = get("deployments", "-l", f"app.kubernetes.io/instance={RELEASE}")
    pools = {q for d in deployments for q in (container_env(d, "CELERY_WORKER_QUEUES") or "").split(",") if q}
    web = next(d for d in deployments if d["metadata"]["name"] == f"{FULL}-web")
    assert set(container_env(web, "DEPLOYKIT_CONSUMED_QUEUES").split(",")) == pools
    jobs = get("jobs", "-l", f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=migrate")
    job = max(jobs, key=lambda j: j["metadata"]["creationTimestamp"])
    log = kubectl("-n", NAMESPACE, "logs", f"job/{job['metadata']['name']}", "-c", "migrate")
    line = next((line for line in log.splitlines() if line.startswith("check_queues: ")), "")
    assert "each consumed by a worker pool (DEPLOYKIT_CONSUMED_QUEUES=" in line, log[-3000:]
    # /status is refused through the front door: read inside the web pod, as a probe or an operator does.
    inside = [str(K / "bin/kubectl"), "--kubeconfig", str(K / "pki/admin.kubeconfig"), "-n", NAMESPACE, "exec",
              f"deploy/{FULL}-web", "-c", "web", "--"]
    # A pool idle at zero (KEDA's minReplicaCount 0) has no consumer until work arrives.
    idle = {so["spec"]["scaleTargetRef"]["name"] for so in get("scaledobjects") if so["spec"]["minReplicaCount"] == 0}
    awake = {q for d in deployments if d["metadata"]["name"] not in idle
             for q in (container_env(d, "CELERY_WORKER_QUEUES") or "").split(",") if q}
    queues = wait_until(lambda: internal_json(inside, "/status")["queues"], 90,
                        "/status to list a consumer for every queue of a pool that runs",
                        done=lambda q: all(q.get(name, {}).get("consumers") for name in awake),
                        retry_on=(RuntimeError, ValueError))
    print(f"\nconsumed queues {sorted(pools)}; {line}")
    assert pools <= set(queues)


def replicas(deployment: str) -> int:
    return json.loads(kubectl("-n", NAMESPACE, "get", "deployment", deployment, "-o", "json"))["spec"]["replicas"]


# Per pool. The burst keeps 4 pods busy until all pass readiness (new pods consume before they are Ready,
# and a scale-in removes unready pods first whatever their cost); the held tasks outlast its drain and
# the scale-in after it.
BURST, BURST_SECONDS = 100, 4
HOLD, HOLD_SECONDS = 4, 90


def scaled_object_ready(pool: str) -> bool:
    conditions = json.loads(kubectl("-n", NAMESPACE, "get", "scaledobject", f"{FULL}-worker-{pool}", "-o", "json")
                            ).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.mark.timeout(900)
def test_keda_scale_in_removes_only_idle_workers_where_busy_aware_beside_a_pool_without_it():
    """The same burst on two pools: each scales up to 4 pods; the two newest pods of each then get 90 s
    tasks (a `-hold` queue the other pods stop consuming), the burst drains, and KEDA scales in. Where the
    pool is busy-aware (scaleOn work + deletion cost) every pod removed after the drain had no running task;
    the baseline (list length, no deletion cost) is printed beside it. Every task runs exactly once in both."""
    for pool in scale_in.POOLS:
        try:
            wait_until(lambda: scaled_object_ready(pool), 90, f"the {pool} ScaledObject to be Ready (KEDA reads it)")
        except TimeoutError as exc:  # say why in the CI log: its conditions and what the operator logged of it
            so = kubectl("-n", NAMESPACE, "get", "scaledobject", f"{FULL}-worker-{pool}", "-o", "jsonpath={.status.conditions}")
            log = [line for line in kubectl("-n", "keda", "logs", "deploy/keda-operator", "--tail=400").splitlines()
                   if f"worker-{pool}" in line][-5:]
            raise AssertionError(f"{exc}\nconditions: {so}\noperator:\n" + "\n".join(log)) from exc
        wait_until(lambda: replicas(f"{FULL}-worker-{pool}") == 1, 90, f"{pool} at its minimum of 1")
    with scale_in.Watch() as watch:
        began = time.time()
        burst = scale_in.send({pool: (BURST, BURST_SECONDS) for pool in scale_in.POOLS})
        full = {pool: wait_until(lambda: len([p for p in watch.live(pool) if p.ready]), 240,
                                 f"{pool} to scale up to 4 ready pods", 1, done=lambda n: n >= 4) for pool in scale_in.POOLS}
        assert all(full.values())
        # The two newest pods are busy: the ones the ReplicaSet's default ranking removes first. The others
        # stop consuming the -hold queue (one snapshot of the pods: the watch moves on while the pool scales).
        pods = {pool: [p.name for p in watch.live(pool)] for pool in scale_in.POOLS}
        busy = {pool: names[-2:] for pool, names in pods.items()}
        stopped = scale_in.hold_on({pool: names[:-2] for pool, names in pods.items()})
        assert all(set(stopped[pool]) <= set(pods[pool][:-2]) for pool in scale_in.POOLS), (stopped, busy)
        hold = scale_in.send({f"{pool}-hold": (HOLD, HOLD_SECONDS) for pool in scale_in.POOLS})
        sent = {pool: burst[pool] + hold[f"{pool}-hold"] for pool in scale_in.POOLS}
        placed = wait_until(lambda: scale_in.runs(hold["busyaware-hold"] + hold["baseline-hold"]), 180,
                            "the held tasks to start", 5, done=lambda rows: len(rows) == 2 * HOLD)
        for pool in scale_in.POOLS:  # where they ran (a pod the pool added since may have taken one)
            print(f"\n{pool}: held tasks on {dict(Counter(r.pod for r in placed if r.task_id in hold[f'{pool}-hold']))}, "
                  f"chosen {busy[pool]}, stopped consuming the -hold queue: {stopped[pool]}")
        for pool in scale_in.POOLS:
            wait_until(lambda: len(watch.live(pool)) == 1, 420, f"{pool} back at its minimum of 1 pod")
            wait_until(lambda: all(p.gone for p in watch.of(pool) if p.removed), 300, f"{pool}'s removed pods gone")
        counts = {pool: count_runs(sent[pool], timeout=300) for pool in scale_in.POOLS}
        rows = scale_in.runs(sent["busyaware"] + sent["baseline"])
    figures = {pool: scale_in.figures(watch, pool, began, burst[pool], [r for r in rows if r.task_id in sent[pool]])
               for pool in scale_in.POOLS}
    print("\nSCALE-IN side by side (busy-aware = scaleOn work + pod deletion cost; baseline = list length):")
    for key in figures["busyaware"]:
        print(f"  {key:44} busy-aware {figures['busyaware'][key]:>7}   baseline {figures['baseline'][key]:>7}")
    for pool in scale_in.POOLS:
        assert counts[pool] == {"sent": BURST + HOLD, "done": BURST + HOLD, "lost": 0, "duplicated": 0}, (pool, counts)
        assert figures[pool]["most pods ready at once"] >= 4, (pool, figures[pool])
    assert figures["busyaware"]["removed after the drain, running tasks"] == 0, figures["busyaware"]


COST = "controller.kubernetes.io/pod-deletion-cost"


def worker_costs(pool: str) -> dict[str, str | None]:
    return {p["metadata"]["name"]: p["metadata"].get("annotations", {}).get(COST)
            for p in release_pods(f"worker-{pool}") if not p["metadata"].get("deletionTimestamp")}


def as_worker(code: str) -> str:
    """Python in a default-pool worker container, with the worker's own token (deploykit.ops.deletion_cost)."""
    return kubectl("-n", NAMESPACE, "exec", f"deploy/{FULL}-worker-default", "--", "python", "-c", code).strip()


REFUSAL = """
import urllib.error
from deploykit.ops.deletion_cost import PodAnnotator
try:
    PodAnnotator(pod={pod!r}).patch({change!r})
    print("ALLOWED")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


@pytest.mark.timeout(300)
def test_a_busy_worker_publishes_its_deletion_cost_and_its_token_can_change_nothing_else():
    """Two 20 s tasks on the default pool's one pod (concurrency 2): its pod-deletion-cost goes to 2 while
    they run and back to 0; the same token may not annotate another pod nor relabel its own (the chart's
    ValidatingAdmissionPolicy)."""
    wait_until(lambda: set(worker_costs("default").values()) == {"0"}, 90, "idle default workers at cost 0")
    sent = send_side_effects(2, 20)
    wait_until(lambda: "2" in worker_costs("default").values(), 60, "the busy pod's cost to reach 2")
    assert count_runs(sent, timeout=120) == {"sent": 2, "done": 2, "lost": 0, "duplicated": 0}
    wait_until(lambda: set(worker_costs("default").values()) == {"0"}, 30, "the cost back to 0 after the tasks")

    web = release_pods("web")[0]["metadata"]["name"]
    other = as_worker(REFUSAL.format(pod=web, change={"metadata": {"annotations": {COST: "5"}}}))
    assert other.startswith(("403", "422")) and "a worker may change its own pod only" in other, other
    own = as_worker("import os; print(os.environ['HOSTNAME'])").splitlines()[-1]
    relabel = as_worker(REFUSAL.format(pod=own, change={"metadata": {"labels": {"app.kubernetes.io/component": "x"}}}))
    assert relabel.startswith(("403", "422")) and "no part of its pod but its deletion cost" in relabel, relabel
    print(f"\ndeletion cost: 0 -> 2 -> 0 on the busy pod; refused: {other.split()[0]} (another pod), "
          f"{relabel.split()[0]} (own labels)")


def data_pods() -> dict[str, tuple[str, int]]:
    """The bundled data services' pods: name -> (uid, container restarts)."""
    return {p["metadata"]["name"]: (p["metadata"]["uid"], sum(c["restartCount"] for c in p["status"]["containerStatuses"]))
            for p in release_pods() if p["metadata"]["labels"]["app.kubernetes.io/component"] in ("redis", "postgresql")}


def app_deployments() -> dict[str, dict]:
    """The release's app Deployments (web, workers, beat, flower) by name."""
    return {d["metadata"]["name"]: d for d in get("deployments", "-l", f"app.kubernetes.io/instance={RELEASE}")
            if "checksum/config" in d["spec"]["template"]["metadata"].get("annotations", {})}


@pytest.mark.timeout(900)
def test_helm_upgrade_with_a_changed_setting_rolls_every_app_pod_under_load_failing_no_request_running_every_task_once():
    """`helm upgrade` rolls every app pod while clients send 30 requests/s through the front door, each on
    a new connection, and side-effect tasks of 15 s are in flight on the rolling workers: no request may
    fail (web drains: deploykit/ops/gunicorn_drain.py), no task may be lost or run twice (worker leases)."""
    before = app_deployments()
    assert {f"{FULL}-web", f"{FULL}-beat", f"{FULL}-flower", f"{FULL}-worker-default"} <= set(before)
    old_pods = [p for p in release_pods() if p["metadata"]["labels"]["app.kubernetes.io/component"]
                not in ("redis", "postgresql", "migrate")]
    old_uids = {p["metadata"]["uid"] for p in old_pods}
    data_before = data_pods()
    with front_door() as (base, session), following_logs([p for p in old_pods if "worker" in p["metadata"]["name"]]):
        sent = send_side_effects(12, 15)  # in flight while the workers roll
        # 40/s offered by 10 clients: a TLS handshake per request on a busy 2-core node slows each one,
        # and the assert below wants 20/s achieved over the whole upgrade.
        with Load(base, session.verify, rate=40, clients=10) as load:
            chart_script("install", "--set", "config.env.LOG_LEVEL=DEBUG")
        runs = count_runs(sent, timeout=300)
        states = Counter(wait_all_succeeded(partial(task_state, session, base), load.accepted, timeout=300).values())
    print(f"\nUPGRADE under load: {load.total} requests in {load.seconds:.0f} s, answers {load.answers}; "
          f"tasks started {len(load.accepted)}: {states}; side-effect tasks {runs}")
    assert data_pods() == data_before, "an app setting restarted a bundled data service (pod uid, restarts)"
    assert not load.failures, f"requests that failed during the upgrade: {load.answers}\n" + "\n".join(load.failures[:20])
    assert load.per_second >= 20, f"the load was {load.per_second:.1f} requests/s, not 20"
    assert states == {"SUCCESS": len(load.accepted)}, states
    assert runs == {"sent": 12, "done": 12, "lost": 0, "duplicated": 0}, runs
    assert kubectl("-n", NAMESPACE, "get", "configmap", f"{FULL}-config", "-o", "jsonpath={.data.LOG_LEVEL}") == "DEBUG"
    after = app_deployments()
    for name, deployment in before.items():
        old = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        new = after[name]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert new != old, f"{name}: checksum/config did not change, so its pods would not roll"
    running = [p for p in release_pods() if p["metadata"]["labels"]["app.kubernetes.io/component"]
               not in ("redis", "postgresql", "migrate")]
    assert running and not {p["metadata"]["uid"] for p in running} & old_uids, "pods of the old config still run"


# Objects that exist in any namespace, and ours outside the chart (tests/k8s/chart/chart.sh's TLS Secret).
NAMESPACE_DEFAULTS = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt"), ("Secret", "front-door-tls")}


@pytest.mark.timeout(900)
def test_helm_uninstall_leaves_only_what_is_documented():
    before = namespaced_objects()
    # docs/helm.md: the data volumes, and the generated Secret whose passwords they still need
    # (helm.sh/resource-policy: keep).
    documented = {("PersistentVolumeClaim", n) for n in (f"{FULL}-media", f"data-{FULL}-redis-0", f"data-{FULL}-postgresql-0")}
    documented.add(("Secret", FULL))
    assert documented <= before
    assert len(before - NAMESPACE_DEFAULTS) > 30, sorted(before)  # the release really was there
    # Pods may take their whole grace period: a worker's warm shutdown can wait on the broker that
    # the same uninstall removes.
    grace = max(p["spec"]["terminationGracePeriodSeconds"] for p in release_pods())
    chart_script("uninstall")

    def left() -> set:
        return {o for o in namespaced_objects() if o[0] != "Event"} - NAMESPACE_DEFAULTS

    try:
        wait_until(lambda: left() == documented, grace + 90, "only the documented objects to remain")
    finally:
        print("left behind beyond the documented:", sorted(left() - documented))
