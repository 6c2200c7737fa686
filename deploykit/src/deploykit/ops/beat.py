"""Single-instance Celery beat.

Two beats would send every periodic task twice. `manage.py run_beat` takes a lock *before* starting
beat and holds it for beat's whole lifetime:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock(BEAT_LOCK_ID)`) on a dedicated
  connection. It is released by PostgreSQL when the process or its connection dies -- no stale locks.
- SQLite (development): an exclusive `flock` on `<database file>.beat.lock` (same host only).

A second beat does not start: it waits as a *standby*, logging who holds the lock, and takes over
when the lock is released (rolling updates, a crashed node). A watchdog thread checks the lock
connection; if it is lost the process exits so its supervisor restarts it (and it queues again).

The lock connection must reach PostgreSQL directly: through PgBouncer in transaction mode each statement
may run on another server connection, so the lock stays on a pooled backend (held forever, or "taken"
again by any client that lands there). DEPLOYKIT_BEAT_LOCK_DATABASE_URL gives the lock its own direct
URL; without it DATABASE_URL is used, and a pooler on the way is refused at start (see
`pooler_problem`). The connection has TCP keepalives on both ends and each lock check a deadline
(DEPLOYKIT_BEAT_LOCK_TIMEOUT): a dead beat host frees the lock, a dead database stops beat, in bounded time.
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

from celery import platforms
from celery.apps.beat import Beat as CeleryBeat
from django.conf import settings
from django.db import connections

logger = logging.getLogger("deploykit.beat")


class LockConfigurationError(Exception):
    """The lock cannot be correct with this configuration (the message names the setting to fix)."""


def keepalive_timing(timeout: int) -> tuple[int, int, int]:
    """(idle, interval, count) of TCP keepalives that declare a silent peer dead within `timeout` s."""
    interval = max(1, timeout // 10)
    return max(1, timeout - 3 * interval - interval), interval, 3


def keepalive_params(timeout: int) -> dict:
    """libpq options of the lock connection: keepalives, an unacknowledged-send limit, a connect deadline."""
    idle, interval, count = keepalive_timing(timeout)
    return {"keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval,
            "keepalives_count": count, "tcp_user_timeout": timeout * 1000, "connect_timeout": timeout}


def pooler_problem(conn, source: str) -> str | None:
    """Why this connection cannot hold a session lock, or None when it reaches PostgreSQL directly.

    libpq keeps the process id that answered the connection start (BackendKeyData). On a direct connection
    that is the backend running every statement; a pooler (PgBouncer in any mode, other poolers) answers
    the start itself with an id of its own. Comparing the two is deterministic, unlike watching
    pg_backend_pid() change between statements, which only happens when the pool is busy."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        server_pid = cur.fetchone()[0]
    if conn.info.backend_pid == server_pid:
        return None
    return (f"beat lock: {source} reaches PostgreSQL through a connection pooler (e.g. PgBouncer; the "
            f"connection was opened as process {conn.info.backend_pid}, statements run in backend "
            f"{server_pid}), where a session advisory lock does not stay with this beat: set "
            "DEPLOYKIT_BEAT_LOCK_DATABASE_URL to a direct postgres:// URL of the same database (bypassing the pooler)")


class BeatLock:
    """Base: acquire() blocks (standby) until the lock is ours; alive() tells whether we still hold it."""

    description = "lock"
    timeout = 30  # seconds a lock check may take (deadline)

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
        self.timeout = int(getattr(settings, "DEPLOYKIT_BEAT_LOCK_TIMEOUT", 30))
        self.source = "DATABASE_URL"
        self.conn = None

    def _wrapper(self):
        """The Django connection wrapper the lock connects with: DEPLOYKIT_BEAT_LOCK_DATABASE_URL's
        database when set (same engine and options as the default), else the default's."""
        wrapper = connections[self.alias]
        direct = getattr(settings, "DEPLOYKIT_BEAT_LOCK_DATABASE", None)
        if not direct:
            return wrapper, "DATABASE_URL"
        merged = {**wrapper.settings_dict,
                  **{k: v for k, v in direct.items() if k in ("NAME", "USER", "PASSWORD", "HOST", "PORT")}}
        merged["OPTIONS"] = {**wrapper.settings_dict.get("OPTIONS", {}), **direct.get("OPTIONS", {})}
        return type(wrapper)(merged, alias=f"{self.alias}-beat-lock"), "DEPLOYKIT_BEAT_LOCK_DATABASE_URL"

    def _connect(self):
        wrapper, self.source = self._wrapper()
        params = wrapper.get_connection_params()
        params["application_name"] = f"celery-beat@{socket.gethostname()}:{os.getpid()}"
        params.update(keepalive_params(self.timeout))  # client side: a dead server or path is noticed
        conn = wrapper.get_new_connection(params)
        conn.autocommit = True
        problem = pooler_problem(conn, self.source)
        if problem is None and self.source != "DATABASE_URL":
            problem = self._same_database_problem(conn)
        if problem:
            conn.close()
            raise LockConfigurationError(problem)
        with conn.cursor() as cur:
            # Server side: the backend notices a vanished beat host and ends the session, freeing the lock
            # for the standby (the kernel default would keep it about two hours).
            idle, interval, count = keepalive_timing(self.timeout)
            for name, value in (("tcp_keepalives_idle", idle), ("tcp_keepalives_interval", interval),
                                ("tcp_keepalives_count", count), ("tcp_user_timeout", self.timeout * 1000),
                                ("statement_timeout", self.timeout * 1000)):
                cur.execute(f"SET {name} = {int(value)}")
        return conn

    def _same_database_problem(self, conn) -> str | None:
        # Every beat must lock in the one database; a lock URL naming another would let two beats run.
        with connections[self.alias].cursor() as cur:
            cur.execute("SELECT current_database()")
            expected = cur.fetchone()[0]
        with conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            actual = cur.fetchone()[0]
        if actual != expected:
            return (f"DEPLOYKIT_BEAT_LOCK_DATABASE_URL names database {actual!r} but DATABASE_URL reaches "
                    f"{expected!r}: the lock must be taken in the application's database")
        return None

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


def check_with_deadline(lock: BeatLock, deadline: float) -> bool:
    """lock.alive(), or False when it has no answer within `deadline` seconds (a hung connection the
    keepalives have not yet broken, a stopped database): beat must not run on a lock it cannot confirm."""
    answer: list[bool] = []
    thread = threading.Thread(target=lambda: answer.append(lock.alive()), name="beat-lock-check", daemon=True)
    thread.start()
    thread.join(deadline)
    if not answer:
        logger.error("beat lock check got no answer within %.0fs (DEPLOYKIT_BEAT_LOCK_TIMEOUT)", deadline)
        return False
    return answer[0]


def watchdog(lock: BeatLock, interval: float | None = None, grace: float = 30.0) -> threading.Thread:
    """Stop this process when the lock is lost (e.g. the database restarted and dropped the session) or
    cannot be confirmed within the lock timeout."""
    interval = interval if interval is not None else max(1.0, lock.timeout / 3)

    def run():
        while True:
            time.sleep(interval)
            if not check_with_deadline(lock, lock.timeout):
                logger.critical("beat lost its single-instance lock %s; stopping so it is restarted",
                                lock.description)
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(grace)
                os._exit(1)
                return

    thread = threading.Thread(target=run, name="beat-lock-watchdog", daemon=True)
    thread.start()
    return thread


class GracefulBeat(CeleryBeat):
    """Celery's beat, stopped by SIGTERM/SIGINT without touching the database inside the signal handler.

    Celery's handler saves the schedule in the handler itself. A signal that lands while the scheduler
    is inside a query re-enters the same psycopg connection, whose lock is not reentrant: beat hangs
    until SIGKILL. Here the handler only asks the service loop to stop; the loop saves the schedule in
    its own `finally`, after at most one sleep (<= the scheduler's max interval, 5 s by default)."""

    def install_sync_handler(self, service) -> None:
        def _stop(signum, frame) -> None:
            service.stop(wait=False)

        platforms.signals.update(SIGTERM=_stop, SIGINT=_stop)


def run_beat(app, beat_args: list[str], *, wait: bool = True, poll: float = 5.0) -> int:
    lock = lock_for_database()
    try:
        if not lock.acquire(wait=wait, poll=poll):
            return 3
    except LockConfigurationError as exc:
        logger.critical("refusing to start beat: %s", exc)
        return 2
    connections.close_all()  # beat's scheduler opens its own connections
    watchdog(lock)
    app.Beat = app.subclass_with_self(GracefulBeat)
    argv = ["celery", "beat", "--scheduler", settings.CELERY_BEAT_SCHEDULER, *beat_args]
    try:
        app.start(argv=argv[1:])
    finally:
        lock.release()
    return 0


def main() -> None:  # pragma: no cover - thin wrapper, exercised through deploykit-beat
    sys.exit(run_beat(__import__("celery").current_app, sys.argv[1:]))
