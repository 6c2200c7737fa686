"""Evaluation-only services: labelled as such, sized from the values, credentials from the app Secret."""
from .helm_template_generator import by_kind_name, pod_spec, render_chart

BUNDLED = {"database": {"url": "", "maxConnections": 120}, "broker": {"type": "rabbitmq", "url": ""},
           "rabbitmq": {"enabled": True}, "postgresql": {"enabled": True}}


def test_postgresql_max_connections_follow_the_budget():
    sts = by_kind_name(render_chart(values=BUNDLED), "StatefulSet", "release-django-celery-postgresql")
    container = pod_spec(sts)["containers"][0]
    script = container["command"][-1]
    # The app's budget plus the superuser reserve.
    assert "max_connections=123" in script and "superuser_reserved_connections=3" in script
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "release-django-celery", "key": "postgresql-password"}
    assert sts["metadata"]["labels"]["django-celery/evaluation-only"] == "true"


def test_rabbitmq_user_vhost_and_password_from_secret():
    sts = by_kind_name(render_chart(values=BUNDLED), "StatefulSet", "release-django-celery-rabbitmq")
    container = pod_spec(sts)["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["RABBITMQ_VHOST"]["value"] == "app"
    assert env["RABBITMQ_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "rabbitmq-password"
    assert container["startupProbe"]["exec"]["command"] == ["rabbitmq-diagnostics", "-q", "ping"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_services_are_cluster_internal():
    objects = render_chart(values=BUNDLED)
    for name in ("rabbitmq", "postgresql"):
        svc = by_kind_name(objects, "Service", f"release-django-celery-{name}")
        assert svc["spec"]["type"] == "ClusterIP"


def test_pgbouncer_transaction_pooling_config():
    values = {"database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
              "pgbouncer": {"enabled": True, "maxClientConn": 300, "defaultPoolSize": 15}, "workers": {"keda": {"redis": {"address": ""}}}}
    objects = render_chart(values=values)
    ini = by_kind_name(objects, "ConfigMap", "release-django-celery-pgbouncer")["data"]["pgbouncer.ini"]
    assert "pool_mode = transaction" in ini and "max_client_conn = 300" in ini and "default_pool_size = 15" in ini
    assert "app = host=release-django-celery-postgresql port=5432 dbname=app" in ini
    dep = by_kind_name(objects, "Deployment", "release-django-celery-pgbouncer")
    assert pod_spec(dep)["volumes"][1]["secret"]["items"] == [{"key": "pgbouncer-userlist", "path": "userlist.txt"}]
