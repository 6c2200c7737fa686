"""File storage: Django's STORAGES from the environment contract (docs/configuration.md, "Files"), the
S3 storage class, and the deploy-time bucket set-up / start-up check (docs/storage.md).

All application code reads and writes files through `default_storage` / FileField, never local paths,
so switching DEPLOYKIT_STORAGE_BACKEND between `filesystem` and `s3` is configuration only.

Private by default, in both modes:
- S3: no ACLs are ever set (the bucket and its objects stay private); browsers get short-lived presigned
  URLs. `ensure_bucket()` refuses a bucket that answers anonymous reads.
- Every stored file gets a safe Content-Type (an allowlist; everything else application/octet-stream,
  whatever the uploader claimed) and a Content-Disposition: inline only for raster images, attachment for
  everything else. Presigned URLs repeat both as response overrides, so objects written by other tools are
  served safely too.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import posixpath
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

STATIC_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"
# Presigned download URLs expire quickly: they are handed out per request by the web tier.
PRESIGNED_URL_EXPIRE_SECONDS = 300
# Raster images a browser may show inline: they cannot carry script (SVG can, so it is not here).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Inert types kept as themselves, always served as attachments. Anything else: application/octet-stream.
ATTACHMENT_TYPES = frozenset({"text/csv", "text/plain", "application/pdf", "application/json"})
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Objects the start-up check writes and deletes again to prove write access.
PROBE_PREFIX = ".deploykit-probe/"
S3_CREDENTIAL_VARS = "DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID/DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"


def build_storages(env: Any, *, media_root: str, debug: bool) -> dict[str, dict[str, Any]]:
    """Return the STORAGES setting. `env` is a deploykit.config.env.Env (problems are collected on it; an unknown
    DEPLOYKIT_STORAGE_BACKEND is refused by the contract's choices and read as the default, filesystem)."""
    backend = env.value("DEPLOYKIT_STORAGE_BACKEND")
    static = {"BACKEND": STATIC_STORAGE}
    filesystem = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Readable by the group only: web and worker share the volume under one uid/gid.
        "OPTIONS": {"location": media_root, "file_permissions_mode": 0o640, "directory_permissions_mode": 0o750},
    }
    if backend == "s3":
        default = {"BACKEND": "deploykit.ops.storage.S3Storage", "OPTIONS": _s3_options(env, debug)}
    else:
        default = filesystem
    return {"default": default, "staticfiles": static}


def _s3_options(env: Any, debug: bool) -> dict[str, Any]:
    endpoint = env.value("DEPLOYKIT_STORAGE_S3_ENDPOINT_URL")
    public_endpoint = env.value("DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL") or endpoint
    options = {
        "bucket_name": env.value("DEPLOYKIT_STORAGE_S3_BUCKET"),
        "access_key": env.value("DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID"),
        "secret_key": env.value("DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY"),
        "region_name": env.value("DEPLOYKIT_STORAGE_S3_REGION"),
        "endpoint_url": endpoint,
        "custom_domain": None,
        "default_acl": None,  # never an ACL: objects inherit the bucket's (private) policy
        "file_overwrite": False,  # a second upload with the same name gets a new name, never replaces
        "querystring_auth": True,
        "querystring_expire": PRESIGNED_URL_EXPIRE_SECONDS,
        "signature_version": "s3v4",
        # Self-hosted servers (http://s3:9000) have no per-bucket DNS names: path-style addressing.
        "addressing_style": "path" if endpoint else None,
    }
    if debug:  # production mode already reported these through required=True
        for name, key in (
            ("DEPLOYKIT_STORAGE_S3_BUCKET", "bucket_name"),
            ("DEPLOYKIT_STORAGE_S3_ACCESS_KEY_ID", "access_key"),
            ("DEPLOYKIT_STORAGE_S3_SECRET_ACCESS_KEY", "secret_key"),
        ):
            if not options[key]:
                env.error(name, "is required when DEPLOYKIT_STORAGE_BACKEND=s3")
    if public_endpoint and public_endpoint != endpoint:
        options["public_endpoint_url"] = public_endpoint
    return options


# --- safe response headers for user files ---------------------------------------------------------


def safe_content_type(name: str) -> str:
    """The Content-Type to store/serve `name` with: from its extension, allowlisted (uploader claims ignored)."""
    guessed, encoding = mimetypes.guess_type(posixpath.basename(name))
    if encoding is None and guessed in INLINE_TYPES | ATTACHMENT_TYPES:
        return guessed
    return DEFAULT_CONTENT_TYPE


def content_disposition(name: str, filename: str | None = None) -> str:
    """`inline` for raster images, `attachment` otherwise; the file name RFC 6266/5987-encoded."""
    disposition = "inline" if safe_content_type(name) in INLINE_TYPES else "attachment"
    filename = filename or posixpath.basename(name) or "download"
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename)
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


# --- the S3 storage class (lazy: boto3 is only imported when the s3 backend is configured) ------------


@functools.cache
def _s3storage_class():
    from botocore.config import Config
    from storages.backends.s3 import S3Storage as _Base
    from storages.utils import clean_name

    class S3Storage(_Base):
        """django-storages' S3Storage with safe headers, short-lived URLs and a public endpoint.

        The app talks to the object store at DEPLOYKIT_STORAGE_S3_ENDPOINT_URL (e.g. http://s3:9000 inside the
        cluster); browsers get presigned URLs for DEPLOYKIT_STORAGE_S3_PUBLIC_ENDPOINT_URL.
        """

        def __init__(self, public_endpoint_url: str | None = None, **settings: Any):
            self.public_endpoint_url = public_endpoint_url
            self._public_clients = threading.local()
            settings.setdefault(
                "client_config",
                Config(
                    s3={"addressing_style": settings.get("addressing_style")},
                    signature_version=settings.get("signature_version") or "s3v4",
                    # Fail fast when the store is down instead of hanging a web request or a task.
                    connect_timeout=5,
                    read_timeout=60,
                    retries={"max_attempts": 3, "mode": "standard"},
                    # botocore >= 1.36 adds CRC checksums to every upload by default; many S3-compatible
                    # servers reject them. Send/check them only where the API requires it.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
            super().__init__(**settings)

        def _get_write_parameters(self, name, content=None):
            params = super()._get_write_parameters(name, content)
            # Never trust the uploader's Content-Type, never let the browser decode a stored encoding.
            params.pop("ContentEncoding", None)
            params["ContentType"] = safe_content_type(name)
            params["ContentDisposition"] = content_disposition(name)
            params.pop("ACL", None)
            return params

        def url(self, name, parameters=None, expire=None, http_method=None):
            params = {}
            if http_method in (None, "GET"):
                params = {
                    "ResponseContentType": safe_content_type(name),
                    "ResponseContentDisposition": content_disposition(name),
                }
            params.update(parameters or {})
            if not self.public_endpoint_url:
                return super().url(name, params, expire, http_method)
            params["Bucket"] = self.bucket_name
            params["Key"] = self._normalize_name(clean_name(name))
            return self.public_client.generate_presigned_url(
                "get_object",
                Params=params,
                ExpiresIn=expire or self.querystring_expire,
                HttpMethod=http_method,
            )

        @property
        def public_client(self):
            """A client for the public endpoint: only used to sign URLs (no request is sent with it)."""
            client = getattr(self._public_clients, "client", None)
            if client is None:
                client = self._create_session().client(
                    "s3",
                    endpoint_url=self.public_endpoint_url,
                    region_name=self.region_name,
                    config=self.client_config,
                    verify=self.verify,
                )
                self._public_clients.client = client
            return client

        def __getstate__(self):
            state = super().__getstate__()
            state.pop("_public_clients", None)
            return state

        def __setstate__(self, state):
            super().__setstate__(state)
            self._public_clients = threading.local()

    return S3Storage


def __getattr__(name: str):
    if name == "S3Storage":
        return _s3storage_class()
    raise AttributeError(name)


def _is_s3(storage) -> bool:
    return hasattr(storage, "bucket_name") and hasattr(storage, "connection")


# --- deploy-time set-up and start-up check ---------------------------------------------------------


class StorageError(Exception):
    """Storage is unusable; the message names the setting to fix."""


def _client_error(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", type(exc).__name__))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _describe_s3_error(storage, exc: Exception) -> str:
    """Turn a boto/botocore error into a sentence naming the variable an operator must fix."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = storage.endpoint_url or "AWS S3"
    bucket = storage.bucket_name
    if isinstance(exc, NoCredentialsError):
        return f"{S3_CREDENTIAL_VARS} are not set"
    if isinstance(exc, EndpointConnectionError) or not isinstance(exc, ClientError):
        return f"DEPLOYKIT_STORAGE_S3_ENDPOINT_URL: cannot reach the object store at {where}: {exc}"
    code, status = _client_error(exc)
    # Unknown keys: AWS says InvalidAccessKeyId (403); versitygw XAdminUserNotFound (404).
    if code in ("InvalidAccessKeyId", "XAdminUserNotFound", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
        return f"{S3_CREDENTIAL_VARS}: the object store at {where} rejected the credentials ({code})"
    if code == "NoSuchBucket":
        return (
            f"DEPLOYKIT_STORAGE_S3_BUCKET: bucket {bucket!r} does not exist at {where} "
            "(create it at deploy time: `manage.py ensure_bucket`)"
        )
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled") or status == 403:
        return (
            f"{S3_CREDENTIAL_VARS}: access to bucket {bucket!r} at {where} is denied ({code}); "
            "wrong credentials, or a key without read/write permission on DEPLOYKIT_STORAGE_S3_BUCKET"
        )
    if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"):
        return (f"DEPLOYKIT_STORAGE_S3_REGION: bucket {bucket!r} is in another region than "
                f"{storage.region_name!r} ({code})")
    return f"DEPLOYKIT_STORAGE_S3_BUCKET: bucket {bucket!r} at {where} is unusable: {code} (HTTP {status}): {exc}"


def check_storage(storage=None, *, write: bool = True) -> list[str]:
    """Problems that stop the app from using its file storage (empty list: all good).

    S3: the bucket exists and the credentials can read it (and, with write=True, write and delete in it).
    Filesystem: MEDIA_ROOT exists (or can be created) and is writable.
    """
    from django.core.files.storage import default_storage

    storage = default_storage if storage is None else storage
    if not _is_s3(storage):
        return _check_filesystem(storage, write=write)
    client = storage.connection.meta.client
    try:
        _probe_bucket(client, storage.bucket_name)
        if write:
            key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
            client.put_object(Bucket=storage.bucket_name, Key=key, Body=b"probe")
            client.delete_object(Bucket=storage.bucket_name, Key=key)
    except Exception as exc:  # every failure becomes one actionable sentence
        return [_describe_s3_error(storage, exc)]
    return []


def _probe_bucket(client, bucket: str) -> None:
    """Read access to the bucket. A GET, not HeadBucket: HEAD answers carry no error code, and a bare
    404 cannot tell a missing bucket from an unknown access key (versitygw answers both with 404)."""
    client.list_objects_v2(Bucket=bucket, MaxKeys=1)


def _check_filesystem(storage, *, write: bool) -> list[str]:
    location = getattr(storage, "location", None)
    if not location:
        return []
    try:
        os.makedirs(location, exist_ok=True)
    except OSError as exc:
        return [f"MEDIA_ROOT: cannot create {location}: {exc.strerror}"]
    if write and not os.access(location, os.W_OK | os.X_OK):
        return [f"MEDIA_ROOT: {location} is not writable by uid {os.getuid()}"]
    return []


def ensure_bucket(storage=None) -> str:
    """Deploy-time set-up, idempotent: create the bucket when missing, then prove it is usable and private.

    Returns a one-line summary; raises StorageError naming the variable to fix. The filesystem backend
    only gets its MEDIA_ROOT created and checked.
    """
    from django.core.files.storage import default_storage

    storage = default_storage if storage is None else storage
    if not _is_s3(storage):
        problems = check_storage(storage)
        if problems:
            raise StorageError("; ".join(problems))
        return f"filesystem storage ready at {storage.location}"
    client = storage.connection.meta.client
    bucket = storage.bucket_name
    created = False
    try:
        _probe_bucket(client, bucket)
    except Exception as exc:
        if _client_error(exc)[0] != "NoSuchBucket":
            raise StorageError(_describe_s3_error(storage, exc)) from exc
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if storage.region_name and storage.region_name != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": storage.region_name}
        try:
            client.create_bucket(**kwargs)  # no ACL argument: a new bucket is private
        except Exception as create_exc:
            code, _ = _client_error(create_exc)
            if code not in ("BucketAlreadyOwnedByYou",):  # a concurrent deploy created it first
                raise StorageError(_describe_s3_error(storage, create_exc)) from create_exc
        created = True
    problems = check_storage(storage)
    if problems:
        raise StorageError("; ".join(problems))
    public = anonymous_access(storage)
    if public:
        raise StorageError(f"DEPLOYKIT_STORAGE_S3_BUCKET: bucket {bucket!r} is readable without credentials "
                           f"({public}); remove its public policy/ACL: user files must stay private")
    return f"bucket {bucket!r} at {storage.endpoint_url or 'AWS S3'} {'created' if created else 'exists'}, private and writable"


def anonymous_access(storage) -> str | None:
    """What an unauthenticated client can do with the bucket (None: nothing), using a probe object."""
    client = storage.connection.meta.client
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    client.put_object(Bucket=storage.bucket_name, Key=key, Body=b"probe")
    try:
        unsigned = storage.unsigned_connection.meta.client
        found = []
        for operation, url in (
            ("list", unsigned.generate_presigned_url("list_objects_v2", Params={"Bucket": storage.bucket_name})),
            ("read", unsigned.generate_presigned_url("get_object", Params={"Bucket": storage.bucket_name, "Key": key})),
        ):
            if _http_status(url) < 300:
                found.append(operation)
        return ", ".join(found) or None
    finally:
        client.delete_object(Bucket=storage.bucket_name, Key=key)


def _http_status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our own endpoint)
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def abort_stale_uploads(storage=None, *, older_than: timedelta = timedelta(days=1)) -> int:
    """Abort multipart uploads started before `older_than` ago (left by crashed writers); 0 on filesystem.

    Object stores keep the parts of an unfinished upload (and bill for them) until aborted; the app's
    periodic cleanup calls this, so no bucket lifecycle rule is needed (the POSIX server has none).
    """
    from django.core.files.storage import default_storage

    storage = default_storage if storage is None else storage
    if not _is_s3(storage):
        return 0
    client = storage.connection.meta.client
    cutoff = datetime.now(timezone.utc) - older_than
    aborted = 0
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=storage.bucket_name):
        for upload in page.get("Uploads", ()):
            if upload["Initiated"] <= cutoff:
                client.abort_multipart_upload(
                    Bucket=storage.bucket_name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted += 1
    return aborted
