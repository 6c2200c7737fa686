#!/usr/bin/python3
"""blueprint-backup: back up and restore the stack's data (docs/backup.md).

One program for every target (Compose `make backup`/`make restore`, the chart's CronJob, an Ansible timer);
the wrappers only set its environment and, for a restore, stop the processes that write data first.

  backup            pg_dump (custom format) of the database and a tar of the media (a directory, or every
                    object of the app's bucket in S3 mode), each encrypted with gpg (AES-256, BACKUP_PASSPHRASE),
                    uploaded to BACKUP_S3_BUCKET under BACKUP_S3_PREFIX<id>/, manifest.json last (a backup
                    without one is incomplete and never restored); then only the newest BACKUP_KEEP are kept.
  list              the complete backups in the store, oldest first.
  verify [ID]       download a backup (default: the newest), check every checksum, decrypt, read the dump's table
                    of contents and the tar: changes nothing; what `restore` needs is then ready in the scratch dir.
  restore [ID]      verify first (refuses, naming the problem, before anything changes), refuse while other
                    clients are connected to the database, then: the media staged beside the live files, the
                    database replaced in one transaction (schema public dropped and recreated, the dump loaded),
                    then the media swapped in. Prints how long each step took.

Environment:
  PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE      the database (libpq's own names), or
  DATABASE_URL                                    the app's postgres://user:password@host:port/name (used when
                                                  PGHOST is not set: the chart and Ansible hold this one). It
                                                  must reach PostgreSQL itself, not PgBouncer in transaction mode
  BACKUP_MEDIA_DIR                                the media directory (filesystem storage)
  DEPLOYKIT_STORAGE_BACKEND=s3 and DEPLOYKIT_STORAGE_S3_{ENDPOINT_URL,BUCKET,REGION,ACCESS_KEY_ID,SECRET_ACCESS_KEY}
                                                  the app's bucket instead (S3 storage, docs/storage.md)
  BACKUP_S3_{ENDPOINT_URL,BUCKET,PREFIX,REGION,ACCESS_KEY_ID,SECRET_ACCESS_KEY}   where backups go
  BACKUP_PASSPHRASE                               the encryption passphrase (required; keep a copy off the host)
  BACKUP_KEEP                                     how many complete backups to keep (default 7)
  BACKUP_SCRATCH_DIR                              working space, about twice the size of one backup
  BACKUP_RESTORE_REPORT=checksums                 after the database's transaction commits (before anything
                                                  is started again), print one line `restored tables: {json}`:
                                                  each table of schema public, its rows and a checksum of their
                                                  content (reads every row: for tests and audits of small data)
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

FORMAT = 1
DB_OBJECT = "db.pgdump.gpg"
MEDIA_OBJECT = "media.tar.gpg"
MANIFEST = "manifest.json"
STAGING_PREFIX = ".restore-"
# Every table of schema public: [rows, an order-independent MD5 of their content] (BACKUP_RESTORE_REPORT).
TABLES_SQL = r"""
SELECT json_object_agg(table_name, json_build_array(
  (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM public.%I', table_name), false, true, '')))[1]::text,
  (xpath('/row/h/text()', query_to_xml(format(
     'SELECT md5(coalesce(string_agg(md5(t::text), '''' ORDER BY md5(t::text)), '''')) AS h FROM public.%I t',
     table_name), false, true, '')))[1]::text))
FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
"""


class Refused(Exception):
    """Nothing was changed: the message names what is wrong."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def env(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = os.environ.get(name, "")
    if not value:
        if required:
            raise Refused(f"{name} is not set (docs/backup.md#configuration)")
        return default or ""
    return value


def passphrase() -> str:
    value = env("BACKUP_PASSPHRASE", required=True)
    if len(value) < 20:
        raise Refused("BACKUP_PASSPHRASE is shorter than 20 characters: use a generated one (docs/backup.md#the-key)")
    return value


def s3_client(prefix: str):
    import boto3
    from botocore.config import Config

    endpoint = env(f"{prefix}ENDPOINT_URL") or None
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=env(f"{prefix}REGION", "us-east-1"),
        aws_access_key_id=env(f"{prefix}ACCESS_KEY_ID") or None,
        aws_secret_access_key=env(f"{prefix}SECRET_ACCESS_KEY") or None,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "auto"},
                      retries={"max_attempts": 5, "mode": "standard"}),
    )


class Store:
    """The backup target: BACKUP_S3_BUCKET under BACKUP_S3_PREFIX."""

    def __init__(self) -> None:
        self.bucket = env("BACKUP_S3_BUCKET", required=True)
        self.prefix = env("BACKUP_S3_PREFIX", "backups/")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self.client = s3_client("BACKUP_S3_")

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise Refused(f"backup bucket {self.bucket}: {error}") from error
            self.client.create_bucket(Bucket=self.bucket)
            say(f"created the backup bucket {self.bucket}")

    def keys(self, prefix: str = "") -> list[str]:
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            out += [item["Key"] for item in page.get("Contents", [])]
        return out

    def backups(self) -> tuple[list[str], list[str]]:
        """(complete ids, incomplete ids), each oldest first."""
        ids: dict[str, bool] = {}
        for key in self.keys():
            backup_id, _, name = key[len(self.prefix):].partition("/")
            ids[backup_id] = ids.get(backup_id, False) or name == MANIFEST
        return sorted(i for i, done in ids.items() if done), sorted(i for i, done in ids.items() if not done)

    def upload(self, path: str, backup_id: str, name: str) -> None:
        self.client.upload_file(path, self.bucket, f"{self.prefix}{backup_id}/{name}")

    def download(self, backup_id: str, name: str, path: str) -> None:
        self.client.download_file(self.bucket, f"{self.prefix}{backup_id}/{name}", path)

    def delete(self, backup_id: str) -> None:
        for key in self.keys(backup_id + "/"):
            self.client.delete_object(Bucket=self.bucket, Key=key)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("stdout", subprocess.PIPE)
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True, **kwargs)
    if result.returncode != 0:
        raise Refused(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def gpg(mode: str, source: str, target: str) -> None:
    """Encrypt (`--symmetric`) or `--decrypt` with BACKUP_PASSPHRASE, given on a pipe (never on a command line)."""
    secret = passphrase()
    with tempfile.TemporaryDirectory(prefix="gnupg-") as home:
        read_fd, write_fd = os.pipe()
        os.write(write_fd, secret.encode() + b"\n")
        os.close(write_fd)
        try:
            command = ["gpg", "--homedir", home, "--batch", "--yes", "--quiet", "--no-symkey-cache",
                       "--pinentry-mode", "loopback", "--passphrase-fd", str(read_fd), "--output", target]
            if mode == "encrypt":
                command += ["--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none"]
            else:
                command += ["--decrypt"]
            result = subprocess.run([*command, source], pass_fds=(read_fd,), capture_output=True, text=True)
        finally:
            os.close(read_fd)
    if result.returncode != 0:
        if mode == "decrypt":
            raise Refused(f"cannot decrypt {os.path.basename(source)}: wrong BACKUP_PASSPHRASE or a damaged file "
                          f"(gpg: {result.stderr.strip()[-300:]})")
        raise Refused(f"gpg failed: {result.stderr.strip()[-500:]}")


def media_source():
    """('dir', path) or ('s3', (client, bucket))."""
    if env("DEPLOYKIT_STORAGE_BACKEND") == "s3":
        return "s3", (s3_client("DEPLOYKIT_STORAGE_S3_"), env("DEPLOYKIT_STORAGE_S3_BUCKET", required=True))
    path = env("BACKUP_MEDIA_DIR", required=True)
    if not os.path.isdir(path):
        raise Refused(f"BACKUP_MEDIA_DIR {path} is not a directory")
    return "dir", path


def bucket_keys(client, bucket: str) -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def write_media_tar(path: str) -> dict:
    kind, where = media_source()
    files = size = 0
    with tarfile.open(path, "w") as tar:
        if kind == "dir":
            for root, dirs, names in os.walk(where):
                dirs[:] = sorted(d for d in dirs if not (root == where and d.startswith(STAGING_PREFIX)))
                for name in sorted(names):
                    full = os.path.join(root, name)
                    tar.add(full, arcname=os.path.relpath(full, where), recursive=False)
                    files += 1
                    size += os.path.getsize(full)
        else:
            client, bucket = where
            for key in bucket_keys(client, bucket):
                with tempfile.TemporaryFile(dir=os.path.dirname(path)) as f:
                    client.download_fileobj(bucket, key, f)
                    info = tarfile.TarInfo(key)
                    info.size = f.tell()
                    info.mtime = int(time.time())
                    f.seek(0)
                    tar.addfile(info, f)
                files += 1
                size += info.size
    return {"source": kind, "files": files, "bytes": size}


def scratch_dir() -> str:
    path = env("BACKUP_SCRATCH_DIR", tempfile.gettempdir())
    os.makedirs(path, exist_ok=True)
    return path


def cmd_backup(args) -> None:
    started = time.monotonic()
    passphrase()
    store = Store()
    keep = int(env("BACKUP_KEEP", "7"))
    if keep < 1:
        raise Refused("BACKUP_KEEP must be at least 1")
    store.ensure_bucket()
    backup_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = tempfile.mkdtemp(prefix=f"backup-{backup_id}-", dir=scratch_dir())
    try:
        dump = os.path.join(work, "db.pgdump")
        # --no-owner/--no-privileges: restorable by the app's role on a fresh server (docs/backup.md).
        run("pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file", dump)
        # A consistent snapshot of the database (pg_dump's own transaction), then the media: a file uploaded
        # between the two is in the media but not yet referenced; one deleted in between is missing (docs).
        media = write_media_tar(os.path.join(work, "media.tar"))
        manifest = {"format": FORMAT, "id": backup_id, "created": backup_id,
                    "database": {"name": env("PGDATABASE"), "dump_bytes": os.path.getsize(dump)},
                    "media": media, "objects": {}}
        for plain, name in ((dump, DB_OBJECT), (os.path.join(work, "media.tar"), MEDIA_OBJECT)):
            encrypted = os.path.join(work, name)
            gpg("encrypt", plain, encrypted)
            os.unlink(plain)
            manifest["objects"][name] = {"sha256": sha256(encrypted), "bytes": os.path.getsize(encrypted)}
            store.upload(encrypted, backup_id, name)
        path = os.path.join(work, MANIFEST)
        with open(path, "w") as f:
            json.dump(manifest, f, indent=2)
        store.upload(path, backup_id, MANIFEST)  # last: only now is the backup complete
    finally:
        shutil.rmtree(work, ignore_errors=True)
    complete, incomplete = store.backups()
    for old in complete[:-keep]:
        store.delete(old)
        say(f"retention (keep {keep}): deleted backup {old}")
    for old in incomplete:
        if old < backup_id:
            store.delete(old)
            say(f"deleted incomplete backup {old}")
    say(f"backup {backup_id} complete in {time.monotonic() - started:.1f} s: database dump "
        f"{manifest['database']['dump_bytes']} bytes, media {media['files']} files ({media['bytes']} bytes, from "
        f"{media['source']}), in s3://{store.bucket}/{store.prefix}{backup_id}/")
    print(json.dumps({"id": backup_id, "seconds": round(time.monotonic() - started, 2), "media_files": media["files"]}))


def cmd_list(args) -> None:
    complete, incomplete = Store().backups()
    for backup_id in complete:
        print(backup_id)
    for backup_id in incomplete:
        print(f"{backup_id} (incomplete: no manifest, never restored)", file=sys.stderr)


def prepare(store: Store, requested: str | None) -> tuple[str, str, dict]:
    """Download, check and decrypt a backup into the scratch dir; (id, dir, manifest). Changes nothing else."""
    complete, incomplete = store.backups()
    if requested:
        if requested in incomplete:
            raise Refused(f"backup {requested} is incomplete (no manifest: it was interrupted): not restored")
        if requested not in complete:
            raise Refused(f"no backup {requested} in s3://{store.bucket}/{store.prefix} (make backup-list)")
        backup_id = requested
    elif not complete:
        raise Refused(f"no complete backup in s3://{store.bucket}/{store.prefix}")
    else:
        backup_id = complete[-1]
    work = os.path.join(scratch_dir(), f"restore-{backup_id}")
    os.makedirs(work, exist_ok=True)
    try:
        return backup_id, work, check_and_decrypt(store, backup_id, work)
    except BaseException:
        drop_plaintext(work)
        raise


def check_and_decrypt(store: Store, backup_id: str, work: str) -> dict:
    store.download(backup_id, MANIFEST, os.path.join(work, MANIFEST))
    with open(os.path.join(work, MANIFEST)) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT:
        raise Refused(f"backup {backup_id} has format {manifest.get('format')}, this program reads {FORMAT}")
    for name in (DB_OBJECT, MEDIA_OBJECT):
        expected = manifest["objects"][name]["sha256"]
        path = os.path.join(work, name)
        if not (os.path.exists(path) and sha256(path) == expected):
            store.download(backup_id, name, path)
        if sha256(path) != expected:
            raise Refused(f"backup {backup_id}: {name} does not match its checksum in the manifest (damaged)")
        plain = path[: -len(".gpg")]
        gpg("decrypt", path, plain)
    run("pg_restore", "--list", os.path.join(work, "db.pgdump"))
    with tarfile.open(os.path.join(work, "media.tar")) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for member in members:
            if member.name.startswith("/") or ".." in member.name.split("/"):
                raise Refused(f"backup {backup_id}: unsafe path in the media archive: {member.name}")
    if len(members) != manifest["media"]["files"]:
        raise Refused(f"backup {backup_id}: the media archive holds {len(members)} files, "
                      f"the manifest says {manifest['media']['files']}")
    return manifest


def drop_plaintext(work: str) -> None:
    """The decrypted copies never outlive a run (the encrypted downloads stay, for the restore that follows)."""
    for name in ("db.pgdump", "media.tar", "restore.sql"):
        try:
            os.unlink(os.path.join(work, name))
        except FileNotFoundError:
            pass


def cmd_verify(args) -> None:
    backup_id, work, manifest = prepare(Store(), args.id)
    drop_plaintext(work)
    say(f"backup {backup_id} verified: checksums match, decrypted, dump readable, "
        f"{manifest['media']['files']} media files")


def other_clients() -> list[str]:
    out = run("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c",
              "SELECT usename || ' from ' || coalesce(host(client_addr), 'local socket') || "
              "coalesce(' (' || nullif(application_name, '') || ')', '') FROM pg_stat_activity "
              "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'").stdout
    return [line for line in out.splitlines() if line.strip()]


def cmd_restore(args) -> None:
    timings = {}
    started = step = time.monotonic()
    passphrase()
    store = Store()
    backup_id, work, manifest = prepare(store, args.id)
    try:
        restore_prepared(backup_id, work, manifest, timings, started, step)
    finally:
        drop_plaintext(work)


def restore_prepared(backup_id: str, work: str, manifest: dict, timings: dict, started: float, step: float) -> None:
    timings["download and verify"] = time.monotonic() - step
    clients = other_clients()
    if clients:
        raise Refused(f"{len(clients)} other connection(s) to database {env('PGDATABASE') or '(default)'}: "
                      f"{'; '.join(clients)}. Stop every process that uses it first (make restore does: web, "
                      "worker pools, beat, Flower, the exporter); nothing was changed")
    kind, where = media_source()
    # 1. The media, extracted in full beside the live files (same filesystem) or in scratch (bucket).
    step = time.monotonic()
    staging = os.path.join(where if kind == "dir" else work, f"{STAGING_PREFIX}{backup_id}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.makedirs(staging)
        with tarfile.open(os.path.join(work, "media.tar")) as tar:
            tar.extractall(staging, filter="data")
        timings["media staged"] = time.monotonic() - step
        # 2. The database, in one transaction: all of it or none of it.
        step = time.monotonic()
        script = os.path.join(work, "restore.sql")
        with open(script, "w") as f:
            f.write("DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n")
            f.flush()
            run("pg_restore", "--no-owner", "--no-privileges", "--file", "-", os.path.join(work, "db.pgdump"), stdout=f)
        run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", script)
    except BaseException:
        # Nothing of the live data changed: the staged media go, the database's transaction rolled back.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    timings["database"] = time.monotonic() - step
    if env("BACKUP_RESTORE_REPORT") == "checksums":
        print("restored tables: " + (run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", TABLES_SQL)
                                     .stdout.strip() or "{}"), flush=True)
    # 3. The media swapped in: the live set becomes exactly the backup's.
    step = time.monotonic()
    restored = 0
    if kind == "dir":
        for name in os.listdir(where):
            if name.startswith(STAGING_PREFIX):
                continue
            full = os.path.join(where, name)
            shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.unlink(full)
        for name in os.listdir(staging):
            os.rename(os.path.join(staging, name), os.path.join(where, name))
        os.rmdir(staging)
        restored = sum(len(files) for _, _, files in os.walk(where))
    else:
        client, bucket = where
        wanted = set()
        for root, _, names in os.walk(staging):
            for name in names:
                key = os.path.relpath(os.path.join(root, name), staging)
                client.upload_file(os.path.join(root, name), bucket, key)
                wanted.add(key)
                restored += 1
        for key in bucket_keys(client, bucket):
            if key not in wanted:
                client.delete_object(Bucket=bucket, Key=key)
        shutil.rmtree(staging, ignore_errors=True)
    timings["media swapped"] = time.monotonic() - step
    shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    say(f"restored backup {backup_id} (taken {manifest['created']}) in {total:.1f} s: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()) + f"; {restored} media files")
    print(json.dumps({"id": backup_id, "seconds": round(total, 2), "media_files": restored}))


def database_from_url() -> None:
    """PG* from DATABASE_URL when PGHOST is not set (libpq reads PG*; a password never goes on a command line)."""
    url = os.environ.get("DATABASE_URL", "")
    if os.environ.get("PGHOST") or not url:
        return
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise Refused(f"DATABASE_URL is not a postgres:// URL (scheme {parts.scheme!r})")
    for name, value in (("PGHOST", parts.hostname), ("PGPORT", parts.port), ("PGUSER", parts.username),
                        ("PGPASSWORD", parts.password), ("PGDATABASE", parts.path.lstrip("/"))):
        if value:
            os.environ[name] = unquote(str(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blueprint-backup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backup", help="back up the database and the media to the store").set_defaults(func=cmd_backup)
    sub.add_parser("list", help="list the complete backups").set_defaults(func=cmd_list)
    for name, func in (("verify", cmd_verify), ("restore", cmd_restore)):
        p = sub.add_parser(name, help=f"{name} a backup (default: the newest)")
        p.add_argument("id", nargs="?")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        database_from_url()
        args.func(args)
    except Refused as refusal:
        print(f"ERROR: {args.command} refused: {refusal}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
