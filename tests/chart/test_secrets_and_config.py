"""Config and secrets: contract names only, existingSecret everywhere, generated secrets kept, checksums."""
import base64
import re
from pathlib import Path

from .helm_template_generator import REPO_ROOT, by_kind_name, of_kind, pod_spec, render_chart

CONTRACT = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO_ROOT / "docs" / "configuration.md").read_text()))


def decoded(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def app_containers(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job") and obj["metadata"]["labels"]["app.kubernetes.io/component"] != "pgbouncer":
            spec = pod_spec(obj)
            yield from spec["containers"] + spec.get("initContainers", [])


def test_app_env_uses_contract_names_only():
    objects = render_chart(values={"storage": {"backend": "s3", "s3": {"bucket": "b", "accessKeyId": "k", "secretAccessKey": "s"}}})
    config = by_kind_name(objects, "ConfigMap", "release-django-celery-config")
    assert set(config["data"]) <= CONTRACT, set(config["data"]) - CONTRACT
    for c in app_containers(objects):
        assert {e["name"] for e in c["env"]} <= CONTRACT, (c["name"], {e["name"] for e in c["env"]} - CONTRACT)


def test_generated_secret_holds_urls_and_random_values():
    secret = decoded(render_chart(show_only=["templates/config/secret.yaml"])[0])
    assert secret["DATABASE_URL"] == "postgres://app:pw@db.example.com:5432/app"
    assert secret["CELERY_BROKER_URL"] == "redis://:pw@redis.example.com:6379/0"
    assert len(secret["DJANGO_SECRET_KEY"]) == 64 and len(secret["FLOWER_PASSWORD"]) == 32


def test_generated_values_are_looked_up_so_upgrades_keep_them():
    source = (REPO_ROOT / "helm/django-celery/templates/config/secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in source
    secret = render_chart(show_only=["templates/config/secret.yaml"])[0]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_bundled_services_urls_share_the_generated_passwords():
    values = {"database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True}}
    secret = decoded(render_chart(values=values, show_only=["templates/config/secret.yaml"])[0])
    assert secret["CELERY_BROKER_URL"] == f"redis://:{secret['redis-password']}@release-django-celery-redis:6379/0"
    assert secret["DATABASE_URL"] == f"postgres://app:{secret['postgresql-password']}@release-django-celery-postgresql:5432/app"


def test_existing_secret_everywhere_and_no_secret_rendered():
    values = {"secrets": {"existingSecret": "app-env"}, "database": {"url": ""}, "broker": {"url": ""}}
    objects = render_chart(values=values)
    assert not of_kind(objects, "Secret")
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for c in app_containers(objects) for e in c["env"] if "valueFrom" in e}
    assert refs == {"app-env"}
    ta = of_kind(objects, "TriggerAuthentication")[0]
    assert ta["spec"]["secretTargetRef"][0]["name"] == "app-env"
    # Nothing secret may leak into the ConfigMap.
    assert not [v for v in by_kind_name(objects, "ConfigMap", "release-django-celery-config")["data"].values() if "://" in v and "@" in v]


def test_checksum_annotations_roll_pods_on_config_change():
    def checksums(values=None):
        dep = by_kind_name(render_chart(values=values), "Deployment", "release-django-celery-web")
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        return ann["checksum/config"], ann["checksum/secret"]
    fixed = {"secrets": {"djangoSecretKey": "k" * 60, "flowerPassword": "p" * 20}}
    base = checksums(fixed)
    assert checksums(fixed) == base
    assert checksums(fixed | {"config": {"env": {"DJANGO_ALLOWED_HOSTS": "other.example.com"}}})[0] != base[0]
    assert checksums({"secrets": {"djangoSecretKey": "x" * 60, "flowerPassword": "p" * 20}})[1] != base[1]
    with_existing = checksums({"secrets": {"existingSecret": "app-env"}})
    assert with_existing[1] == checksums({"secrets": {"existingSecret": "app-env"}})[1]


def test_secret_checksums_do_not_change_between_renders_of_generated_secrets():
    """Generated passwords are random at each render; a checksum over them differed between `helm install`
    and the first `helm upgrade` and restarted the bundled Redis and PostgreSQL in the middle of it."""
    values = {"database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
              "workers": {"keda": {"redis": {"address": ""}}}}

    def checksums():
        return {(o["kind"], o["metadata"]["name"]): o["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
                for o in render_chart(values=values) if o["kind"] in ("Deployment", "StatefulSet")
                and "checksum/secret" in o["spec"]["template"]["metadata"].get("annotations", {})}

    first = checksums()
    assert {("StatefulSet", "release-django-celery-redis"), ("StatefulSet", "release-django-celery-postgresql"),
            ("Deployment", "release-django-celery-web")} <= set(first)
    assert checksums() == first
    changed = values | {"redis": {"enabled": True, "password": "r" * 32}}
    assert render_chart(values=changed) and checksums() == first  # the render itself stays stable
    redis = by_kind_name(render_chart(values=changed), "StatefulSet", "release-django-celery-redis")
    assert redis["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] != first[("StatefulSet", "release-django-celery-redis")]


def test_checksums_on_every_app_pod():
    for dep in of_kind(render_chart(), "Deployment"):
        ann = dep["spec"]["template"]["metadata"].get("annotations", {})
        assert "checksum/config" in ann and "checksum/secret" in ann, dep["metadata"]["name"]


def test_pgbouncer_forces_conn_max_age_zero():
    values = {"database": {"url": ""}, "broker": {"url": ""}, "redis": {"enabled": True}, "postgresql": {"enabled": True},
              "pgbouncer": {"enabled": True}, "workers": {"keda": {"redis": {"address": ""}}}}
    objects = render_chart(values=values)
    assert by_kind_name(objects, "ConfigMap", "release-django-celery-config")["data"]["DATABASE_CONN_MAX_AGE"] == "0"
    secret = decoded(by_kind_name(objects, "Secret", "release-django-celery"))
    assert "@release-django-celery-pgbouncer:5432/" in secret["DATABASE_URL"]
    assert secret["pgbouncer-userlist"] == f'"app" "{secret["postgresql-password"]}"\n'


def test_media_claim_is_read_write_many():
    pvc = by_kind_name(render_chart(), "PersistentVolumeClaim", "release-django-celery-media")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    objects = render_chart(values={"storage": {"persistence": {"existingClaim": "shared-media"}}})
    assert not of_kind(objects, "PersistentVolumeClaim")
    vols = pod_spec(by_kind_name(objects, "Deployment", "release-django-celery-web"))["volumes"]
    assert {"name": "media", "persistentVolumeClaim": {"claimName": "shared-media"}} in vols


def test_bundled_redis_auth_aof_noeviction():
    values = {"broker": {"url": ""}, "redis": {"enabled": True}, "workers": {"keda": {"redis": {"address": ""}}}}
    sts = by_kind_name(render_chart(values=values), "StatefulSet", "release-django-celery-redis")
    args = pod_spec(sts)["containers"][0]["args"]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--appendonly"] == "yes" and pairs["--maxmemory-policy"] == "noeviction"
    assert pairs["--requirepass"] == "$(REDIS_PASSWORD)"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert sts["metadata"]["labels"]["django-celery/evaluation-only"] == "true"


def test_each_container_gets_only_the_secrets_it_uses():
    objects = render_chart(values={"secrets": {"superuser": {"username": "ops", "email": "ops@example.com"}}})
    def secret_env(kind, name):
        c = pod_spec(by_kind_name(objects, kind, name))["containers"][0]
        return {e["name"] for e in c["env"] if "valueFrom" in e}
    flower = secret_env("Deployment", "release-django-celery-flower")
    web = secret_env("Deployment", "release-django-celery-web")
    migrate = secret_env("Job", of_kind(objects, "Job")[0]["metadata"]["name"])
    assert {"FLOWER_USER", "FLOWER_PASSWORD"} <= flower and not {"FLOWER_USER", "FLOWER_PASSWORD"} & web
    assert {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD"} <= migrate
    assert not {n for n in web if n.startswith("DJANGO_SUPERUSER_")}
    secret = decoded(by_kind_name(objects, "Secret", "release-django-celery"))
    assert secret["DJANGO_SUPERUSER_USERNAME"] == "ops" and len(secret["DJANGO_SUPERUSER_PASSWORD"]) == 32


def test_integer_settings_render_as_plain_digits():
    """Helm reads numbers as float64; 1000000 and above must not reach the app as '1e+06' (it refuses them)."""
    big = {"config": {"env": {"DJANGO_SECURE_HSTS_SECONDS": 63072000, "UPLOAD_MAX_BYTES": 104857600,
                              "IMAGE_MAX_PIXELS": 178956970, "CELERY_RESULT_EXPIRES": 2592000,
                              "DEPLOYKIT_VISIBILITY_TIMEOUT": 43200, "CELERY_WORKER_MAX_MEMORY_PER_CHILD": 4194304}}}
    for values in ({}, big):
        data = render_chart(values=values, show_only=["templates/config/configmap.yaml"])[0]["data"]
        # The reference project's own UPLOAD_MAX_BYTES and IMAGE_MAX_PIXELS are set only when given.
        for key in ("DJANGO_SECURE_HSTS_SECONDS", "UPLOAD_MAX_BYTES", "IMAGE_MAX_PIXELS", "CELERY_RESULT_EXPIRES",
                    "DEPLOYKIT_VISIBILITY_TIMEOUT", "CELERY_WORKER_MAX_MEMORY_PER_CHILD", "PORT", "GUNICORN_TIMEOUT"):
            if values or key not in ("UPLOAD_MAX_BYTES", "IMAGE_MAX_PIXELS"):
                assert re.fullmatch(r"[0-9]+", data[key]), (key, data[key])
    data = render_chart(values=big, show_only=["templates/config/configmap.yaml"])[0]["data"]
    assert (data["DJANGO_SECURE_HSTS_SECONDS"], data["IMAGE_MAX_PIXELS"]) == ("63072000", "178956970")
    assert render_chart(show_only=["templates/config/configmap.yaml"])[0]["data"]["DJANGO_SECURE_HSTS_SECONDS"] == "31536000"


def test_secret_key_fallbacks_optional_and_only_where_signatures_are_checked():
    """DJANGO_SECRET_KEY_FALLBACKS (rotating the key, docs/configuration.md#rotating-secrets): absent from the
    Secret unless given, an optional reference (absent = no fallback) in web, the workers and beat only."""
    def fallback_refs(objects):
        refs = {}
        for obj in objects:
            if obj["kind"] in ("Deployment", "Job") and obj["metadata"]["labels"]["app.kubernetes.io/component"] != "pgbouncer":
                for c in pod_spec(obj)["containers"]:
                    for e in c["env"]:
                        if e["name"] == "DJANGO_SECRET_KEY_FALLBACKS":
                            refs[obj["metadata"]["labels"]["app.kubernetes.io/component"]] = e["valueFrom"]["secretKeyRef"]
        return refs

    objects = render_chart()
    assert "DJANGO_SECRET_KEY_FALLBACKS" not in decoded(by_kind_name(objects, "Secret", "release-django-celery"))
    refs = fallback_refs(objects)
    assert {"web", "beat"} <= set(refs) and any(name.startswith("worker") for name in refs), refs
    assert not {"flower", "migrations", "migrate"} & set(refs), refs
    assert all(ref == {"name": "release-django-celery", "key": "DJANGO_SECRET_KEY_FALLBACKS", "optional": True}
               for ref in refs.values()), refs

    old = "o" * 30 + "ld-key-" + "0123456789" * 3
    given = {"secrets": {"djangoSecretKey": "n" * 60, "djangoSecretKeyFallbacks": old}}
    objects = render_chart(values=given)
    assert decoded(by_kind_name(objects, "Secret", "release-django-celery"))["DJANGO_SECRET_KEY_FALLBACKS"] == old
    web = by_kind_name(objects, "Deployment", "release-django-celery-web")["spec"]["template"]["metadata"]["annotations"]
    without = by_kind_name(render_chart(values={"secrets": {"djangoSecretKey": "n" * 60}}), "Deployment",
                           "release-django-celery-web")["spec"]["template"]["metadata"]["annotations"]
    assert web["checksum/secret"] != without["checksum/secret"]  # setting or removing it rolls the pods

    existing = fallback_refs(render_chart(values={"secrets": {"existingSecret": "app-env"}, "database": {"url": ""},
                                                  "broker": {"url": ""}}))
    assert existing and all(ref == {"name": "app-env", "key": "DJANGO_SECRET_KEY_FALLBACKS", "optional": True}
                            for ref in existing.values())
