"""The app's file storage on the real S3 server (and on the filesystem): round trip, presigned URLs,
private by default, safe response headers."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from conftest import http_status
from polling import wait_until


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(params=["s3", "filesystem"])
def storage(request, make_storage, default_bucket, tmp_path):
    if request.param == "filesystem":
        return make_storage(DEPLOYKIT_STORAGE_BACKEND="filesystem", MEDIA_ROOT=str(tmp_path / "media"))
    return make_storage()


def test_the_configured_default_storage_is_the_s3_server(default_bucket, s3_server):
    from django.core.files.storage import storages

    default_storage = storages["default"]
    assert type(default_storage).__module__ == "deploykit.ops.storage"
    assert default_storage.bucket_name == default_bucket
    assert default_storage.endpoint_url == s3_server.endpoint


def test_round_trip_through_the_storage_api(storage):
    payload = bytes(range(256)) * 4096  # 1 MiB, binary
    name = storage.save("reports/round-trip/data.bin", ContentFile(payload))
    assert storage.exists(name)
    assert storage.size(name) == len(payload)
    with storage.open(name, "rb") as fileobj:
        assert fileobj.read() == payload
    directories, files = storage.listdir("reports/round-trip")
    assert "data.bin" in files
    storage.delete(name)
    assert not storage.exists(name)


def test_a_second_upload_with_the_same_name_never_replaces_the_first(storage):
    first = storage.save("images/same/name.png", ContentFile(b"first"))
    second = storage.save("images/same/name.png", ContentFile(b"second"))
    assert first != second
    with storage.open(first, "rb") as fileobj:
        assert fileobj.read() == b"first"


def test_large_upload_goes_multipart_and_reads_back(make_storage, default_bucket, s3_client):
    storage = make_storage()
    payload = b"0123456789abcdef" * (1024 * 1024)  # 16 MiB: above boto3's 8 MiB multipart threshold
    name = storage.save("uploads/large.bin", ContentFile(payload))
    head = s3_client.head_object(Bucket=default_bucket, Key=name)
    assert head["ContentLength"] == len(payload)
    assert "-" in head["ETag"], "expected a multipart upload (ETag of the form <md5>-<parts>)"
    with storage.open(name, "rb") as fileobj:
        assert fileobj.read() == payload


def test_presigned_url_downloads_the_file_from_the_public_endpoint(make_storage, default_bucket, s3_server):
    storage = make_storage()
    name = storage.save("reports/presigned/tasks.csv", ContentFile(b"id,task\n1,add\n"))
    url = storage.url(name)
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert f"{parsed.scheme}://{parsed.netloc}" == s3_server.public_endpoint  # not the internal endpoint
    assert query["X-Amz-Expires"] == ["300"]  # short-lived
    status, headers, body = fetch(url)
    assert status == 200
    assert body == b"id,task\n1,add\n"


def test_presigned_url_cannot_be_tampered_with_or_used_after_expiry(make_storage, default_bucket):
    storage = make_storage()
    name = storage.save("reports/presigned/expiring.csv", ContentFile(b"a,b\n"))
    other = storage.save("reports/presigned/other.csv", ContentFile(b"secret\n"))
    url = storage.url(name)
    assert http_status(url.replace("expiring.csv", other.rsplit("/", 1)[1])) == 403  # other key, same signature
    short = storage.url(name, expire=1)
    assert http_status(short) == 200
    wait_until(lambda: http_status(short) == 403, timeout=15, what="the presigned URL to expire", interval=0.5)


def test_bucket_is_private_anonymous_requests_are_refused(make_storage, default_bucket, s3_server):
    storage = make_storage()
    name = storage.save("images/private/photo.png", ContentFile(b"\x89PNG fake"))
    base = f"{s3_server.endpoint}/{default_bucket}"
    assert http_status(f"{base}/{name}") == 403  # anonymous GET of an object
    assert http_status(f"{base}?list-type=2") == 403  # anonymous listing
    assert http_status(f"{base}/images/private/anon.txt", "PUT", b"x") == 403  # anonymous upload
    assert http_status(f"{s3_server.public_endpoint}/{default_bucket}/{name}") == 403  # also via public name
    assert not storage.exists("images/private/anon.txt")


def test_ensure_bucket_reports_the_bucket_private_and_creates_it_idempotently(make_storage, s3_client):
    from deploykit.ops.storage import anonymous_access, ensure_bucket

    storage = make_storage(DEPLOYKIT_STORAGE_S3_BUCKET="fresh-bucket-for-ensure")
    assert "created" in ensure_bucket(storage)
    assert "exists" in ensure_bucket(storage)  # second deploy: no error, nothing changed
    s3_client.head_bucket(Bucket="fresh-bucket-for-ensure")
    assert anonymous_access(storage) is None
    assert not s3_client.list_objects_v2(Bucket="fresh-bucket-for-ensure").get("Contents")  # probes removed


@pytest.mark.parametrize(
    ("filename", "claimed_type", "stored_type", "disposition"),
    [
        ("photo.png", "image/png", "image/png", "inline"),
        ("photo.JPG", "image/jpeg", "image/jpeg", "inline"),
        ("report.csv", "text/csv", "text/csv", "attachment"),
        ("evil.html", "text/html", "application/octet-stream", "attachment"),
        ("evil.png.html", "image/png", "application/octet-stream", "attachment"),  # lying uploader
        ("vector.svg", "image/svg+xml", "application/octet-stream", "attachment"),  # SVG can carry script
        ("archive.csv.gz", "text/csv", "application/octet-stream", "attachment"),  # no Content-Encoding
        ("noextension", "text/html", "application/octet-stream", "attachment"),
    ],
)
def test_stored_files_get_safe_content_type_and_disposition(
    make_storage, default_bucket, s3_client, filename, claimed_type, stored_type, disposition
):
    storage = make_storage()
    name = storage.save(f"uploads/headers/{filename}", SimpleUploadedFile(filename, b"<script>alert(1)</script>",
                                                                         content_type=claimed_type))
    head = s3_client.head_object(Bucket=default_bucket, Key=name)
    assert head["ContentType"] == stored_type
    assert head["ContentDisposition"].startswith(f"{disposition}; filename=")
    assert "ContentEncoding" not in head
    status, headers, _ = fetch(storage.url(name))
    assert status == 200
    assert headers["Content-Type"] == stored_type
    assert headers["Content-Disposition"].startswith(disposition)


def test_presigned_url_forces_safe_headers_even_for_objects_written_by_other_tools(
    make_storage, default_bucket, s3_client
):
    s3_client.put_object(Bucket=default_bucket, Key="uploads/foreign/page.html", Body=b"<script>1</script>",
                         ContentType="text/html")
    status, headers, _ = fetch(make_storage().url("uploads/foreign/page.html"))
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment;")


def test_non_ascii_and_quote_file_names_are_encoded_in_content_disposition():
    from deploykit.ops.storage import content_disposition

    value = content_disposition('reports/1/Bericht "März";.csv')
    assert value.startswith('attachment; filename="Bericht _M_rz__.csv"')
    assert value.endswith("filename*=UTF-8''Bericht%20%22M%C3%A4rz%22%3B.csv")
