"""Only app pods reach the bundled broker/database; KEDA and Prometheus are allow-listed (keda#3939). Only the
ingress controller, Prometheus and the release's own pods reach web and Flower, and gunicorn trusts forwarded
headers from private addresses only (#20 item 5)."""
import pytest

from .helm_template_generator import HelmFailed, by_kind_name, of_kind, render_chart

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


WEB_POLICY = "release-django-celery-http"
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx",
                                                 "app.kubernetes.io/component": "controller"}}}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
OWN_PODS = {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "release", "django-celery/client": "true"}}}


def web_sources(values=None) -> list[dict]:
    [rule] = by_kind_name(render_chart(values=values or {}), "NetworkPolicy", WEB_POLICY)["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    return rule["from"]


def test_web_admits_the_ingress_controller_pods_prometheus_and_own_pods_only():
    # Namespace AND pod labels in one peer: other pods of the controller's namespace stay out (#20 item 5).
    assert web_sources() == [INGRESS_NGINX, PROMETHEUS, OWN_PODS]
    deny = by_kind_name(render_chart(values={}), "NetworkPolicy", "release-django-celery-no-ingress")
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]


def test_empty_controller_list_admits_no_controller_not_every_pod():
    # It used to render a rule without `from`: every pod of every namespace.
    values = {"networkPolicy": {"ingressControllers": [], "prometheus": {"namespace": ""}}}
    assert web_sources(values) == [OWN_PODS]
    assert web_sources({"networkPolicy": {"ingressControllers": [], "prometheus": None}}) == [OWN_PODS]


def test_controllers_are_configurable():
    controllers = [{"namespace": "kube-system", "podLabels": {"app.kubernetes.io/name": "traefik"}},
                   {"podLabels": {"app.kubernetes.io/name": "front-door"}},  # in the release's namespace
                   {"namespace": "gateway"},                                  # every pod there
                   {"cidr": "192.168.10.0/24"}]                               # hostNetwork controller's nodes
    values = {"networkPolicy": {"ingressControllers": controllers, "prometheus": {"podLabels": None}}}  # null clears a default map
    assert web_sources(values) == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "front-door"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}, "podSelector": {}},
        {"ipBlock": {"cidr": "192.168.10.0/24"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}, "podSelector": {}},
        OWN_PODS]


def test_controller_entry_is_cidr_or_selectors():
    values = {"networkPolicy": {"ingressControllers": [{"cidr": "10.1.0.0/16", "namespace": "ingress-nginx"}]}}
    with pytest.raises(HelmFailed, match="either cidr or namespace/podLabels"):
        render_chart(values=values)


def test_gunicorn_trusts_forwarded_headers_from_private_ranges_not_every_peer():
    configmap = by_kind_name(render_chart(values={}), "ConfigMap", "release-django-celery-config")
    assert configmap["data"]["FORWARDED_ALLOW_IPS"] == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
    narrowed = {"config": {"env": {"FORWARDED_ALLOW_IPS": "10.244.0.0/16"}}}
    configmap = by_kind_name(render_chart(values=narrowed), "ConfigMap", "release-django-celery-config")
    assert configmap["data"]["FORWARDED_ALLOW_IPS"] == "10.244.0.0/16"
    for every_peer in ("*", "10.0.0.0/8,*", "", " "):
        with pytest.raises(HelmFailed, match="FORWARDED_ALLOW_IPS must list"):
            render_chart(values={"config": {"env": {"FORWARDED_ALLOW_IPS": every_peer}}})


def test_hpa_mode_does_not_open_broker_to_keda():
    values = BUNDLED | {"workers": {"autoscaler": "hpa", "pools": [{"name": "default", "queues": ["default"], "pool": "prefork",
                                                                   "concurrency": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}]}}
    np = by_kind_name(render_chart(values=values), "NetworkPolicy", "release-django-celery-redis")
    assert len(np["spec"]["ingress"][0]["from"]) == 1


def test_disabled():
    assert not of_kind(render_chart(values=BUNDLED | {"networkPolicy": {"enabled": False}}), "NetworkPolicy")
