"""The storage part of the settings contract, without a server (the real S3 server tests live in
tests/storage, `make test-storage`): STORAGES from the environment and locally signed URLs."""

from urllib.parse import parse_qs, urlparse

import pytest

from deploykit.ops import storage
from deploykit.config.env import Env

S3_ENV = {"DEPLOYKIT_STORAGE_BACKEND": "s3", "DEPLOYKIT_STORAGE_S3_BUCKET": "media", "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID": "app-key",
          "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY": "a-long-s3-secret", "DEPLOYKIT_STORAGE_S3_ENDPOINT_URL": "http://s3:9000",
          "DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL": "https://files.example.com"}


def test_filesystem_default():
    env = Env({"DJANGO_DEBUG": "true"})
    storages = storage.build_storages(env, media_root="/srv/media", debug=True)
    assert storages["default"]["OPTIONS"]["location"] == "/srv/media"
    assert storages["staticfiles"]["BACKEND"] == storage.STATIC_STORAGE
    assert env.errors == []


def test_s3_in_debug_mode_names_missing_variables():
    env = Env({"DJANGO_DEBUG": "true", "DEPLOYKIT_STORAGE_BACKEND": "s3"})
    storage.build_storages(env, media_root="/m", debug=True)
    assert [e.split()[0] for e in env.errors] == [
        "DEPLOYKIT_STORAGE_S3_BUCKET", "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID", "DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize("name,content_type,disposition", [
    ("images/x/resized.jpg", "image/jpeg", "inline"),
    ("reports/x/tasks.csv", "text/csv", "attachment"),
    ("images/x/original/evil.svg", "application/octet-stream", "attachment"),
    ("images/x/original/page.html", "application/octet-stream", "attachment"),
])
def test_safe_headers(name, content_type, disposition):
    assert storage.safe_content_type(name) == content_type
    assert storage.content_disposition(name).startswith(disposition + ";")


def test_presigned_urls_for_the_public_endpoint_are_signed_locally():
    options = storage.build_storages(Env({"DJANGO_DEBUG": "true", **S3_ENV}), media_root="/m", debug=True)
    backend = storage.S3Storage(**options["default"]["OPTIONS"])
    url = urlparse(backend.url("reports/r/tasks.csv"))
    assert (url.scheme, url.netloc, url.path) == ("https", "files.example.com", "/media/reports/r/tasks.csv")
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == [str(storage.PRESIGNED_URL_EXPIRE_SECONDS)]
    assert query["response-content-type"] == ["text/csv"]
    params = backend._get_write_parameters("images/x/original/a.html")
    assert params["ContentType"] == "application/octet-stream" and "ACL" not in params
