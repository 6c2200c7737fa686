"""Compose-only: `make backup` / `make restore` on the live stack (docs/backup.md), real parts only.

Rows (Django users, through the ORM in the web container) and files (random bytes in the media volume) are
written, a backup is taken to the object store (compose/backup-store.yaml in the test stack), the data is
destroyed (schema public dropped, every media file deleted), and the backup is restored through the same
script `make restore` runs (verify, stop what writes, restore, start). Then every row and file is found:
every table's row count and content checksum, every file's SHA-256, as they were at the backup. The recovery
time is printed (docs/backup.md records it). A restore with a wrong passphrase is refused first, the stack
left running. The rows are compared with the restore's own report (BACKUP_RESTORE_REPORT=checksums), taken
when its transaction commits, before the app is started again and writes (beat's schedule, results).

A table or file the running stack changed while the backup was taken (beat's schedule, say) cannot be
compared with the moment of the backup from outside; those are named, and only their presence checked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import time

import pytest

# restore: replaces the stack's data, so conftest runs it after every other test (disruptive ones included).
pytestmark = [pytest.mark.compose, pytest.mark.disruptive, pytest.mark.restore]
if not os.environ.get("SMOKE_BACKUP"):
    pytest.skip("SMOKE_BACKUP is not set: this stack has no backup store (make test-compose runs it)",
                allow_module_level=True)

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "compose", "scripts", "backup.sh")
USERS = 200
FILES = 30
MARK = f"backup-test-{int(time.time())}"


def _backup_program():
    """compose/images/backup/backup.py (standard library only at import): its queries, one definition."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "compose", "images", "backup", "backup.py")
    spec = importlib.util.spec_from_file_location("blueprint_backup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Every table of schema public: rows and an order-independent checksum of their content, the query the
# program's restore report runs at commit (BACKUP_RESTORE_REPORT).
TABLES_SQL = _backup_program().TABLES_SQL

MEDIA_PY = r"""
import hashlib, json, os
root = os.environ["MEDIA_ROOT"]
out = {}
for base, dirs, files in os.walk(root):
    for name in files:
        path = os.path.join(base, name)
        with open(path, "rb") as f:
            out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
print(json.dumps(out))
"""


def run(command: list[str], timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{command[-4:]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def psql(compose_cmd, sql: str) -> str:
    """SQL on stdin, as the owner role over the database container's local socket."""
    return subprocess.run([*compose_cmd, "exec", "-T", "postgres", "sh", "-c",
                           'psql -X -q -At -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'],
                          input=sql, capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def tables(compose_cmd) -> dict[str, list[str]]:
    return json.loads(psql(compose_cmd, TABLES_SQL) or "{}")


def media(compose_cmd) -> dict[str, str]:
    return json.loads(run([*compose_cmd, "exec", "-T", "web", "python", "-c", MEDIA_PY]).stdout)


def web_python(compose_cmd, code: str) -> str:
    return run([*compose_cmd, "exec", "-T", "web", "python", "-c", code]).stdout


def snapshot(compose_cmd) -> tuple[dict, dict]:
    return tables(compose_cmd), media(compose_cmd)


def test_backup_destroy_restore_finds_every_row_and_file(compose_cmd, http, target):
    # 1. Rows and files of our own, beside what the earlier smoke tests left (uploads, reports, results).
    run([*compose_cmd, "exec", "-T", "web", "python", "manage.py", "shell", "-c",
         "from django.contrib.auth import get_user_model; U = get_user_model(); "
         f"U.objects.bulk_create([U(username='{MARK}-%d' % i, email='u%d@example.com' % i) for i in range({USERS})])"])
    web_python(compose_cmd, f"""
import os
d = os.path.join(os.environ["MEDIA_ROOT"], "{MARK}", "nested")
os.makedirs(d)
for i in range({FILES}):
    with open(os.path.join(d, "file-%d.bin" % i), "wb") as f:
        f.write(os.urandom(1024 * (i + 1)))
""")
    before = snapshot(compose_cmd)
    assert int(before[0]["auth_user"][0]) >= USERS
    assert sum(1 for path in before[1] if path.startswith(MARK + "/")) == FILES

    # 2. The backup, as `make backup` takes it.
    began = time.monotonic()
    out = run([SCRIPT, "backup", "--", *compose_cmd]).stdout
    backup_seconds = time.monotonic() - began
    backup_id = json.loads(out.strip().splitlines()[-1])["id"]
    after = snapshot(compose_cmd)
    stable_tables = {t for t in before[0] if before[0][t] == after[0].get(t)}
    stable_files = {f for f in before[1] if before[1][f] == after[1].get(f)}
    moving = sorted(set(before[0]) - stable_tables) + sorted(set(before[1]) - stable_files)
    print(f"\nbackup {backup_id} taken in {backup_seconds:.1f} s: {len(before[0])} tables "
          f"({sum(int(v[0]) for v in before[0].values())} rows), {len(before[1])} media files; "
          f"changed by the running stack meanwhile (presence checked only): {moving or 'none'}")

    # 3. A restore that cannot succeed is refused before anything is stopped or changed.
    refused = run([*compose_cmd, "run", "--rm", "--no-TTY", "-e", "BACKUP_PASSPHRASE=" + "x" * 32, "backup",
                   "restore", backup_id], check=False)
    assert refused.returncode != 0 and "wrong BACKUP_PASSPHRASE" in refused.stderr, refused.stderr
    assert "web" in run([*compose_cmd, "ps", "--services", "--status", "running"]).stdout.split()

    # 4. Disaster: the database's contents and every media file gone.
    psql(compose_cmd, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    web_python(compose_cmd, "import os, shutil; r = os.environ['MEDIA_ROOT']\n"
                            "[shutil.rmtree(os.path.join(r, n)) if os.path.isdir(os.path.join(r, n)) else os.unlink(os.path.join(r, n)) for n in os.listdir(r)]")
    assert tables(compose_cmd) == {} and media(compose_cmd) == {}

    # 5. The restore, as `make restore ID=...` runs it: verify, stop, restore, start.
    began = time.monotonic()
    result = subprocess.run([SCRIPT, "restore", backup_id, "--", *compose_cmd], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "BACKUP_RESTORE_REPORT": "checksums"})
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    recovery = time.monotonic() - began
    print("\n".join(line for line in result.stdout.splitlines() if not line.startswith("restored tables:"))[-2000:])
    reported = re.search(r"recovery time: (\d+) s \((.*)\)", result.stdout)
    assert reported, result.stdout
    print(f"RECOVERY TIME (restore of backup {backup_id}, measured by the test): {recovery:.1f} s; "
          f"the script's breakdown: {reported.group(2)}")

    # 6. Every row, as at the backup: the restore's own report, taken when its transaction committed and before
    # the app was started again (beat, say, writes its schedule as soon as it runs); then, on the running
    # stack, every table still there and our rows through the ORM. Every file, with its checksum.
    report = re.search(r"^restored tables: (.*)$", result.stdout, re.M)
    assert report, result.stdout
    at_commit = json.loads(report.group(1))
    assert set(at_commit) == set(before[0]), set(before[0]) ^ set(at_commit)
    for table in sorted(stable_tables):
        assert at_commit[table] == before[0][table], f"{table}: {before[0][table]} -> {at_commit[table]}"
    restored_tables, restored_files = snapshot(compose_cmd)
    assert set(restored_tables) >= set(before[0]), sorted(set(before[0]) - set(restored_tables))
    assert sum(1 for f in restored_files if f.startswith(MARK + "/")) == FILES
    for path in sorted(stable_files):
        assert restored_files.get(path) == before[1][path], f"media file {path} missing or changed"
    assert set(restored_files) >= set(before[1]), sorted(set(before[1]) - set(restored_files))
    users = run([*compose_cmd, "exec", "-T", "web", "python", "manage.py", "shell", "-c",
                 "from django.contrib.auth import get_user_model; "
                 f"print(get_user_model().objects.filter(username__startswith='{MARK}-').count())"]).stdout
    assert int(users.strip().splitlines()[-1]) == USERS

    # 7. The stack serves again through the front door.
    response = http.get(target.url("/readyz"), timeout=10)
    assert response.status_code == 200, response.text
