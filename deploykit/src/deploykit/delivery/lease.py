"""Redis broker: each worker process holds a lease, and every message it receives names it as owner.

A message a worker received sits in kombu's `unacked` hash until the ack. Who may put it back on its
queue, and when? Not "whoever does not answer `inspect`": on a warm shutdown Celery closes a worker's
remote control first and only then waits for its pool, so a draining worker is silent while it still
runs its tasks, and so is a busy or partitioned one (that rule ran long tasks twice on every deploy).

Instead, as Sidekiq Pro's super_fetch does with its private queues: each worker's main process keeps
a key `deploykit.lease:<owner>` alive with a TTL (DEPLOYKIT_LEASE_TTL) from a thread of its own, which
runs until the process exits -- through a warm shutdown that waits for a long task, a rate-limit
bucket, or ETA tasks waiting for their time. The receipt (deploykit.delivery.redis_transport.QoS.append)
records the owner of each message; deploykit.delivery.unacked requeues a message only once its owner's lease
has expired: the process is gone (kill -9, OOM, a lost host) or could not reach Redis for a whole TTL.
The owner id is unique per process start, so a container restarted under the same hostname does not
revive the lease of the process it replaces, and it changes when the worker reconnects after losing the
broker: Celery then drops what it held (prefetched tasks cleared, running late-ack tasks cancelled), and
kombu gives those messages back at channel close only if Redis is already reachable again. What it
could not give back stays owned by the old id, whose lease nobody renews: it expires after a TTL and
the next round requeues the messages (a broker restart stranded one that way, celery/celery#1307).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import uuid

logger = logging.getLogger("deploykit.lease")

PREFIX = "deploykit.lease:"
DEFAULT_TTL = 30

_current: Lease | None = None
_lock = threading.Lock()


def key(owner: str) -> str:
    return PREFIX + owner


def current_owner() -> str | None:
    """The owner id of this process' lease; None where no lease runs (web, beat, a pool child)."""
    lease = _current
    return lease.owner if lease is not None and lease.pid == os.getpid() else None


class Lease:
    def __init__(self, app, ttl: float, hostname: str | None = None):
        self.app = app
        self.ttl = max(3, int(ttl))
        self.pid = os.getpid()
        self.hostname = hostname or socket.gethostname()
        self.owner = self._new_owner()
        self._stopping = threading.Event()
        self._connection = None

    def _new_owner(self) -> str:
        return f"{self.hostname}:{self.pid}:{uuid.uuid4().hex[:8]}"

    def rotate(self) -> str:
        """Take a new owner id for what this process receives from now on (after a reconnect); the old
        one is no longer renewed, so what it still names comes back once its lease expires."""
        old, self.owner = self.owner, self._new_owner()
        self.take()
        logger.warning("reconnected to the broker: worker lease %s replaces %s; what the old one still holds "
                       "is requeued once it expires (%d s)", self.owner, old, self.ttl)
        return old

    def take(self) -> None:
        """The first renewal of an owner id; Redis down (at start, at a reconnect): the thread keeps trying."""
        try:
            self.renew()
        except Exception as exc:  # noqa: BLE001 - the lease expires only after a whole TTL
            logger.warning("cannot take worker lease %s yet: %s", self.owner, exc)
            self._reset()

    def _client(self):
        if self._connection is None:
            self._connection = self.app.connection_for_write()
        return self._connection.default_channel.client

    def renew(self) -> None:
        self._client().set(key(self.owner), self.pid, ex=self.ttl)

    def _run(self) -> None:
        # A third of the TTL: two renewals may fail (a Redis restart) before the lease expires.
        while not self._stopping.wait(self.ttl / 3):
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - keep trying: the lease expires only after a whole TTL
                logger.warning("cannot renew worker lease %s: %s", self.owner, exc)
                self._reset()

    def _reset(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - a broken connection: dropped either way
                pass

    def release(self) -> None:
        """At exit: the messages still recorded under this owner (none after a clean warm shutdown) are
        requeued by the next round instead of one TTL later."""
        if os.getpid() != self.pid:  # a forked pool child inherits atexit hooks, not the lease
            return
        self._stopping.set()
        try:
            self._client().delete(key(self.owner))
        except Exception as exc:  # noqa: BLE001 - the lease expires by itself
            logger.info("worker lease %s left to expire: %s", self.owner, exc)
        self._reset()


def start(app, ttl: float, hostname: str | None = None) -> Lease:
    """Take this process' lease (once per process) before it consumes; renewed until the process exits."""
    global _current
    with _lock:
        if _current is not None and _current.pid == os.getpid():
            return _current
        lease = Lease(app, ttl, hostname)
        lease.take()
        threading.Thread(target=lease._run, name="deploykit-lease", daemon=True).start()
        atexit.register(lease.release)
        _current = lease
        logger.info("worker lease %s (TTL %d s)", lease.owner, lease.ttl)
        return lease
