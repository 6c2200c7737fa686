"""Task compatibility between releases (docs/release.md#task-compatibility).

During a rollout, and until the queues drain, messages enqueued by the running release (N) are run by the
new one (N+1). A worker receiving a task name it does not register logs "Received unregistered task" and
drops the message: work lost. So every deploy compares the names the new release registers with those the
deployed one recorded, and refuses to drop one unless it is listed in DEPLOYKIT_TASKS_RETIRED (once no
queued message can carry it). A renamed task keeps working by keeping its old name as an alias for one
release: the new function registered under the old name as well."""

from __future__ import annotations

from dataclasses import dataclass


def registered(app) -> set[str]:
    """The task names of `app`, its task modules imported (Celery's built-in `celery.*` excluded: every
    release has them)."""
    return {name for name in app.tasks.keys() if not name.startswith("celery.")}


@dataclass
class Report:
    dropped: list[str]
    retired: list[str]
    added: list[str]


def compare(recorded: set[str], current: set[str], retired: set[str]) -> Report:
    gone = recorded - current
    return Report(dropped=sorted(gone - retired), retired=sorted(gone & retired), added=sorted(current - recorded))


def problem(report: Report) -> str | None:
    if not report.dropped:
        return None
    names = "\n".join(f"  - {name}" for name in report.dropped)
    return ("check_tasks: the release deployed now registers tasks this one does not; messages it enqueued "
            "would reach workers that drop them as unregistered:\n" + names + "\n"
            "Keep each old name as an alias for one release (register the new function under the old name "
            "too), or, once no queued message can carry it, list it in DEPLOYKIT_TASKS_RETIRED.")
