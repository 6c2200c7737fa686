"""Development mode only: run a process (a Celery worker, beat) and restart it when Python code changes.

`python -m django run_with_reloader -- deploykit-worker` is what `runserver` does for the web process,
with Django's own reloader (django.utils.autoreload.run_with_reloader): a parent process restarts a
watching child whenever it exits with status 3; the child watches the files of every module it has
imported (StatReloader: one stat per file a second) and runs the command as a subprocess. So that it
watches what the worker runs, the child imports what a worker imports before starting it: the project's
URLconf (Django's reloader loads it: the views) and the Celery app's task modules (autodiscovery). A
change stops the command (SIGTERM, then SIGKILL after --stop-timeout seconds) and starts it anew; a
command that exits by itself waits for the next change, as runserver does after an error. Never used in
production: the Compose override compose/compose.dev.yaml starts workers and beat with it.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
import sys

from django.core.management.base import BaseCommand
from django.utils import autoreload

logger = logging.getLogger("deploykit.reloader")


class Command(BaseCommand):
    help = "Run a command (after --), restarting it when the Python code it runs changes (development mode)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--stop-timeout", type=float, default=10.0,
                            help="Seconds a stopped command gets before SIGKILL (default 10).")
        parser.add_argument("command", nargs="+", help="The command and its arguments (after --).")

    def handle(self, *args, **opts):
        autoreload.run_with_reloader(run, opts["command"], opts["stop_timeout"])


def run(command: list[str], stop_timeout: float) -> None:
    """The watching child's main function (in Django's "django-main-thread"): import what the command
    will import, so that a change to it is seen, then run the command until it exits."""
    # An import error (a syntax error being typed) ends this thread; autoreload.check_errors, which
    # wraps it, watches the failing file too, and the next change restarts everything.
    from deploykit.celery_app import app

    app.loader.import_default_modules()
    process = subprocess.Popen(command)
    atexit.register(stop, process, stop_timeout)
    logger.info("Started %s (pid %s); restarted when a Python file changes", " ".join(command), process.pid)
    status = process.wait()
    if not getattr(process, "stopping", False):
        logger.warning("%s exited with status %s; waiting for a Python file to change", command[0], status)


def stop(process: subprocess.Popen, timeout: float) -> None:
    """At the child's exit (sys.exit(3) on a change, SIGTERM): stop the command before a new one starts."""
    if process.poll() is not None:
        return
    process.stopping = True
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    sys.stdout.flush()
