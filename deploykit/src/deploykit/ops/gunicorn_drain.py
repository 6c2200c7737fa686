"""Web drain: on SIGTERM gunicorn keeps serving for DEPLOYKIT_WEB_DRAIN_SECONDS before its graceful stop.

Whatever routes to this process (a Service's endpoints in Kubernetes, a load balancer's health check)
needs a moment to stop sending new connections. Meanwhile /readyz answers 503 and every response says
`Connection: close`, so kept-alive clients leave; only then does gunicorn stop, closing its listener at
once (ThreadWorker below), with nothing left in its backlog to reset. A second SIGTERM stops at once.

deploykit/ops/gunicorn_conf.py wires it: `worker_class`, `when_ready`, `pre_request`. Nothing here imports
Django; the flag itself is drain.py, which /readyz reads.
"""

from __future__ import annotations

import os
import signal
import threading

import gunicorn
from gunicorn.arbiter import Arbiter
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker

from .drain import draining, start

# Internals we build on: the master's SIGTERM handler, which gunicorn looks up by name ("handle_" + signal
# name), and gthread's switch for accepting connections.
if not (callable(getattr(Arbiter, "handle_term", None)) and callable(getattr(_ThreadWorker, "set_accept_enabled", None))):
    raise ImportError(f"deploykit.ops.gunicorn_drain needs Arbiter.handle_term and gthread's "
                      f"ThreadWorker.set_accept_enabled, which gunicorn {gunicorn.__version__} lacks")


def install(arbiter: Arbiter, seconds: float) -> None:
    """Make the first SIGTERM start the drain; gunicorn's own handling follows `seconds` later."""
    stop = arbiter.handle_term

    def handle_term() -> None:
        if seconds <= 0 or draining():
            stop()  # raises StopIteration: gunicorn's graceful stop
            return
        start()
        arbiter.log.info("draining for %s s before the graceful stop (DEPLOYKIT_WEB_DRAIN_SECONDS)", seconds)
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()

    arbiter.handle_term = handle_term


def pre_request(worker, req) -> None:
    """gunicorn hook: while draining, answer with `Connection: close` so the client opens its next
    connection elsewhere instead of reusing this one."""
    if draining():
        req.must_close = True


class ThreadWorker(_ThreadWorker):
    """gunicorn's gthread worker, closing its listeners as soon as it stops accepting at shutdown.

    gthread stops accepting, waits for its requests in flight, and only then closes its listeners: the
    connections the kernel queued meanwhile are reset, and a proxy cannot tell whether a POST reset so
    was served. Closed at once, the port refuses instead: a connection that was never made, which a
    proxy may send elsewhere or redial, whatever the method."""

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()
