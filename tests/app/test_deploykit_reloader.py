"""deploykit's development-mode reloader (`manage.py run_with_reloader -- COMMAND`, compose/compose.dev.yaml)
as a real process tree on a copy of the reference project: a saved Python file stops the command and
starts it anew; a task module the URLconf never imports is watched too (the Celery app's autodiscovery).
The live proof on the Compose stack is `make test-dev` (tests/dev)."""

import os
import shutil
import signal
import subprocess
import sys

from app_services import APP, app_env, wait_for

# The command the reloader runs: writes its pid to a file, records the SIGTERM it gets when replaced.
INNER = ("import os, signal, sys, time\n"
         "log = open(sys.argv[1], 'a', buffering=1)\n"
         "signal.signal(signal.SIGTERM, lambda *a: (log.write(f'stopped {os.getpid()}\\n'), os._exit(0)))\n"
         "log.write(f'started {os.getpid()}\\n')\n"
         "time.sleep(600)\n")


def test_a_changed_python_file_restarts_the_command(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns("__pycache__"))
    # A task module only Celery's autodiscovery imports (not the URLconf): jobs.tasks is also imported by views.
    (project / "jobs" / "extra_tasks.py").write_text("from celery import shared_task\n\n\n@shared_task\ndef nop():\n"
                                                     "    return 1\n")
    (project / "config" / "settings_reload.py").write_text(
        "from config.settings import *  # noqa: F403\n\nCELERY_IMPORTS = ['jobs.extra_tasks']\n")
    events = tmp_path / "events"
    env = app_env(DJANGO_DEBUG="true", DJANGO_SETTINGS_MODULE="config.settings_reload", LOG_FORMAT="text",
                  CELERY_BROKER_URL="memory://",
                  DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([sys.executable, "-m", "django", "run_with_reloader", "--stop-timeout", "5", "--",
                             sys.executable, "-c", INNER, str(events)],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

    def lines(prefix):
        return [line.split()[1] for line in events.read_text().splitlines() if line.startswith(prefix)] \
            if events.exists() else []

    try:
        wait_for(lambda: len(lines("started")) == 1, 120, "the command's first start")
        first = lines("started")[0]

        def restarted():
            if len(lines("started")) > 1:
                return True
            # A change made before the reloader's first look at the file is not one: change it until seen.
            with open(project / "jobs" / "extra_tasks.py", "a") as f:
                f.write("\n# changed\n")
            return False

        wait_for(restarted, 120, "the command restarted after a change", interval=2)
        assert lines("stopped")[0] == first  # the old one was stopped (SIGTERM) before the new one started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert "jobs/extra_tasks.py changed, reloading" in output, output
    assert "waiting for a Python file to change" not in output, output  # stopped by the reloader, not crashed
