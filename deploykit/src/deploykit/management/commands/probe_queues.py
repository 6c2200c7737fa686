"""Round trip through every worker pool: send deploykit's probe task to each queue and wait for its answer.

    python -m django probe_queues                 # the queues in DEPLOYKIT_CONSUMED_QUEUES
    python -m django probe_queues celery emails   # these queues

One JSON line per queue ({"queue", "ok", "worker", "seconds"} or {"queue", "ok": false, "error"}), then
exit 1 if any queue did not answer within --timeout. What a smoke suite or an operator runs after a deploy:
it proves a worker consumes each queue and can reach the result store, which a liveness probe does not.
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PROBE_TASK = "deploykit.probe"


def queues_from(args: list[str]) -> list[str]:
    # Without arguments: the list the settings read through the contract, as check_queues does.
    names = args or getattr(settings, "DEPLOYKIT_CONSUMED_QUEUES", None) or []
    return list(dict.fromkeys(name.strip() for name in names if name.strip()))


class Command(BaseCommand):
    help = "Send deploykit's probe task to each queue and wait for a worker's answer (exit 1 if one is silent)."

    def add_arguments(self, parser):
        parser.add_argument("queues", nargs="*", help="queues to probe (default: DEPLOYKIT_CONSUMED_QUEUES)")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each queue")

    def handle(self, *args, queues, timeout, **options):
        from deploykit.celery_app import app

        names = queues_from(queues)
        if not names:
            raise CommandError("no queues to probe: name them, or set DEPLOYKIT_CONSUMED_QUEUES")
        # All sent first, then awaited: the pools answer in parallel.
        sent = {name: (time.monotonic(), app.send_task(PROBE_TASK, queue=name)) for name in names}
        silent = []
        for name, (started, result) in sent.items():
            try:
                answer = result.get(timeout=timeout, propagate=True)
            except Exception as exc:  # a timeout, or the probe failed on the worker: both mean "not served"
                silent.append(name)
                line = {"queue": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            else:
                line = {"queue": name, "ok": True, "worker": answer.get("hostname"),
                        "seconds": round(time.monotonic() - started, 3)}
            self.stdout.write(json.dumps(line))
        if silent:
            raise CommandError(f"no answer within {timeout:g} s from queue(s): {', '.join(silent)}")
