"""Production defaults on every pod the chart renders: non-root, read-only root, no capabilities,
seccomp RuntimeDefault, writable emptyDir /tmp, ServiceAccount without token, topology spread."""
import pytest

from .helm_template_generator import by_kind_name, pod_spec, render_chart
from .test_render_matrix import BUNDLED_RABBITMQ, BUNDLED_REDIS, MATRIX

WORKLOADS = ("Deployment", "StatefulSet", "Job")


def workloads(objects):
    return [o for o in objects if o["kind"] in WORKLOADS]


@pytest.mark.parametrize("values", [MATRIX["defaults-external-redis-keda"], BUNDLED_REDIS, BUNDLED_RABBITMQ,
                                    MATRIX["bundled-pgbouncer"], MATRIX["bundled-object-store"]],
                         ids=["defaults", "bundled-redis", "bundled-rabbitmq", "pgbouncer", "object-store"])
def test_every_container_is_hardened(values):
    found = 0
    for obj in workloads(render_chart(values=values)):
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (obj["metadata"]["name"], c["name"])
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "add" not in sc["capabilities"]
            found += 1
    assert found >= 6


def test_writable_tmp_is_an_emptydir():
    dep = by_kind_name(render_chart(), "Deployment", "release-django-celery-worker-default")
    spec = pod_spec(dep)
    tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/tmp"] == "tmp"
    assert mounts["/var/lib/app/media"] == "media"


def test_every_long_running_container_has_three_probes():
    values = BUNDLED_REDIS | {"pgbouncer": {"enabled": True}}
    for obj in workloads(render_chart(values=values)):
        if obj["kind"] == "Job":
            continue
        for c in pod_spec(obj)["containers"]:
            missing = {"livenessProbe", "readinessProbe", "startupProbe"} - set(c)
            assert not missing, (obj["metadata"]["name"], c["name"], missing)


def test_service_account_without_token():
    objects = render_chart(values={"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/app"}}})
    sa = by_kind_name(objects, "ServiceAccount", "release-django-celery")
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:")
    assert pod_spec(by_kind_name(objects, "Deployment", "release-django-celery-web"))["serviceAccountName"] == "release-django-celery"


def test_topology_spread_per_component():
    spec = pod_spec(by_kind_name(render_chart(), "Deployment", "release-django-celery-web"))
    constraints = spec["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert constraints[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "web"


def test_escape_hatches_reach_every_app_pod():
    values = {"extraEnv": [{"name": "LOG_LEVEL", "value": "DEBUG"}], "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
              "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/corp-ca"}],
              "extraContainers": [{"name": "proxy", "image": "example/proxy:1"}]}
    objects = render_chart(values=values)
    for name in ("web", "worker-default", "beat", "flower"):
        spec = pod_spec(by_kind_name(objects, "Deployment", f"release-django-celery-{name}"))
        main = spec["containers"][0]
        assert {"name": "LOG_LEVEL", "value": "DEBUG"} in main["env"]
        assert {"name": "ca", "mountPath": "/etc/corp-ca"} in main["volumeMounts"]
        assert "ca" in [v["name"] for v in spec["volumes"]]
        assert [c["name"] for c in spec["containers"]][-1] == "proxy"
