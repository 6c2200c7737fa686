"""Only app pods reach the bundled broker/database; KEDA and Prometheus are allow-listed (keda#3939)."""
from .helm_template_generator import by_kind_name, of_kind, render_chart

BUNDLED = {"database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
           "workers": {"keda": {"redis": {"address": ""}}}}


def test_broker_admits_app_pods_and_keda_operator():
    np = by_kind_name(render_chart(values=BUNDLED), "NetworkPolicy", "release-django-celery-redis")
    assert np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"
    rule = np["spec"]["ingress"][0]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    assert rule["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "release", "django-celery/client": "true"}
    assert rule["from"][1]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}


def test_database_admits_app_pods_only():
    np = by_kind_name(render_chart(values=BUNDLED), "NetworkPolicy", "release-django-celery-postgresql")
    assert len(np["spec"]["ingress"][0]["from"]) == 1


def test_app_pods_carry_the_client_label_services_do_not():
    objects = render_chart(values=BUNDLED)
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        labels = obj["spec"]["template"]["metadata"]["labels"]
        bundled = obj["kind"] == "StatefulSet"
        assert (labels.get("django-celery/client") == "true") != bundled, obj["metadata"]["name"]


def test_web_allows_ingress_and_prometheus_namespaces():
    objects = render_chart(values={"networkPolicy": {"ingressNamespaces": ["ingress-nginx"], "prometheusNamespace": "monitoring"}})
    np = by_kind_name(objects, "NetworkPolicy", "release-django-celery-http")
    sources = np["spec"]["ingress"][0]["from"]
    names = [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in sources if "namespaceSelector" in s]
    assert names == ["ingress-nginx", "monitoring"]
    deny = by_kind_name(objects, "NetworkPolicy", "release-django-celery-no-ingress")
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]


def test_hpa_mode_does_not_open_broker_to_keda():
    values = BUNDLED | {"workers": {"autoscaler": "hpa", "pools": [{"name": "default", "queues": ["default"], "pool": "prefork",
                                                                   "concurrency": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}]}}
    np = by_kind_name(render_chart(values=values), "NetworkPolicy", "release-django-celery-redis")
    assert len(np["spec"]["ingress"][0]["from"]) == 1


def test_disabled():
    assert not of_kind(render_chart(values=BUNDLED | {"networkPolicy": {"enabled": False}}), "NetworkPolicy")
