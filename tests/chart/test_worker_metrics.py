"""metrics.workers: every pool's container serves DEPLOYKIT_WORKER_METRICS_PORT on a `metrics` port, a
PodMonitor scrapes them (with serviceMonitor), and only Prometheus is admitted to that port."""
from .helm_template_generator import of_kind, render_chart, validate_objects

ON = {"metrics": {"workers": {"enabled": True, "port": 9900}, "serviceMonitor": {"enabled": True}}}


def workers(objects):
    return [d for d in of_kind(objects, "Deployment")
            if d["metadata"]["labels"]["app.kubernetes.io/component"].startswith("worker-")]


def container(deployment):
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "worker")


def test_off_by_default():
    objects = render_chart()
    assert not of_kind(objects, "PodMonitor")
    for deployment in workers(objects):
        assert "ports" not in container(deployment)
        assert all(e["name"] != "DEPLOYKIT_WORKER_METRICS_PORT" for e in container(deployment).get("env", []))


def test_every_pool_serves_its_metrics_and_the_podmonitor_selects_every_pool():
    objects = render_chart(values=ON)
    pools = workers(objects)
    assert len(pools) >= 2
    for deployment in pools:
        env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
        assert env["DEPLOYKIT_WORKER_METRICS_PORT"] == "9900"
        assert container(deployment)["ports"] == [{"name": "metrics", "containerPort": 9900, "protocol": "TCP"}]
    (monitor,) = of_kind(objects, "PodMonitor")
    (selected,) = monitor["spec"]["selector"]["matchExpressions"]
    assert sorted(selected["values"]) == sorted(d["metadata"]["labels"]["app.kubernetes.io/component"] for d in pools)
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    validate_objects([monitor])


def test_only_prometheus_reaches_the_workers_metrics_port():
    objects = render_chart(values=ON)
    (policy,) = [p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("-worker-metrics")]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert "podSelector" in peer
    assert not [p for p in of_kind(render_chart(), "NetworkPolicy") if p["metadata"]["name"].endswith("-worker-metrics")]
