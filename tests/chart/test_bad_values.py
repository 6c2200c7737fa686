"""Typos, wrong types, beat replicas > 1, missing secrets and an over-budget scale-out fail with the key named."""
import json

import jsonschema
import pytest
import yaml

from .helm_template_generator import CHART_DIR, HelmFailed, render_chart


@pytest.mark.parametrize("values, message", [
    ({"web": {"replcas": 3}}, r"web.*additional properties 'replcas' not allowed"),
    ({"wokers": {}}, r"additional properties 'wokers' not allowed"),
    ({"web": {"gunicorn": {"workers": "four"}}}, r"/web/gunicorn/workers.*got string, want integer"),
    ({"beat": {"replicas": 2}}, r"/beat/replicas.*value must be 1"),
    ({"workers": {"autoscaler": "cpu"}}, r"/workers/autoscaler.*value must be one of"),
    # Any queue name the project routes to is accepted (a typo is caught at deploy time by check_queues, which
    # finds nothing routed to it); one that cannot be a queue of CELERY_WORKER_QUEUES is refused here.
    ({"workers": {"pools": [{"name": "default", "queues": ["default,io"], "pool": "prefork", "concurrency": 1,
                             "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}]}}, r"/workers/pools/0/queues/0.*does not match pattern"),
    ({"broker": {"type": "sqs"}}, r"/broker/type"),
    ({"secrets": {"djangoSecretKey": "change-me"}}, r"/secrets/djangoSecretKey"),
    ({"storage": {"objectStore": {"enabled": "yes"}}}, r"/storage/objectStore/enabled.*got string, want boolean"),
    ({"storage": {"objectStore": {"persistance": {}}}}, r"additional properties 'persistance' not allowed"),
    ({"image": {"digest": "0.1.0"}}, r"/image/digest.*does not match pattern"),
    ({"metrics": {"prometheusRule": {"queueAgeBudgets": {"images": "1h"}}}}, r"/metrics/prometheusRule/queueAgeBudgets/images.*want integer"),
])
def test_schema_rejects_with_key_named(values, message):
    with pytest.raises(HelmFailed, match=message):
        render_chart(values=values)


def test_global_and_escape_hatches_are_allowed():
    render_chart(values={"global": {"imageRegistry": "registry.example.com", "anything": {"nested": True}},
                         "extraEnv": [{"name": "LOG_LEVEL", "value": "DEBUG"}],
                         "extraContainers": [{"name": "sidecar", "image": "x:1"}]})


@pytest.mark.parametrize("values, message", [
    ({"config": {"env": {"DJANGO_ALLOWED_HOSTS": ""}}}, r"config.env.DJANGO_ALLOWED_HOSTS is required"),
    ({"database": {"url": ""}}, r"database.url is required"),
    ({"broker": {"url": ""}}, r"broker.url is required for broker.type=redis"),
    ({"broker": {"type": "rabbitmq", "url": ""}}, r"broker.url is required for broker.type=rabbitmq"),
    ({"storage": {"backend": "s3", "s3": {"bucket": "b"}}}, r"storage.s3.accessKeyId and storage.s3.secretAccessKey are required"),
    ({"workers": {"keda": {"redis": {"address": ""}}}}, r"workers.keda.redis.address .* is required"),
    ({"redis": {"enabled": True}, "broker": {"type": "rabbitmq"}}, r"redis.enabled=true needs broker.type=redis"),
    ({"config": {"env": {"DEPLOYKIT_VISIBILITY_TIMEOUT": 200}}},
     r"config.env.DEPLOYKIT_VISIBILITY_TIMEOUT \(200\) must exceed config.env.CELERY_TASK_TIME_LIMIT \(300\)"),
    ({"workers": {"pools": [
        {"name": "a", "queues": ["default"], "pool": "prefork", "concurrency": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
        {"name": "a", "queues": ["io"], "pool": "threads", "concurrency": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}]}},
     r'workers.pools\[1\].name "a" is used twice'),
])
def test_render_time_checks_name_the_values(values, message):
    with pytest.raises(HelmFailed, match=message):
        render_chart(values=values)


def test_connection_budget_names_every_contributor():
    values = {"database": {"maxConnections": 50}}
    with pytest.raises(HelmFailed) as err:
        render_chart(values=values)
    msg = err.value.stderr
    assert "database connection budget exceeded" in msg
    assert "web.autoscaling.maxReplicas (6) × web.gunicorn.workers (2) × web.gunicorn.threads (4) = 48" in msg
    assert "workers.pools[1].autoscaling.maxReplicas (3) × workers.pools[1].concurrency (8) = 24" in msg
    assert "total 86 > database.maxConnections (50)" in msg


def test_connection_budget_exact_fit_renders():
    render_chart(values={"database": {"maxConnections": 86}})
    with pytest.raises(HelmFailed, match="total 86 > database.maxConnections \\(85\\)"):
        render_chart(values={"database": {"maxConnections": 85}})


def test_pgbouncer_moves_the_budget_to_client_connections():
    values = {"database": {"url": "", "maxConnections": 50}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
              "pgbouncer": {"enabled": True, "replicas": 2, "maxClientConn": 100, "defaultPoolSize": 20},
              "workers": {"keda": {"redis": {"address": ""}}}}
    render_chart(values=values)  # 86 client connections fit 2 × 100; 2 × 20 server connections fit 50
    with pytest.raises(HelmFailed, match=r"pgbouncer.replicas \(2\) × pgbouncer.defaultPoolSize \(30\) = 60 server connections exceed database.maxConnections \(50\)"):
        render_chart(values=values | {"pgbouncer": {"enabled": True, "replicas": 2, "maxClientConn": 100, "defaultPoolSize": 30}})


def test_values_yaml_matches_its_schema():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))
