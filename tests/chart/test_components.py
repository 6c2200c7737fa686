"""Web, workers, beat, Flower: probes, commands, strategy and per-pool settings."""
import shutil

import yaml

from .helm_template_generator import BASE_VALUES, CHART_DIR, by_kind_name, deep_merge, of_kind, pod_spec, render_chart, run_helm


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


class TestWeb:
    def test_probes_are_shallow_http(self):
        dep = by_kind_name(render_chart(show_only=["templates/web/web-deployment.yaml"]), "Deployment", "release-django-celery-web")
        web = pod_spec(dep)["containers"][0]
        assert web["command"] == ["deploykit-web"]
        assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert web["ports"][0]["containerPort"] == 8000

    def test_hpa_owns_replicas_when_autoscaling(self):
        objects = render_chart(values={"web": {"autoscaling": {"minReplicas": 3, "maxReplicas": 5}}})
        assert "replicas" not in by_kind_name(objects, "Deployment", "release-django-celery-web")["spec"]
        hpa = by_kind_name(objects, "HorizontalPodAutoscaler", "release-django-celery-web")
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 5)
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]

    def test_fixed_replicas_without_autoscaling(self):
        objects = render_chart(values={"web": {"replicas": 3, "autoscaling": {"enabled": False}}})
        assert by_kind_name(objects, "Deployment", "release-django-celery-web")["spec"]["replicas"] == 3
        assert not [o for o in of_kind(objects, "HorizontalPodAutoscaler") if o["metadata"]["name"].endswith("-web")]

    def test_ingress_tls_class_annotations(self):
        values = {"web": {"ingress": {"enabled": True, "className": "nginx", "annotations": {"a/b": "c"},
                                      "hosts": [{"host": "shop.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                                      "tls": [{"secretName": "shop-tls", "hosts": ["shop.example.com"]}]}}}
        ing = render_chart(values=values, show_only=["templates/web/web-ingress.yaml"])[0]
        assert ing["spec"]["ingressClassName"] == "nginx"
        assert ing["metadata"]["annotations"] == {"a/b": "c"}
        assert ing["spec"]["tls"][0]["secretName"] == "shop-tls"
        rule = ing["spec"]["rules"][0]
        assert rule["host"] == "shop.example.com"
        assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "release-django-celery-web"

    def test_no_ingress_by_default(self):
        assert not of_kind(render_chart(), "Ingress")


class TestWorkers:
    def test_one_deployment_per_pool_with_its_queues(self):
        objects = render_chart()
        pools = {d["metadata"]["name"]: env_of(pod_spec(d)["containers"][0]) for d in of_kind(objects, "Deployment") if "-worker-" in d["metadata"]["name"]}
        assert set(pools) == {"release-django-celery-worker-default", "release-django-celery-worker-io", "release-django-celery-worker-images"}
        io = pools["release-django-celery-worker-io"]
        assert (io["CELERY_WORKER_QUEUES"], io["CELERY_WORKER_POOL"], io["CELERY_WORKER_CONCURRENCY"]) == ("io", "threads", "8")
        # Fixed concurrency: Celery's own --autoscale never runs under a pod autoscaler.
        assert all(env["CELERY_WORKER_AUTOSCALE"] == "" for env in pools.values())

    def test_liveness_uses_heartbeat_not_inspect_ping(self):
        dep = render_chart(show_only=["templates/worker/worker-deployment.yaml"])[0]
        worker = pod_spec(dep)["containers"][0]
        assert worker["command"] == ["deploykit-worker"]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert worker[probe]["exec"]["command"] == ["deploykit-worker-healthcheck"]
        assert "inspect" not in str(dep)

    def test_grace_period_covers_longest_task(self):
        values = {"config": {"env": {"CELERY_TASK_TIME_LIMIT": 600, "CELERY_TASK_SOFT_TIME_LIMIT": 500}}, "workers": {"shutdownMarginSeconds": 20, "pools": [
            {"name": "short", "queues": ["default"], "pool": "prefork", "concurrency": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
            {"name": "long", "queues": ["images"], "pool": "prefork", "concurrency": 1, "longestTaskSeconds": 1800, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}]}}
        deps = {d["metadata"]["name"]: d for d in render_chart(values=values, show_only=["templates/worker/worker-deployment.yaml"])}
        short, long = deps["release-django-celery-worker-short"], deps["release-django-celery-worker-long"]
        assert pod_spec(short)["terminationGracePeriodSeconds"] == 620
        assert pod_spec(long)["terminationGracePeriodSeconds"] == 1820
        # Celery's soft shutdown gets the task time; the margin is left for the process to exit.
        assert env_of(pod_spec(long)["containers"][0])["CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT"] == "1800"

    def test_pdb_per_pool(self):
        pdbs = render_chart(show_only=["templates/worker/worker-pdb.yaml"])
        assert {p["metadata"]["name"] for p in pdbs} == {f"release-django-celery-worker-{n}" for n in ("default", "io", "images")}
        assert all(p["spec"]["maxUnavailable"] == 1 for p in pdbs)
        selector = pdbs[0]["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"].startswith("worker-")

    def test_pool_node_selector_overrides_default(self):
        values = {"nodeSelector": {"pool": "general"}, "workers": {"pools": [
            {"name": "images", "queues": ["images"], "pool": "prefork", "concurrency": 1, "nodeSelector": {"pool": "big-memory"},
             "autoscaling": {"minReplicas": 0, "maxReplicas": 2}}]}}
        dep = render_chart(values=values, show_only=["templates/worker/worker-deployment.yaml"])[0]
        assert pod_spec(dep)["nodeSelector"] == {"pool": "big-memory"}


class TestBeat:
    def test_single_replica_recreate(self):
        dep = render_chart(show_only=["templates/beat/beat-deployment.yaml"])[0]
        assert dep["spec"]["replicas"] == 1
        assert dep["spec"]["strategy"] == {"type": "Recreate"}
        assert pod_spec(dep)["containers"][0]["command"] == ["deploykit-beat"]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert probe in pod_spec(dep)["containers"][0]

    def test_never_autoscaled(self):
        objects = render_chart()
        targets = [o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]
        assert targets and not [t for t in targets if t.endswith("-beat")]


class TestFlower:
    def test_basic_auth_from_secret_and_probes(self):
        dep = render_chart(show_only=["templates/flower/flower-deployment.yaml"])[0]
        flower = pod_spec(dep)["containers"][0]
        assert flower["command"] == ["deploykit-flower"]
        env = env_of(flower)
        assert env["FLOWER_USER"]["secretKeyRef"] == {"name": "release-django-celery", "key": "FLOWER_USER"}
        assert env["FLOWER_PASSWORD"]["secretKeyRef"] == {"name": "release-django-celery", "key": "FLOWER_PASSWORD"}
        assert flower["livenessProbe"]["httpGet"]["path"] == "/flower/healthcheck"
        assert flower["readinessProbe"]["httpGet"]["port"] == "http"

    def test_ingress_on_prefix(self):
        ing = render_chart(values={"flower": {"urlPrefix": "ops/flower", "ingress": {"enabled": True, "host": "ops.example.com"}}},
                           show_only=["templates/flower/flower-ingress.yaml"])[0]
        path = ing["spec"]["rules"][0]["http"]["paths"][0]
        assert path["path"] == "/ops/flower"
        assert path["backend"]["service"]["name"] == "release-django-celery-flower"

    def test_disabled(self):
        objects = render_chart(values={"flower": {"enabled": False}})
        assert not [o for o in objects if o["metadata"]["name"].endswith("-flower")]


def render_notes(tmp_path, values):
    """NOTES.txt as `helm install` prints it: `helm install --dry-run` needs a cluster, so a copy of the
    chart gets a ConfigMap template that includes NOTES.txt (helm parses it as a template too)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart)
    (chart / "templates" / "notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        "data:\n  text: {{ include (print $.Template.BasePath \"/NOTES.txt\") . | toJson }}\n")
    out = run_helm("template", "release", str(chart), "--namespace", "apps", "--show-only", "templates/notes-probe.yaml",
                   values=deep_merge(BASE_VALUES, values))
    return yaml.safe_load(out)["data"]["text"]


def test_notes_tell_how_to_reach_app_and_flower(tmp_path):
    notes = render_notes(tmp_path, {})
    assert "kubectl -n apps port-forward svc/release-django-celery-web 8000:80" in notes
    assert "port-forward svc/release-django-celery-flower 5555:5555" in notes
    assert "FLOWER_PASSWORD" in notes


def test_notes_with_ingress_show_urls_and_evaluation_warning(tmp_path):
    notes = render_notes(tmp_path, {"web": {"ingress": {"enabled": True, "tls": [{"secretName": "t", "hosts": ["app.example.com"]}]}},
                                    "flower": {"ingress": {"enabled": True}},
                                    "redis": {"enabled": True}, "broker": {"url": ""}, "workers": {"keda": {"redis": {"address": ""}}}})
    assert "https://app.example.com/" in notes
    assert "http://app.example.com/flower/" in notes
    assert "WARNING: bundled Redis is for evaluation only" in notes


def test_an_image_digest_pins_every_app_container_and_wins_over_the_tag():
    digest = "sha256:" + "ab" * 32
    objects = render_chart(values={"image": {"repository": "registry.example.com/blueprint/app", "tag": "9.9.9", "digest": digest}})
    pods = [pod_spec(o) for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]
    assert len(pods) >= 5  # web, workers, beat, flower, migrate
    images = {c["image"] for pod in pods for c in pod.get("initContainers", []) + pod["containers"]}
    assert images == {f"registry.example.com/blueprint/app@{digest}"}
