"""Every value set of the matrix renders with the real helm CLI, passes `helm lint --strict`, and every
object is valid for three Kubernetes minors (and KEDA / prometheus-operator CRD schemas)."""
import pytest

from .helm_template_generator import CHART_DIR, BASE_VALUES, deep_merge, render_chart, run_helm, validate_objects

EXTERNAL_RABBITMQ = {"broker": {"type": "rabbitmq", "url": "amqp://app:pw@mq.example.com:5672/app"}}
BUNDLED_REDIS = {"database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
                 "workers": {"keda": {"redis": {"address": ""}}}}
BUNDLED_RABBITMQ = {"database": {"url": ""}, "broker": {"type": "rabbitmq", "url": ""}, "rabbitmq": {"enabled": True},
                    "postgresql": {"enabled": True}}
INGRESS = {"web": {"ingress": {"enabled": True, "className": "nginx", "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                               "tls": [{"secretName": "app-tls", "hosts": ["app.example.com"]}]}},
           "flower": {"ingress": {"enabled": True, "className": "nginx", "tls": [{"secretName": "app-tls", "hosts": ["app.example.com"]}]}}}
MANY_POOLS = {"workers": {"pools": [
    {"name": "default", "queues": ["default"], "pool": "prefork", "concurrency": 2, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}},
    {"name": "io", "queues": ["io"], "pool": "threads", "concurrency": 4, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
    {"name": "images", "queues": ["images"], "pool": "prefork", "concurrency": 1, "autoscaling": {"minReplicas": 0, "maxReplicas": 4}},
    {"name": "mixed", "queues": ["default", "io"], "pool": "prefork", "concurrency": 2, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
]}}

MATRIX = {
    "defaults-external-redis-keda": {},
    "external-rabbitmq-keda": EXTERNAL_RABBITMQ,
    "bundled-redis-postgresql": BUNDLED_REDIS,
    "bundled-rabbitmq-postgresql": BUNDLED_RABBITMQ,
    "hpa-fallback": {"workers": {"autoscaler": "hpa", "pools": [{"name": "default", "queues": ["default", "io", "images"], "pool": "prefork",
                                                                 "concurrency": 2, "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetMemoryUtilizationPercentage": 80}}]}},
    "no-autoscaling": {"workers": {"autoscaler": "none"}, "web": {"autoscaling": {"enabled": False}}},
    "ingress-on": INGRESS,
    "many-pools": MANY_POOLS,
    "deletion-cost-scale-on-work": deep_merge(MANY_POOLS, {"workers": {"deletionCost": {"enabled": True},
                                                                       "poolDefaults": {"autoscaling": {"scaleOn": "work"}}}}),
    "bundled-pgbouncer": deep_merge(BUNDLED_REDIS, {"pgbouncer": {"enabled": True}}),
    "s3-storage": {"storage": {"backend": "s3", "s3": {"endpointUrl": "http://s3:9000", "bucket": "media", "accessKeyId": "k", "secretAccessKey": "s"}}},
    "bundled-object-store": {"storage": {"backend": "s3", "s3": {"bucket": "media"},
                                         "objectStore": {"enabled": True, "ingress": {"enabled": True, "className": "nginx",
                                                                                      "tls": [{"secretName": "s3-tls", "hosts": ["s3.example.com"]}]}}}},
    "existing-secret-servicemonitor": {"secrets": {"existingSecret": "app-env"}, "database": {"url": ""}, "broker": {"url": ""},
                                       "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                                                   "prometheusRule": {"enabled": True, "queueAgeBudgets": {"images": 3600}}}},
    "helm-hooks": {"secrets": {"existingSecret": "app-env"}, "migrations": {"helmHooks": True}},
    "minimal-components": {"beat": {"enabled": False}, "flower": {"enabled": False}, "networkPolicy": {"enabled": False},
                           "migrations": {"enabled": False}, "topologySpread": {"enabled": False}, "serviceAccount": {"create": False}},
}


@pytest.mark.parametrize("values", MATRIX.values(), ids=MATRIX.keys())
def test_matrix_renders_valid_objects(values):
    objects = render_chart(values=values)
    assert len(objects) >= 8
    validate_objects(objects)


@pytest.mark.parametrize("values", [MATRIX["defaults-external-redis-keda"], BUNDLED_RABBITMQ, INGRESS], ids=["defaults", "bundled-rabbitmq", "ingress"])
def test_helm_lint_strict(values):
    out = run_helm("lint", "--strict", str(CHART_DIR), values=deep_merge(BASE_VALUES, values))
    assert "0 chart(s) failed" in out


def test_matrix_covers_each_dimension():
    """The matrix itself: both brokers, both service modes, both autoscalers, ingress, several pools."""
    rendered = {k: render_chart(values=v) for k, v in MATRIX.items()}
    kinds = {k: {o["kind"] for o in objs} for k, objs in rendered.items()}
    assert "ScaledObject" in kinds["defaults-external-redis-keda"] and "ScaledObject" not in kinds["hpa-fallback"]
    assert "StatefulSet" in kinds["bundled-rabbitmq-postgresql"] and "StatefulSet" not in kinds["external-rabbitmq-keda"]
    assert "Ingress" in kinds["ingress-on"] and "Ingress" not in kinds["defaults-external-redis-keda"]
    assert "StatefulSet" in kinds["bundled-object-store"] and "StatefulSet" not in kinds["s3-storage"]
    assert len([o for o in rendered["many-pools"] if o["kind"] == "Deployment" and "worker" in o["metadata"]["name"]]) == 4
