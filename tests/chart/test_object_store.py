"""The bundled S3-compatible object store (storage.objectStore): versitygw StatefulSet + Service + PVC,
the app's DEPLOYKIT_STORAGE_S3_* wiring, the key pair only where files are touched, the bucket step in the
migration Job, its NetworkPolicy and optional Ingress, and the values that cannot work together."""
import base64
import http.server
import os
import subprocess
import sys
import threading

import pytest

from .helm_template_generator import CHART_DIR, HelmFailed, by_kind_name, deep_merge, of_kind, pod_spec, render_chart, validate_objects

STORE = {"storage": {"backend": "s3", "s3": {"bucket": "media"}, "objectStore": {"enabled": True}}}
INGRESS = deep_merge(STORE, {"storage": {"objectStore": {"ingress": {
    "enabled": True, "className": "nginx", "host": "files.example.com",
    "tls": [{"secretName": "files-tls", "hosts": ["files.example.com"]}]}}}})
NAME = "release-django-celery-s3"
SECRET = "release-django-celery"
S3_KEYS = {"DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID", "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"}


def s3_container(objects):
    return pod_spec(by_kind_name(objects, "StatefulSet", NAME))["containers"][0]


def containers_by_component(objects):
    """{component/container: container} of every app workload (init containers included)."""
    out = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            spec = pod_spec(obj)
            for c in spec.get("initContainers", []) + spec["containers"]:
                out[f"{obj['metadata']['labels']['app.kubernetes.io/component']}/{c['name']}"] = c
    return out


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def test_disabled_by_default_renders_nothing_of_it():
    objects = render_chart(values={"storage": {"backend": "s3", "s3": {"bucket": "b", "accessKeyId": "k", "secretAccessKey": "s"}}})
    assert not [o for o in objects if o["metadata"]["name"] == NAME]
    assert "initContainers" not in pod_spec(of_kind(objects, "Job")[0])


def test_statefulset_service_and_claim():
    objects = render_chart(values=STORE)
    sts = by_kind_name(objects, "StatefulSet", NAME)
    assert sts["spec"]["replicas"] == 1
    assert sts["metadata"]["labels"]["django-celery/evaluation-only"] == "true"
    c = s3_container(objects)
    assert c["image"] == "versity/versitygw:v1.8.0"
    assert c["args"] == ["posix", "/data"]
    assert {m["mountPath"]: m["name"] for m in c["volumeMounts"]}["/data"] == "data"
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    svc = by_kind_name(objects, "Service", NAME)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "s3", "port": 9000, "targetPort": "s3", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    assert svc["metadata"]["labels"]["django-celery/evaluation-only"] == "true"


def test_offline_image_and_sizes_from_values():
    values = deep_merge(STORE, {"storage": {"objectStore": {
        "image": {"repository": "blueprint/s3", "tag": "v1.8.0", "pullPolicy": "Never"},
        "persistence": {"storageClassName": "local-xfs", "size": "50Gi"}}}})
    objects = render_chart(values=values)
    c = s3_container(objects)
    assert (c["image"], c["imagePullPolicy"]) == ("blueprint/s3:v1.8.0", "Never")
    claim = by_kind_name(objects, "StatefulSet", NAME)["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "local-xfs" and claim["resources"]["requests"]["storage"] == "50Gi"


def test_server_environment_port_and_probes():
    c = s3_container(render_chart(values=STORE))
    env = env_of(c)
    assert env["ROOT_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID"}
    assert env["ROOT_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"}
    assert env["VGW_PORT"]["value"] == ":9000" and env["VGW_HEALTH"]["value"] == "/health"
    assert env["VGW_REGION"]["value"] == "us-east-1"
    assert c["ports"] == [{"name": "s3", "containerPort": 9000, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "s3"}, probe


def test_runs_as_uid_10001_hardened():
    spec = pod_spec(by_kind_name(render_chart(values=STORE), "StatefulSet", NAME))
    sc = spec["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"], sc["runAsNonRoot"]) == (10001, 10001, 10001, True)
    assert spec["automountServiceAccountToken"] is False
    csc = spec["containers"][0]["securityContext"]
    assert csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert {v["name"] for v in spec["volumes"]} == {"tmp"}


def test_app_points_at_the_in_cluster_service():
    objects = render_chart(values=STORE)
    data = by_kind_name(objects, "ConfigMap", "release-django-celery-config")["data"]
    assert data["DEPLOYKIT_STORAGE_BACKEND"] == "s3"
    assert data["DEPLOYKIT_STORAGE_S3_ENDPOINT_URL"] == f"http://{NAME}:9000"
    # Without an Ingress or an explicit public endpoint, browsers get the in-cluster name (documented).
    assert data["DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL"] == f"http://{NAME}:9000"
    assert data["DEPLOYKIT_STORAGE_S3_BUCKET"] == "media" and data["DEPLOYKIT_STORAGE_S3_REGION"] == "us-east-1"


@pytest.mark.parametrize("values, public", [
    (INGRESS, "https://files.example.com"),
    (deep_merge(INGRESS, {"storage": {"objectStore": {"ingress": {"tls": []}}}}), "http://files.example.com"),
    (deep_merge(INGRESS, {"storage": {"s3": {"publicEndpointUrl": "https://cdn.example.com"}}}), "https://cdn.example.com"),
], ids=["ingress-tls", "ingress-plain", "explicit"])
def test_public_endpoint(values, public):
    data = render_chart(values=values, show_only=["templates/config/configmap.yaml"])[0]["data"]
    assert data["DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL"] == public
    assert data["DEPLOYKIT_STORAGE_S3_ENDPOINT_URL"] == f"http://{NAME}:9000"


def test_generated_key_pair_in_the_chart_secret():
    secret = render_chart(values=STORE, show_only=["templates/config/secret.yaml"])[0]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert len(data["DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID"]) == 20 and data["DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID"].isalnum()
    assert len(data["DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"]) == 40 and data["DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"].isalnum()
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    given = deep_merge(STORE, {"storage": {"s3": {"accessKeyId": "AKIAGIVEN", "secretAccessKey": "given-secret"}}})
    secret = render_chart(values=given, show_only=["templates/config/secret.yaml"])[0]
    assert base64.b64decode(secret["data"]["DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID"]).decode() == "AKIAGIVEN"
    assert base64.b64decode(secret["data"]["DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"]).decode() == "given-secret"


def test_generated_key_pair_is_looked_up_on_upgrade():
    source = (CHART_DIR / "templates/config/secret.yaml").read_text()
    # Generated values come from the live Secret when it exists (same loop as the other passwords).
    assert 'set $wanted "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID"' in source and "index $live $key | b64dec" in source


def test_key_pair_only_where_files_are_touched():
    objects = render_chart(values=STORE)
    containers = containers_by_component(objects)
    with_keys = {name for name, c in containers.items() if S3_KEYS <= set(env_of(c))}
    assert with_keys == {
        "web/wait-for-migrations", "web/web",
        *(f"worker-{p}/{n}" for p in ("default", "io", "images") for n in ("wait-for-migrations", "worker")),
        "migrate/ensure-bucket", "migrate/migrate"}
    for name in ("beat/wait-for-migrations", "beat/beat", "flower/flower"):
        env = env_of(containers[name])
        assert not S3_KEYS & set(env), name
        # The settings require the key pair with DEPLOYKIT_STORAGE_BACKEND=s3; these processes never touch a file.
        assert env["DEPLOYKIT_STORAGE_BACKEND"]["value"] == "filesystem", name
    for name in ("web/web", "migrate/migrate"):
        assert "DEPLOYKIT_STORAGE_BACKEND" not in env_of(containers[name]), name


def test_existing_secret_feeds_server_and_app():
    values = deep_merge(STORE, {"secrets": {"existingSecret": "app-env"}, "database": {"url": ""}, "broker": {"url": ""}})
    objects = render_chart(values=values)
    assert not of_kind(objects, "Secret")
    env = env_of(s3_container(objects))
    assert env["ROOT_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "app-env", "key": "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID"}
    web = containers_by_component(objects)["web/web"]
    assert env_of(web)["DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "app-env"
    validate_objects(objects)


def test_bucket_is_created_by_the_migration_job_without_a_hook():
    objects = render_chart(values=STORE)
    job = of_kind(objects, "Job")[0]
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    init = pod_spec(job)["initContainers"]
    assert [c["name"] for c in init] == ["ensure-bucket"]
    command = init[0]["command"]
    assert command[:2] == ["sh", "-c"] and command[2].endswith("exec python /app/manage.py ensure_bucket")
    assert "$DEPLOYKIT_STORAGE_S3_ENDPOINT_URL" in command[2]
    assert init[0]["envFrom"] == [{"configMapRef": {"name": "release-django-celery-config"}}]
    assert init[0]["image"] == pod_spec(job)["containers"][0]["image"]
    # App pods wait for migrations only, never for the object store: nothing can deadlock `helm install --wait`.
    for dep in of_kind(objects, "Deployment"):
        for c in pod_spec(dep).get("initContainers", []):
            assert c["name"] == "wait-for-migrations"


@pytest.fixture
def health_endpoint():
    """A real HTTP server on 127.0.0.1 answering /health, as versitygw does with VGW_HEALTH."""
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_bucket_step_waits_for_health_then_runs(health_endpoint, tmp_path):
    """The rendered shell command itself: it polls <endpoint>/health, then execs the bucket command."""
    script = pod_spec(of_kind(render_chart(values=STORE), "Job")[0])["initContainers"][0]["command"][2]
    script = script.replace("exec python /app/manage.py ensure_bucket", "echo bucket-step-ran")
    # `python` must be an interpreter: the venv's (the app image has its own).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DEPLOYKIT_STORAGE_S3_ENDPOINT_URL": health_endpoint}
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "bucket-step-ran"
    # Unreachable: it keeps waiting (the Job's activeDeadlineSeconds bounds it).
    with pytest.raises(subprocess.TimeoutExpired) as waited:
        subprocess.run(["sh", "-c", script], env=env | {"DEPLOYKIT_STORAGE_S3_ENDPOINT_URL": "http://127.0.0.1:9"},
                       capture_output=True, text=True, timeout=5)
    output = waited.value.stdout or b""
    output = output.decode() if isinstance(output, bytes) else output
    assert "waiting for the object store at http://127.0.0.1:9" in output


def test_networkpolicy_admits_only_file_handling_app_pods():
    objects = render_chart(values=STORE)
    policy = by_kind_name(objects, "NetworkPolicy", NAME)
    sts = by_kind_name(objects, "StatefulSet", NAME)
    assert policy["spec"]["podSelector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 9000, "protocol": "TCP"}]
    [peer] = rule["from"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "release", "django-celery/client": "true"}
    [expr] = peer["podSelector"]["matchExpressions"]
    assert expr["key"] == "app.kubernetes.io/component" and expr["operator"] == "In"
    assert sorted(expr["values"]) == ["migrate", "web", "worker-default", "worker-images", "worker-io"]
    # Every pod that gets the key pair is admitted; beat and Flower are not.
    admitted = set(expr["values"])
    for obj in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
        has_keys = any(S3_KEYS <= set(env_of(c)) for c in pod_spec(obj)["containers"])
        assert (component in admitted) == has_keys, component
    # The app pods' blanket no-ingress policy does not select the store (it has no client label).
    assert "django-celery/client" not in sts["spec"]["template"]["metadata"]["labels"]


def test_networkpolicy_with_ingress_admits_the_controller_pods_only():
    policy = render_chart(values=INGRESS, show_only=["templates/networkpolicy/networkpolicy-s3.yaml"])[0]
    assert policy["spec"]["ingress"][1] == {
        "ports": [{"port": 9000, "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx",
                                                  "app.kubernetes.io/component": "controller"}}}]}
    # No controller listed: no route through the Ingress, not a rule open to every pod.
    values = deep_merge(INGRESS, {"networkPolicy": {"ingressControllers": []}})
    policy = render_chart(values=values, show_only=["templates/networkpolicy/networkpolicy-s3.yaml"])[0]
    assert len(policy["spec"]["ingress"]) == 1
    objects = render_chart(values=deep_merge(STORE, {"networkPolicy": {"enabled": False}}))
    assert not of_kind(objects, "NetworkPolicy")


def test_ingress_routes_its_host_to_the_store():
    ingress = render_chart(values=INGRESS, show_only=["templates/objectstore/s3-ingress.yaml"])[0]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "files-tls", "hosts": ["files.example.com"]}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "files.example.com"
    assert rule["http"]["paths"] == [{"path": "/", "pathType": "Prefix",
                                      "backend": {"service": {"name": NAME, "port": {"name": "s3"}}}}]


@pytest.mark.parametrize("values", [STORE, INGRESS, deep_merge(STORE, {
    "database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
    "workers": {"keda": {"redis": {"address": ""}}}})], ids=["store", "store-ingress", "all-bundled"])
def test_objects_are_valid_kubernetes(values):
    objects = render_chart(values=values)
    assert {"StatefulSet", "Service", "NetworkPolicy"} <= {o["kind"] for o in objects if o["metadata"]["name"] == NAME}
    validate_objects(objects)


@pytest.mark.parametrize("values, message", [
    ({"storage": {"objectStore": {"enabled": True}}},
     r"storage.objectStore.enabled=true needs storage.backend=s3 \(got storage.backend=filesystem\)"),
    (deep_merge(STORE, {"storage": {"s3": {"endpointUrl": "http://minio:9000"}}}),
     r"storage.s3.endpointUrl must be empty with storage.objectStore.enabled=true"),
    (deep_merge(STORE, {"storage": {"s3": {"bucket": ""}}}), r"storage.s3.bucket is required with storage.backend=s3"),
    (deep_merge(STORE, {"migrations": {"enabled": False}}), r"storage.objectStore.enabled=true needs migrations.enabled=true"),
    (deep_merge(STORE, {"migrations": {"helmHooks": True}, "secrets": {"existingSecret": "app-env"}}),
     r"storage.objectStore.enabled=true needs migrations.helmHooks=false"),
    ({"storage": {"objectStore": {"ingress": {"enabled": True}}}},
     r"storage.objectStore.ingress.enabled=true needs storage.objectStore.enabled=true"),
    (deep_merge(INGRESS, {"storage": {"objectStore": {"ingress": {"host": ""}}}}),
     r"storage.objectStore.ingress.host is required"),
], ids=["no-s3-backend", "endpoint-set", "no-bucket", "no-migrations", "helm-hooks", "ingress-without-store", "ingress-no-host"])
def test_bad_values_name_the_keys(values, message):
    with pytest.raises(HelmFailed, match=message):
        render_chart(values=values)
