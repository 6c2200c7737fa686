"""KEDA ScaledObjects per pool on its own queues (Redis list / RabbitMQ queue length), HPA fallback."""
import base64

import pytest

from .helm_template_generator import HelmFailed, by_kind_name, of_kind, render_chart

SO = "templates/worker/worker-scaledobject.yaml"
TA = "templates/worker/worker-triggerauthentication.yaml"


def test_redis_trigger_per_queue_with_values():
    values = {"workers": {"pools": [{"name": "mixed", "queues": ["default", "io"], "pool": "prefork", "concurrency": 2,
                                     "autoscaling": {"minReplicas": 0, "maxReplicas": 7, "pollingInterval": 5, "cooldownPeriod": 120,
                                                     "scaleDownStabilizationSeconds": 90, "scaleDownPeriodSeconds": 20,
                                                     "queueLength": 3, "activationQueueLength": 1}}]}}
    so = render_chart(values=values, show_only=[SO])[0]
    spec = so["spec"]
    assert spec["scaleTargetRef"]["name"] == "release-django-celery-worker-mixed"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"], spec["cooldownPeriod"]) == (0, 7, 5, 120)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 90, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 20}]}
    triggers = spec["triggers"]
    assert [t["metadata"]["listName"] for t in triggers] == ["default", "io"]
    assert all(t["type"] == "redis" and t["metadata"]["listLength"] == "3" and t["metadata"]["activationListLength"] == "1" for t in triggers)
    assert triggers[0]["metadata"]["address"] == "redis.example.com:6379"
    assert triggers[0]["authenticationRef"]["name"] == "release-django-celery-keda-broker"


def test_each_pool_scales_on_its_own_queue():
    sos = {o["metadata"]["name"]: o for o in render_chart(show_only=[SO])}
    queues = {name: [t["metadata"]["listName"] for t in so["spec"]["triggers"]] for name, so in sos.items()}
    assert queues == {"release-django-celery-worker-default": ["default"], "release-django-celery-worker-io": ["io"],
                      "release-django-celery-worker-images": ["images"]}


def test_redis_password_from_secret_via_trigger_authentication():
    ta = render_chart(show_only=[TA])[0]
    assert ta["kind"] == "TriggerAuthentication"
    assert ta["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "release-django-celery", "key": "redis-password"}]


def test_bundled_redis_address_defaults_to_service():
    # Namespace-qualified: KEDA's operator resolves it from its own namespace (a bare name failed
    # there on the live cluster: "lookup release-django-celery-redis ... no such host").
    so = render_chart(values={"redis": {"enabled": True}, "broker": {"url": ""}, "workers": {"keda": {"redis": {"address": ""}}}}, show_only=[SO])[0]
    assert so["spec"]["triggers"][0]["metadata"]["address"] == "release-django-celery-redis.apps.svc:6379"


def test_bundled_rabbitmq_url_is_namespace_qualified_for_the_keda_scaler():
    values = {"broker": {"type": "rabbitmq", "url": ""}, "rabbitmq": {"enabled": True}}
    secret = render_chart(values=values, show_only=["templates/config/secret.yaml"])[0]
    url = base64.b64decode(secret["data"]["CELERY_BROKER_URL"]).decode()
    assert "@release-django-celery-rabbitmq.apps.svc:5672/" in url, url


def test_rabbitmq_queue_length_with_trigger_authentication():
    values = {"broker": {"type": "rabbitmq", "url": "amqp://u:p@mq:5672/app"}}
    objects = render_chart(values=values, show_only=[SO, TA])
    ta = of_kind(objects, "TriggerAuthentication")[0]
    assert ta["spec"]["secretTargetRef"] == [{"parameter": "host", "name": "release-django-celery", "key": "CELERY_BROKER_URL"}]
    so = by_kind_name(objects, "ScaledObject", "release-django-celery-worker-io")
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"] == {"protocol": "amqp", "queueName": "io", "mode": "QueueLength", "value": "20", "activationValue": "0"}
    assert trigger["authenticationRef"]["name"] == ta["metadata"]["name"]
    assert "host" not in trigger["metadata"]  # credentials never inline


def test_hpa_fallback_on_cpu_memory():
    values = {"workers": {"autoscaler": "hpa", "pools": [{"name": "default", "queues": ["default"], "pool": "prefork", "concurrency": 2,
              "autoscaling": {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60,
                              "targetMemoryUtilizationPercentage": 75, "scaleDownStabilizationSeconds": 600}}]}}
    objects = render_chart(values=values)
    assert not of_kind(objects, "ScaledObject") and not of_kind(objects, "TriggerAuthentication")
    hpa = by_kind_name(objects, "HorizontalPodAutoscaler", "release-django-celery-worker-default")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]} == {"cpu": 60, "memory": 75}
    assert hpa["spec"]["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 600,
                                                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}
    # Autoscaled Deployments leave replicas to the autoscaler.
    assert "replicas" not in by_kind_name(objects, "Deployment", "release-django-celery-worker-default")["spec"]


def test_no_autoscaler_uses_fixed_replicas():
    objects = render_chart(values={"workers": {"autoscaler": "none"}})
    assert not of_kind(objects, "ScaledObject")
    assert not [h for h in of_kind(objects, "HorizontalPodAutoscaler") if "-worker-" in h["metadata"]["name"]]
    assert by_kind_name(objects, "Deployment", "release-django-celery-worker-io")["spec"]["replicas"] == 1


def test_hpa_cannot_scale_to_zero():
    # The default images pool has minReplicas 0, which only KEDA can serve.
    with pytest.raises(HelmFailed, match=r"workers.pools\[2\].autoscaling.minReplicas must be at least 1"):
        render_chart(values={"workers": {"autoscaler": "hpa"}})


def test_scale_on_work_reads_the_pools_waiting_and_in_flight_tasks_from_web():
    """autoscaling.scaleOn work: one metrics-api trigger for the pool, on web's internal /status?queues= of its
    queues, one replica per `concurrency` tasks of work; KEDA's operator is admitted to web's port. Another
    pool keeps its list-length triggers."""
    values = {"workers": {"pools": [{"name": "mixed", "queues": ["default", "io"], "concurrency": 4,
                                     "autoscaling": {"activationQueueLength": 1, "scaleOn": "work"}},
                                    {"name": "images", "queues": ["images"]}]}}
    objects = render_chart(values=values, show_only=[SO, "templates/networkpolicy/networkpolicy-app.yaml"])
    (trigger,) = by_kind_name(objects, "ScaledObject", "release-django-celery-worker-mixed")["spec"]["triggers"]
    assert trigger == {"type": "metrics-api", "metadata": {
        "url": "http://release-django-celery-web.apps.svc:80/status?queues=default,io", "format": "json",
        "valueLocation": "work", "targetValue": "4", "activationTargetValue": "1"}}
    images = by_kind_name(objects, "ScaledObject", "release-django-celery-worker-images")["spec"]["triggers"]
    assert [(t["type"], t["metadata"]["listName"]) for t in images] == [("redis", "images")]
    http = by_kind_name(objects, "NetworkPolicy", "release-django-celery-http")
    peers = http["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} in peers
    default = render_chart(show_only=["templates/networkpolicy/networkpolicy-app.yaml"])
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}} not in \
        by_kind_name(default, "NetworkPolicy", "release-django-celery-http")["spec"]["ingress"][0]["from"]


def test_scale_on_refuses_an_unknown_source():
    with pytest.raises(HelmFailed, match="scaleOn"):
        render_chart(values={"workers": {"poolDefaults": {"autoscaling": {"scaleOn": "cpu"}}}}, show_only=[SO])
