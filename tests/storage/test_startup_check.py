"""Start-up errors: a wrong bucket, wrong credentials or an unreachable store are named clearly, both by
the functions and by the `manage.py check_storage` / `ensure_bucket` commands the deploy targets run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import APP_DIR, free_port


def test_missing_bucket_names_the_bucket_variable(make_storage, default_bucket):
    from deploykit.ops.storage import check_storage

    problems = check_storage(make_storage(DEPLOYKIT_STORAGE_S3_BUCKET="no-such-bucket-here"))
    assert len(problems) == 1
    assert problems[0].startswith("DEPLOYKIT_STORAGE_S3_BUCKET: bucket 'no-such-bucket-here' does not exist")
    assert "manage.py ensure_bucket" in problems[0]


@pytest.mark.parametrize(
    "override",
    [{"DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": "a-wrong-secret-key-0123456789"}, {"DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": "unknownkey"}],
)
def test_bad_credentials_name_the_credential_variables(make_storage, default_bucket, override):
    from deploykit.ops.storage import check_storage

    problems = check_storage(make_storage(**override))
    assert len(problems) == 1
    assert problems[0].startswith("DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID/DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY:"), problems


def test_unreachable_store_names_the_endpoint_variable(make_storage):
    from deploykit.ops.storage import check_storage

    dead = f"http://127.0.0.1:{free_port()}"
    problems = check_storage(make_storage(DEPLOYKIT_STORAGE_S3_ENDPOINT_URL=dead))
    assert len(problems) == 1
    assert problems[0].startswith(f"DEPLOYKIT_STORAGE_S3_ENDPOINT_URL: cannot reach the object store at {dead}")


def test_good_configuration_passes_and_leaves_no_probe_objects(make_storage, default_bucket, s3_client):
    from deploykit.ops.storage import PROBE_PREFIX, check_storage

    assert check_storage(make_storage()) == []
    assert not s3_client.list_objects_v2(Bucket=default_bucket, Prefix=PROBE_PREFIX).get("Contents")


def test_ensure_bucket_with_bad_credentials_fails_without_creating_anything(make_storage, s3_client):
    from deploykit.ops.storage import StorageError, ensure_bucket

    storage = make_storage(DEPLOYKIT_STORAGE_S3_BUCKET="never-created", DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY="wrong-secret-0123456789")
    with pytest.raises(StorageError, match=r"^DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID/DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY:"):
        ensure_bucket(storage)
    buckets = [bucket["Name"] for bucket in s3_client.list_buckets()["Buckets"]]
    assert "never-created" not in buckets


def run_manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_storage_command_passes_on_a_good_configuration(default_bucket):
    result = run_manage("check_storage")
    assert result.returncode == 0, result.stderr
    assert "storage OK" in result.stdout


def test_check_storage_command_fails_naming_a_missing_bucket(default_bucket):
    result = run_manage("check_storage", DEPLOYKIT_STORAGE_S3_BUCKET="typo-in-bucket-name")
    assert result.returncode == 1
    assert "DEPLOYKIT_STORAGE_S3_BUCKET: bucket 'typo-in-bucket-name' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_storage_command_fails_naming_bad_credentials(default_bucket):
    result = run_manage("check_storage", DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY="not-the-secret-0123456789")
    assert result.returncode == 1
    assert "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID/DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY" in result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout  # never echo the secret


def test_ensure_bucket_command_creates_the_bucket(s3_client):
    # One subprocess (Django start-up is the slow part); idempotency is covered in test_s3_storage.py.
    result = run_manage("ensure_bucket", DEPLOYKIT_STORAGE_S3_BUCKET="made-by-the-command")
    assert result.returncode == 0, result.stderr
    assert "bucket 'made-by-the-command'" in result.stdout and "created, private and writable" in result.stdout
    s3_client.head_bucket(Bucket="made-by-the-command")


def test_ensure_bucket_on_filesystem_creates_media_root(make_storage, tmp_path):
    from deploykit.ops.storage import ensure_bucket

    media = tmp_path / "media" / "nested"
    assert "filesystem storage ready" in ensure_bucket(make_storage(DEPLOYKIT_STORAGE_BACKEND="filesystem", MEDIA_ROOT=str(media)))
    assert media.is_dir()


@pytest.mark.parametrize("missing", ["DEPLOYKIT_STORAGE_S3_BUCKET", "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID", "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"])
def test_production_settings_refuse_s3_without_its_required_variables(missing):
    from deploykit.config.env import Env
    from deploykit.ops.storage import build_storages

    environ = {"DEPLOYKIT_STORAGE_BACKEND": "s3", "DEPLOYKIT_STORAGE_S3_BUCKET": "b", "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": "k",
               "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": "a-real-looking-secret-value-123"}
    del environ[missing]
    env = Env(environ)
    assert env.production
    build_storages(env, media_root="/var/lib/app/media", debug=False)
    assert any(missing in error for error in env.errors), env.errors


def test_unknown_storage_backend_is_refused():
    from deploykit.config.env import Env
    from deploykit.ops.storage import build_storages

    env = Env({"DJANGO_DEBUG": "true", "DEPLOYKIT_STORAGE_BACKEND": "nfs"})
    build_storages(env, media_root="/tmp/x", debug=True)
    assert any("DEPLOYKIT_STORAGE_BACKEND" in error for error in env.errors), env.errors
