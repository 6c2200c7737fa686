"""Start Celery beat under the single-instance lock (see deploykit/ops/beat.py)."""

import sys

from celery import current_app
from django.core.management.base import BaseCommand

from deploykit.ops.beat import run_beat


class Command(BaseCommand):
    help = "Run Celery beat, holding the single-instance lock for its lifetime (standby while another runs)."

    def add_arguments(self, parser):
        parser.add_argument("--no-wait", action="store_true", help="Exit (status 3) instead of standing by.")
        parser.add_argument("--poll", type=float, default=5.0, help="Seconds between lock attempts.")
        parser.add_argument("beat_args", nargs="*", help="Extra arguments for `celery beat` (after --).")

    def handle(self, *args, **opts):
        code = run_beat(current_app._get_current_object(), opts["beat_args"],
                        wait=not opts["no_wait"], poll=opts["poll"])
        if code:
            sys.exit(code)
