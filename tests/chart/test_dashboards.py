"""The Grafana dashboards ConfigMap (metrics.dashboards): off by default; on, it carries every file of
files/dashboards unchanged under the sidecar's label. The panels' queries are run against a live Prometheus
by the Compose smoke suite (tests/smoke/test_observability.py)."""
import json

from .helm_template_generator import CHART_DIR, by_kind_name, of_kind, render_chart, validate_objects

TEMPLATE = "templates/monitoring/dashboards-configmap.yaml"
DASHBOARDS = sorted((CHART_DIR / "files" / "dashboards").glob("*.json"))


def configmap(values=None):
    objects = render_chart(values={"metrics": {"dashboards": {"enabled": True, **(values or {})}}},
                           show_only=[TEMPLATE])
    return by_kind_name(objects, "ConfigMap", "release-django-celery-dashboards")


def test_off_by_default():
    assert not [o for o in of_kind(render_chart(), "ConfigMap") if o["metadata"]["name"].endswith("-dashboards")]


def test_every_dashboard_file_unchanged_under_the_sidecar_label():
    obj = configmap()
    assert obj["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(obj["data"]) == [p.name for p in DASHBOARDS] == [
        "deploykit-queues.json", "deploykit-tasks.json", "deploykit-web.json", "deploykit-workers.json"]
    for path in DASHBOARDS:
        assert obj["data"][path.name] == path.read_text()
    validate_objects([obj])


def test_labels_and_annotations_from_values():
    obj = configmap({"labels": {"grafana_dashboard": "deploykit"}, "annotations": {"grafana_folder": "Celery"}})
    assert obj["metadata"]["labels"]["grafana_dashboard"] == "deploykit"
    assert obj["metadata"]["annotations"] == {"grafana_folder": "Celery"}


def test_dashboards_are_grafana_json_on_a_prometheus_datasource_variable():
    """Each file: a unique uid, panels that query through the ${datasource} variable (so the sidecar's
    dashboards work with whatever the Prometheus data source is named), one PromQL target at least."""
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids
        uids.add(board["uid"])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        assert board["panels"], path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", (path.name, panel["title"])
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), (path.name, panel["title"])
