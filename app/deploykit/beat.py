"""Single-instance Celery beat.

Two beats would send every periodic task twice. `manage.py run_beat` takes a lock *before* starting
beat and holds it for beat's whole lifetime:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock(BEAT_LOCK_ID)`) on a dedicated
  connection. It is released by PostgreSQL when the process or its connection dies -- no stale locks.
- SQLite (development): an exclusive `flock` on `<database file>.beat.lock` (same host only).

A second beat does not start: it waits as a *standby*, logging who holds the lock, and takes over
when the lock is released (rolling updates, a crashed node). A watchdog thread checks the lock
connection; if it is lost the process exits so its supervisor restarts it (and it queues again).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connections

logger = logging.getLogger("deploykit.beat")


class BeatLock:
    """Base: acquire() blocks (standby) until the lock is ours; alive() tells whether we still hold it."""

    description = "lock"

    def try_acquire(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def holder(self) -> str:
        return "another beat"

    def alive(self) -> bool:
        return True

    def release(self) -> None:  # pragma: no cover - interface
        pass

    def acquire(self, wait: bool = True, poll: float = 5.0, log_every: float = 60.0) -> bool:
        last_log = 0.0
        while True:
            if self.try_acquire():
                logger.info("beat lock acquired (%s); starting beat", self.description)
                return True
            if not wait:
                logger.error("beat lock %s is held by %s; refusing to start a second beat",
                             self.description, self.holder())
                return False
            now = time.monotonic()
            if now - last_log >= log_every:
                logger.warning(
                    "beat lock %s is held by %s: only one beat may run; waiting as standby "
                    "(retrying every %.0fs)", self.description, self.holder(), poll,
                )
                last_log = now
            time.sleep(poll)


class PostgresAdvisoryLock(BeatLock):
    def __init__(self, alias: str = "default", lock_id: int | None = None):
        self.lock_id = int(lock_id if lock_id is not None else settings.BEAT_LOCK_ID)
        self.alias = alias
        self.description = f"pg_advisory_lock({self.lock_id})"
        self.conn = None

    def _connect(self):
        wrapper = connections[self.alias]
        params = wrapper.get_connection_params()
        params["application_name"] = f"celery-beat@{socket.gethostname()}:{os.getpid()}"
        conn = wrapper.get_new_connection(params)
        conn.autocommit = True
        return conn

    def try_acquire(self) -> bool:
        if self.conn is None:
            self.conn = self._connect()
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [self.lock_id])
            return bool(cur.fetchone()[0])

    def holder(self) -> str:
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                    [self.lock_id],
                )
                row = cur.fetchone()
        except Exception:  # pragma: no cover - diagnostics only
            row = None
        if not row:
            return "another beat"
        return f"{row[0] or 'a session'} (backend pid {row[2]}, client {row[1] or 'local'})"

    def alive(self) -> bool:
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = %s",
                    [self.lock_id],
                )
                return cur.fetchone()[0] == 1
        except Exception as exc:
            logger.error("beat lock connection lost: %s", exc)
            return False

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


class FileLock(BeatLock):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.description = f"flock({self.path})"
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()}:{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        try:
            return "beat " + self.path.read_text().strip()
        except OSError:  # pragma: no cover
            return "another beat"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def lock_for_database(alias: str = "default") -> BeatLock:
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        return PostgresAdvisoryLock(alias)
    if vendor == "sqlite":
        return FileLock(f"{connections[alias].settings_dict['NAME']}.beat.lock")
    raise RuntimeError(f"no single-instance beat lock for database vendor {vendor!r}")


def watchdog(lock: BeatLock, interval: float = 10.0, grace: float = 30.0) -> threading.Thread:
    """Stop this process when the lock is lost (e.g. the database restarted and dropped the session)."""

    def run():
        while True:
            time.sleep(interval)
            if not lock.alive():
                logger.critical("beat lost its single-instance lock %s; stopping so it is restarted",
                                lock.description)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(grace)
                os._exit(1)
                return

    thread = threading.Thread(target=run, name="beat-lock-watchdog", daemon=True)
    thread.start()
    return thread


def run_beat(app, beat_args: list[str], *, wait: bool = True, poll: float = 5.0) -> int:
    lock = lock_for_database()
    if not lock.acquire(wait=wait, poll=poll):
        return 3
    connections.close_all()  # beat's scheduler opens its own connections
    watchdog(lock)
    argv = ["celery", "beat", "--scheduler", settings.CELERY_BEAT_SCHEDULER, *beat_args]
    try:
        app.start(argv=argv[1:])
    finally:
        lock.release()
    return 0


def main() -> None:  # pragma: no cover - thin wrapper, exercised through bin/start-beat
    sys.exit(run_beat(__import__("celery").current_app, sys.argv[1:]))
