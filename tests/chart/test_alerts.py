"""The PrometheusRule carries files/alerts.yml as it is (the file `make test-alerts` unit-tests), plus the
per-deployment group rendered from values, which must read like tests/alerts/overrides.example.yml."""
import pytest
import yaml

from .helm_template_generator import CHART_DIR, REPO_ROOT, by_kind_name, of_kind, render_chart, validate_objects

TEMPLATE = "templates/monitoring/alerts-prometheusrule.yaml"
ALERTS_FILE = CHART_DIR / "files" / "alerts.yml"
OVERRIDES_EXAMPLE = REPO_ROOT / "tests" / "alerts" / "overrides.example.yml"
ON = {"metrics": {"prometheusRule": {"enabled": True}}}


def rule(values=None):
    values = {"metrics": {"prometheusRule": {"enabled": True, **(values or {})}}}
    objects = render_chart(values=values, show_only=[TEMPLATE])
    return by_kind_name(objects, "PrometheusRule", "release-django-celery-alerts")


def overrides(obj):
    groups = {g["name"]: g for g in obj["spec"]["groups"]}
    return groups.get("deploykit-overrides", {}).get("rules", [])


def test_off_by_default():
    assert not of_kind(render_chart(), "PrometheusRule")


def test_groups_are_the_files():
    obj = rule()
    file_groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    assert obj["spec"]["groups"][:len(file_groups)] == file_groups
    assert [g["name"] for g in obj["spec"]["groups"][len(file_groups):]] == ["deploykit-overrides"]
    validate_objects([obj])


def test_overrides_match_the_tested_example():
    """The default pools (images: KEDA minReplicas 0) and a budget render the group promtool tests with."""
    example = yaml.safe_load(OVERRIDES_EXAMPLE.read_text())["groups"][0]["rules"]
    assert overrides(rule({"queueAgeBudgets": {"images": 3600}})) == example


def test_pools_allowed_at_zero():
    pools = [{"name": "mixed", "queues": ["default", "io"], "replicas": 0, "autoscaling": {"minReplicas": 0}},
             {"name": "web-io", "queues": ["io"], "replicas": 1}]
    obj = render_chart(values={**ON, "workers": {"autoscaler": "none", "pools": pools}}, show_only=[TEMPLATE])[0]
    # autoscaler none: the pool fixed at 0 replicas, named by its node-name prefix (queues joined by "-").
    assert [r["labels"]["pool"] for r in overrides(obj)] == ["default-io"]
    # HPA never goes below 1: only the listed pools; a listed one found by the chart too appears once.
    obj = rule({"poolsAllowedAtZero": ["reports", "images"]})
    assert [r["labels"]["pool"] for r in overrides(obj)] == ["reports", "images"]
    hpa = render_chart(values={"metrics": {"prometheusRule": {"enabled": True}}, "workers": {"autoscaler": "hpa", "pools": [
        {"name": "default", "queues": ["default"], "autoscaling": {"minReplicas": 1}}]}}, show_only=[TEMPLATE])[0]
    assert overrides(hpa) == []
    assert [g["name"] for g in hpa["spec"]["groups"]] == ["deploykit-celery", "deploykit-services"]


def test_labels_for_the_rule_selector():
    obj = rule({"labels": {"release": "prometheus"}})
    assert obj["metadata"]["labels"]["release"] == "prometheus"
    assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "alerts"


@pytest.mark.parametrize("budget", [60, 86400])
def test_budget_is_an_integer_vector(budget):
    [budget_rule] = [r for r in overrides(rule({"queueAgeBudgets": {"reports": budget}})) if "queue" in r["labels"]]
    assert budget_rule == {"record": "deploykit:queue_age_budget_seconds", "expr": f"vector({budget})", "labels": {"queue": "reports"}}


def _alerts():
    return [r for g in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_has_severity_runbook_and_both_promtool_cases():
    """Severity page|ticket, summary/description/runbook, a section in docs/observability.md, and in
    tests/alerts/alerts.test.yml at least one case where it fires and one where it is expected quiet."""
    docs = (REPO_ROOT / "docs" / "observability.md").read_text()
    cases = [c for t in yaml.safe_load((REPO_ROOT / "tests" / "alerts" / "alerts.test.yml").read_text())["tests"]
             for c in t.get("alert_rule_test", [])]
    alerts = _alerts()
    assert len(alerts) >= 15
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("page", "ticket"), name
        assert set(alert["annotations"]) == {"summary", "description", "runbook"}, name
        assert alert["annotations"]["runbook"] == f"docs/observability.md#{name.lower()}"
        assert f"\n### {name}\n" in docs and f"[{name}](#{name.lower()})" in docs, name
        assert any(c["alertname"] == name and c.get("exp_alerts") for c in cases), f"{name}: no firing case"
        assert any(c["alertname"] == name and not c.get("exp_alerts") for c in cases), f"{name}: no quiet case"
