"""A project of its own deployed from a values file alone (#18): examples/bookshop/deploy/values.yaml, with
nothing of this suite's BASE_VALUES, renders valid objects whose worker pools consume the bookshop's queues
(`celery`, `emails`), whose migration Job and web get DEPLOYKIT_CONSUMED_QUEUES computed from those pools,
whose every app container runs the bookshop's settings, Celery app and WSGI app, and in whose worker and
KEDA objects nothing of the reference project's queues (default, io, images) is left. Queue names are data:
any sane name renders, and the consumed list follows the pools that run."""
from __future__ import annotations

import base64
import re

import pytest
import yaml

from .helm_template_generator import REPO_ROOT, HelmFailed, by_kind_name, deep_merge, dump, of_kind, pod_spec, render_chart, validate_objects

BOOKSHOP_VALUES = REPO_ROOT / "examples" / "bookshop" / "deploy" / "values.yaml"
RELEASE = "bookshop"
FULL = "bookshop-django-celery"
PROJECT = {"DJANGO_SETTINGS_MODULE": "bookshop.settings.production", "DEPLOYKIT_CELERY_APP": "bookshop.celery_app",
           "DEPLOYKIT_WSGI_APP": "bookshop.wsgi"}
REFERENCE_QUEUES = {"default", "io", "images"}
POOL = {"pool": "prefork", "concurrency": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}


def bookshop_values() -> dict:
    return yaml.safe_load(BOOKSHOP_VALUES.read_text())


def render_bookshop(extra: dict | None = None, **kwargs) -> list[dict]:
    """The chart with the bookshop's file alone (base=False: none of the suite's own values)."""
    return render_chart(values=deep_merge(bookshop_values(), extra or {}), name=RELEASE, base=False, **kwargs)


@pytest.fixture(scope="module")
def bookshop() -> list[dict]:
    return render_bookshop()


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def workers(objects: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment") if "-worker-" in d["metadata"]["name"]}


def app_containers(objects: list[dict]):
    """(object, container) for every container and initContainer of the app image."""
    image = next(c["image"] for c in pod_spec(by_kind_name(objects, "Deployment", f"{FULL}-web"))["containers"])
    for obj in objects:
        if obj["kind"] not in ("Deployment", "Job", "StatefulSet"):
            continue
        spec = pod_spec(obj)
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"] == image:
                yield obj, container


def migrate_job(objects: list[dict]) -> dict:
    (job,) = of_kind(objects, "Job")
    return job


def test_the_file_alone_renders_valid_objects(bookshop):
    """Schema-valid values (helm validates values.schema.json before rendering), valid objects for three
    Kubernetes minors and KEDA's CRD schema."""
    assert {"Deployment", "Job", "ScaledObject", "ConfigMap"} <= {o["kind"] for o in bookshop}
    assert not [o for o in bookshop if o["kind"] == "Secret"], "existingSecret: the chart renders no Secret"
    validate_objects(bookshop)


def test_its_image_and_its_pools(bookshop):
    pools = workers(bookshop)
    assert set(pools) == {f"{FULL}-worker-main", f"{FULL}-worker-emails"}
    env = {name: env_of(pod_spec(d)["containers"][0]) for name, d in pools.items()}
    assert env[f"{FULL}-worker-main"]["CELERY_WORKER_QUEUES"] == "celery"
    assert env[f"{FULL}-worker-main"]["CELERY_WORKER_POOL"] == "prefork"
    emails = env[f"{FULL}-worker-emails"]
    assert (emails["CELERY_WORKER_QUEUES"], emails["CELERY_WORKER_POOL"], emails["CELERY_WORKER_CONCURRENCY"]) == ("emails", "threads", "8")
    for _, container in app_containers(bookshop):
        assert container["image"] == "bookshop/app:0.1.0"


def test_consumed_queues_are_computed_for_the_migration_job_and_web(bookshop):
    migrate = next(c for c in pod_spec(migrate_job(bookshop))["containers"] if c["name"] == "migrate")
    assert migrate["command"] == ["deploykit-migrate"]
    assert env_of(migrate)["DEPLOYKIT_CONSUMED_QUEUES"] == "celery,emails"
    web = pod_spec(by_kind_name(bookshop, "Deployment", f"{FULL}-web"))["containers"][0]
    assert env_of(web)["DEPLOYKIT_CONSUMED_QUEUES"] == "celery,emails"
    # Not in the ConfigMap: a changed set of pools rolls web and makes a new Job, not every worker pod.
    config = by_kind_name(bookshop, "ConfigMap", f"{FULL}-config")
    assert "DEPLOYKIT_CONSUMED_QUEUES" not in config["data"]


def test_every_app_container_runs_the_project(bookshop):
    config = by_kind_name(bookshop, "ConfigMap", f"{FULL}-config")
    assert {k: config["data"][k] for k in PROJECT} == PROJECT
    seen = set()
    for obj, container in app_containers(bookshop):
        seen.add(f"{obj['metadata']['labels']['app.kubernetes.io/component']}/{container['name']}")
        assert {"configMapRef": {"name": f"{FULL}-config"}} in container.get("envFrom", []), container["name"]
        assert not set(PROJECT) & set(env_of(container)), "set once, in the ConfigMap"
        # The shop's own Redis (its cache) comes from its Secret, optional there.
        redis_url = env_of(container)["REDIS_URL"]["secretKeyRef"]
        assert redis_url == {"name": "bookshop-env", "key": "REDIS_URL", "optional": True}
    assert seen == {"web/wait-for-migrations", "web/web", "worker-main/wait-for-migrations", "worker-main/worker",
                    "worker-emails/wait-for-migrations", "worker-emails/worker", "beat/wait-for-migrations", "beat/beat",
                    "flower/flower", "migrate/migrate"}


def test_as_hooks_the_project_and_its_queues_are_inline(bookshop):
    objects = render_bookshop({"migrations": {"helmHooks": True}})
    migrate = pod_spec(migrate_job(objects))["containers"][0]
    env = env_of(migrate)
    assert "envFrom" not in migrate
    assert {k: env[k] for k in PROJECT} == PROJECT and env["DEPLOYKIT_CONSUMED_QUEUES"] == "celery,emails"


def test_nothing_of_the_reference_queues_in_worker_and_keda_objects(bookshop):
    kinds = ("Deployment", "ScaledObject", "PodDisruptionBudget", "HorizontalPodAutoscaler", "TriggerAuthentication")
    objects = [o for o in bookshop if o["kind"] in kinds and ("-worker-" in o["metadata"]["name"] or o["kind"] != "Deployment")]
    assert len(of_kind(objects, "ScaledObject")) == 2
    triggers = [t["metadata"]["listName"] for so in of_kind(objects, "ScaledObject") for t in so["spec"]["triggers"]]
    assert sorted(triggers) == ["celery", "emails"]
    labels = {d["metadata"]["labels"]["django-celery/worker-pool"] for d in of_kind(objects, "Deployment")}
    assert labels == {"main", "emails"}
    # And as a word anywhere in them (a dotted domain such as kubernetes.io is not the queue `io`).
    words = set(re.findall(r"(?<![\w./-])[\w-]+(?![\w./-])", dump(objects)))
    assert not REFERENCE_QUEUES & words, REFERENCE_QUEUES & words


def test_evaluation_with_bundled_services_points_redis_url_at_database_1():
    """The evaluation line of the file's header: bundled Redis and PostgreSQL, generated credentials."""
    objects = render_bookshop({"secrets": {"existingSecret": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
                               "workers": {"keda": {"redis": {"address": ""}}}})
    validate_objects(objects)
    secret = by_kind_name(objects, "Secret", FULL)["data"]
    password = base64.b64decode(secret["redis-password"]).decode()
    assert base64.b64decode(secret["REDIS_URL"]).decode() == f"redis://:{password}@{FULL}-redis:6379/1"
    assert base64.b64decode(secret["CELERY_BROKER_URL"]).decode().endswith(f"@{FULL}-redis:6379/0")
    for _, container in app_containers(objects):
        assert env_of(container)["REDIS_URL"]["secretKeyRef"]["name"] == FULL


def test_no_redis_url_without_a_redis_for_it():
    """An external broker and no secrets.redisUrl: the chart does not guess one from the broker's URL."""
    objects = render_chart()
    assert "REDIS_URL" not in by_kind_name(objects, "Secret", "release-django-celery")["data"]
    assert all("REDIS_URL" not in env_of(c) for c in pod_spec(by_kind_name(objects, "Deployment", "release-django-celery-web"))["containers"])
    given = render_chart(values={"secrets": {"redisUrl": "rediss://:pw@cache.example.com:6380/0"}})
    assert "REDIS_URL" in by_kind_name(given, "Secret", "release-django-celery")["data"]
    assert "REDIS_URL" in env_of(pod_spec(by_kind_name(given, "Deployment", "release-django-celery-web"))["containers"][0])


@pytest.mark.parametrize("name", ["DEPLOYKIT_CONSUMED_QUEUES", "REDIS_URL"])
def test_config_env_refuses_what_the_chart_computes(name):
    with pytest.raises(HelmFailed, match=rf"/config/env.*additional properties '{name}' not allowed"):
        render_chart(values={"config": {"env": {name: "x"}}})


UNUSUAL = ["tenant-42.bulk:mail", "Priority_High", "celery"]


def test_a_pool_with_unusual_queue_names_renders():
    objects = render_chart(values={"workers": {"pools": [{"name": "bulk-mail", "queues": UNUSUAL, **POOL}]}})
    validate_objects(objects)
    (dep,) = workers(objects).values()
    assert env_of(pod_spec(dep)["containers"][0])["CELERY_WORKER_QUEUES"] == ",".join(UNUSUAL)
    so = by_kind_name(objects, "ScaledObject", "release-django-celery-worker-bulk-mail")
    assert [t["metadata"]["listName"] for t in so["spec"]["triggers"]] == UNUSUAL
    assert env_of(pod_spec(migrate_job(objects))["containers"][0])["DEPLOYKIT_CONSUMED_QUEUES"] == ",".join(UNUSUAL)
    rabbit = render_chart(values={"broker": {"type": "rabbitmq", "url": "amqp://app:pw@mq.example.com:5672/app"},
                                  "workers": {"pools": [{"name": "bulk-mail", "queues": UNUSUAL, **POOL}]}},
                          show_only=["templates/worker/worker-scaledobject.yaml"])
    assert [t["metadata"]["queueName"] for t in rabbit[0]["spec"]["triggers"]] == UNUSUAL


@pytest.mark.parametrize("queue", ["a,b", "with space", "", "node@host", "%h", "-leading-dash", "x" * 201])
def test_a_name_that_cannot_be_a_queue_is_refused_naming_the_key(queue):
    with pytest.raises(HelmFailed, match=r"/workers/pools/0/queues/0"):
        render_chart(values={"workers": {"pools": [{"name": "p", "queues": [queue], **POOL}]}})


def test_consumed_queues_follow_the_pools_that_run():
    """In the pools' order, each queue once; a disabled pool renders nothing and consumes nothing; with
    workers.autoscaler=none a pool fixed at 0 replicas consumes nothing; KEDA's minReplicas 0 still does."""
    pools = [{"name": "a", "queues": ["celery", "emails"], **POOL},
             {"name": "b", "queues": ["emails", "reports"], **POOL, "autoscaling": {"minReplicas": 0, "maxReplicas": 2}},
             {"name": "off", "enabled": False, "queues": ["legacy"], **POOL},
             {"name": "idle", "queues": ["batch"], **POOL, "replicas": 0}]

    def consumed(values):
        objects = render_chart(values=values)
        return env_of(pod_spec(migrate_job(objects))["containers"][0])["DEPLOYKIT_CONSUMED_QUEUES"], set(workers(objects))

    queues, deployments = consumed({"workers": {"pools": pools}})
    assert queues == "celery,emails,reports,batch"
    assert deployments == {f"release-django-celery-worker-{n}" for n in ("a", "b", "idle")}
    queues, deployments = consumed({"workers": {"autoscaler": "none", "pools": pools}})
    assert queues == "celery,emails,reports"
    assert "release-django-celery-worker-idle" in deployments
    off = render_chart(values={"workers": {"pools": pools}}, show_only=["templates/worker/worker-scaledobject.yaml",
                                                                         "templates/worker/worker-pdb.yaml"])
    assert not [o for o in off if o["metadata"]["name"].endswith("-off")]


def test_no_pool_that_runs_is_refused():
    with pytest.raises(HelmFailed, match=r"workers.pools: no pool runs"):
        render_chart(values={"workers": {"pools": [{"name": "off", "enabled": False, "queues": ["celery"], **POOL}]}})
    with pytest.raises(HelmFailed, match=r"workers.pools: no pool runs"):
        render_chart(values={"workers": {"autoscaler": "none", "pools": [{"name": "a", "queues": ["celery"], **POOL, "replicas": 0}]}})


def test_another_set_of_pools_is_another_migration_job():
    """Job specs are immutable: the Job's name carries the consumed queues, so adding a pool is a new Job."""
    first = migrate_job(render_chart(values={"workers": {"pools": [{"name": "a", "queues": ["celery"], **POOL}]}}))
    second = migrate_job(render_chart(values={"workers": {"pools": [{"name": "a", "queues": ["celery"], **POOL},
                                                                    {"name": "b", "queues": ["emails"], **POOL}]}}))
    again = migrate_job(render_chart(values={"workers": {"pools": [{"name": "a", "queues": ["celery"], **POOL}]}}))
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["metadata"]["name"] == again["metadata"]["name"]
