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


def test_rabbitmq_management_api_for_web_only():
    """rabbitmq.management (on by default): the plugin and its port on the bundled broker, web's collector pointed
    at it, and the NetworkPolicy admitting web alone to that port (AMQP stays admitted to the app's clients);
    a URL in config.env wins; off, none of it."""
    values = {**BUNDLED, "networkPolicy": {"enabled": True}}
    objects = render_chart(values=values)
    sts = by_kind_name(objects, "StatefulSet", "release-django-celery-rabbitmq")
    container = pod_spec(sts)["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RABBITMQ_ENABLED_PLUGINS"] == "rabbitmq_management"
    # Written at boot: on the read-only root filesystem (/etc/rabbitmq) the broker refused to start.
    assert env["RABBITMQ_ENABLED_PLUGINS_FILE"].startswith("/run/rabbitmq/")
    assert {"name": "run", "mountPath": "/run/rabbitmq"} in container["volumeMounts"]
    assert {"name": "management", "containerPort": 15672} in container["ports"]
    assert "management.tcp.port = 15672" in container["command"][-1]
    svc = by_kind_name(objects, "Service", "release-django-celery-rabbitmq")
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("amqp", 5672), ("management", 15672)]
    assert svc["spec"]["type"] == "ClusterIP"
    config = by_kind_name(objects, "ConfigMap", "release-django-celery-config")["data"]
    assert config["DEPLOYKIT_RABBITMQ_MANAGEMENT_URL"] == "http://release-django-celery-rabbitmq:15672/"
    policy = by_kind_name(objects, "NetworkPolicy", "release-django-celery-rabbitmq")
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    assert rules[15672] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "django-celery", "app.kubernetes.io/instance": "release",
        "app.kubernetes.io/component": "web"}}}]
    assert rules[5672][0]["podSelector"]["matchLabels"]["django-celery/client"] == "true"

    own = render_chart(values={**values, "config": {"env": {"DEPLOYKIT_RABBITMQ_MANAGEMENT_URL": "http://mq.internal:15672/"}}})
    assert by_kind_name(own, "ConfigMap", "release-django-celery-config")["data"]["DEPLOYKIT_RABBITMQ_MANAGEMENT_URL"] == \
        "http://mq.internal:15672/"

    off = render_chart(values={**values, "rabbitmq": {"enabled": True, "management": {"enabled": False}}})
    container = pod_spec(by_kind_name(off, "StatefulSet", "release-django-celery-rabbitmq"))["containers"][0]
    assert "RABBITMQ_ENABLED_PLUGINS" not in {e["name"] for e in container["env"]}
    assert [p["port"] for p in by_kind_name(off, "Service", "release-django-celery-rabbitmq")["spec"]["ports"]] == [5672]
    assert "DEPLOYKIT_RABBITMQ_MANAGEMENT_URL" not in by_kind_name(off, "ConfigMap", "release-django-celery-config")["data"]
    policy = by_kind_name(off, "NetworkPolicy", "release-django-celery-rabbitmq")
    assert [rule["ports"][0]["port"] for rule in policy["spec"]["ingress"]] == [5672]


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
