"""Beat's lock behind the bundled PgBouncer: a direct URL to PostgreSQL in the Secret, referenced by beat only."""
import base64

from .helm_template_generator import by_kind_name, pod_spec, render_chart

BUNDLED = {"database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True}}


def secret_data(values):
    secret = render_chart(values=values, show_only=["templates/config/secret.yaml"])[0]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_bundled_pgbouncer_gives_beat_a_direct_lock_url():
    data = secret_data({**BUNDLED, "pgbouncer": {"enabled": True}})
    assert "@release-django-celery-pgbouncer:5432/" in data["DATABASE_URL"]
    assert data["DEPLOYKIT_BEAT_LOCK_DATABASE_URL"] == data["DATABASE_URL"].replace("-pgbouncer:", "-postgresql:")
    beat = pod_spec(by_kind_name(render_chart(values={**BUNDLED, "pgbouncer": {"enabled": True}}), "Deployment",
                                 "release-django-celery-beat"))["containers"][0]
    ref = {e["name"]: e for e in beat["env"]}["DEPLOYKIT_BEAT_LOCK_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "DEPLOYKIT_BEAT_LOCK_DATABASE_URL" and ref["optional"] is True  # optional in an existingSecret


def test_without_pgbouncer_no_lock_url_and_only_beat_asks_for_it():
    assert "DEPLOYKIT_BEAT_LOCK_DATABASE_URL" not in secret_data(BUNDLED)
    objects = render_chart(values={**BUNDLED, "pgbouncer": {"enabled": True}})
    users = {obj["metadata"]["name"] for obj in objects if obj["kind"] == "Deployment"
             for c in pod_spec(obj)["containers"] for e in c.get("env", [])
             if e["name"] == "DEPLOYKIT_BEAT_LOCK_DATABASE_URL"}
    assert users == {"release-django-celery-beat"}
