"""The backup CronJob (backup.*, docs/backup.md#kubernetes): off by default; on, it runs the Compose backup
program's image with the app Secret's database URL (the direct one behind PgBouncer), the media claim
read-only or the app's bucket, and the passphrase and store keys from a Secret of the user's own; it
refuses to render without that Secret or a bucket. The live backup-destroy-restore test is Compose's
(tests/smoke/test_backup.py); the chart's in `make test-k8s` is still to come."""
import pytest

from .helm_template_generator import HelmFailed, by_kind_name, of_kind, render_chart, validate_objects

TEMPLATE = "templates/backup/backup-cronjob.yaml"
ON = {"backup": {"enabled": True, "existingSecret": "my-backup", "s3": {"bucket": "backups",
                                                                          "endpointUrl": "https://s3.example.com"}}}


def cronjob(values=None):
    objects = render_chart(values={**ON, **(values or {})}, show_only=[TEMPLATE])
    return by_kind_name(objects, "CronJob", "release-django-celery-backup")


def container(obj):
    return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def env(obj):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(obj)["env"]}


def test_off_by_default():
    assert not of_kind(render_chart(), "CronJob")


def test_filesystem_storage_backs_up_the_media_claim_read_only_with_the_secrets_by_reference():
    obj = cronjob()
    validate_objects([obj])
    assert obj["spec"]["concurrencyPolicy"] == "Forbid" and obj["spec"]["schedule"] == "17 3 * * *"
    c = container(obj)
    assert c["args"] == ["backup"] and c["image"].startswith("blueprint/backup:")
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["runAsNonRoot"] is True
    e = env(obj)
    assert e["DATABASE_URL"]["secretKeyRef"] == {"name": "release-django-celery", "key": "DATABASE_URL"}
    for name in ("BACKUP_PASSPHRASE", "BACKUP_S3_ACCESS_KEY_ID", "BACKUP_S3_SECRET_ACCESS_KEY"):
        assert e[name]["secretKeyRef"] == {"name": "my-backup", "key": name}
    assert e["BACKUP_S3_BUCKET"] == "backups" and e["BACKUP_S3_ENDPOINT_URL"] == "https://s3.example.com"
    assert e["BACKUP_KEEP"] == "7" and e["BACKUP_MEDIA_DIR"] == "/var/lib/app/media"
    assert not [n for n in e if n.startswith("DEPLOYKIT_STORAGE_S3_")]
    media = {m["name"]: m for m in c["volumeMounts"]}["media"]
    assert media["readOnly"] is True
    spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in spec["volumes"]}["media"]["persistentVolumeClaim"]["claimName"] == "release-django-celery-media"
    assert spec["automountServiceAccountToken"] is False


def test_s3_storage_backs_up_the_bucket_and_pgbouncer_gives_the_direct_database_url():
    obj = cronjob({"storage": {"backend": "s3", "s3": {"bucket": "media", "accessKeyId": "AKIDEXAMPLEKEY000001",
                                                       "secretAccessKey": "x" * 40}},
                   "database": {"url": ""}, "postgresql": {"enabled": True}, "pgbouncer": {"enabled": True}})
    validate_objects([obj])
    e = env(obj)
    assert e["DEPLOYKIT_STORAGE_BACKEND"] == "s3" and e["DEPLOYKIT_STORAGE_S3_BUCKET"] == "media"
    assert e["DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"]["secretKeyRef"]["key"] == "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"
    assert e["DATABASE_URL"]["secretKeyRef"]["key"] == "DEPLOYKIT_BEAT_LOCK_DATABASE_URL"
    assert "BACKUP_MEDIA_DIR" not in e and "media" not in {m["name"] for m in container(obj)["volumeMounts"]}


@pytest.mark.parametrize("values, message", [
    ({"backup": {"enabled": True, "s3": {"bucket": "b"}}}, "backup.existingSecret"),
    ({"backup": {"enabled": True, "existingSecret": "s"}}, "backup.s3.bucket"),
    ({"backup": {"enabled": True, "existingSecret": "s", "s3": {"bucket": "b"}, "keep": 0}}, "keep"),
])
def test_refused_without_its_secret_or_bucket(values, message):
    with pytest.raises(HelmFailed) as failed:
        render_chart(values=values, show_only=[TEMPLATE])
    assert message in failed.value.stderr
