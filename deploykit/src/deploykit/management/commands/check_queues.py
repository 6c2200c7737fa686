"""No silent queues (the migrate step runs it before `migrate`): every queue a task or beat entry is routed
to is consumed by a worker pool, and every consumed queue gets something (deploykit/ops/queues.py)."""

from django.core.management.base import BaseCommand, CommandError
from django.conf import settings

from deploykit.celery import project_app_with_tasks
from deploykit.ops import queues

VARIABLE = "DEPLOYKIT_CONSUMED_QUEUES"


class Command(BaseCommand):
    help = (f"Check the queues of every task and beat entry (Celery's router) against the queues the worker "
            f"pools consume ({VARIABLE}); exit 1 naming each queue without a consumer or without work.")

    def add_arguments(self, parser):
        parser.add_argument("--consumed", help=f"comma-separated queues the pools consume (overrides {VARIABLE})")

    def handle(self, *args, **opts):
        if opts["consumed"] is not None:
            consumed = [q.strip() for q in opts["consumed"].split(",") if q.strip()]
            source = f"--consumed={','.join(consumed)}"
        else:
            consumed = list(getattr(settings, VARIABLE, None) or [])
            source = f"{VARIABLE}={','.join(consumed)}"
        if not consumed:
            self.stdout.write(f"check_queues: skipped, {VARIABLE} is empty (set it to the queues of the worker "
                              "pools to check routes against them)")
            return
        app = project_app_with_tasks("check_queues")
        report = queues.check(app, consumed, source, explicit=getattr(settings, "DEPLOYKIT_EXPLICIT_QUEUES", None) or ())
        if report.problems:
            raise CommandError("check_queues:\n" + "\n".join(report.problems))
        self.stdout.write(f"check_queues: {report.summary}")
