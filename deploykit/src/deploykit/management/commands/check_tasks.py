"""Task compatibility between releases, in the migrate step (deploykit/ops/task_names.py says why):
`check_tasks` before `migrate` refuses to drop a task name the deployed release registers; `check_tasks
--record` after it records this release's names for the next deploy."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction

from deploykit.celery import project_app_with_tasks
from deploykit.models import TaskName
from deploykit.ops import task_names

VARIABLE = "DEPLOYKIT_TASKS_RETIRED"


class Command(BaseCommand):
    help = ("Refuse a release that drops a task name the deployed release registers (unless listed in "
            f"{VARIABLE}); --record stores this release's names.")

    def add_arguments(self, parser):
        parser.add_argument("--record", action="store_true", help="record this release's task names")

    def handle(self, *args, **opts):
        current = task_names.registered(project_app_with_tasks("check_tasks"))
        if opts["record"]:
            with transaction.atomic():
                TaskName.objects.exclude(name__in=current).delete()
                known = set(TaskName.objects.values_list("name", flat=True))
                TaskName.objects.bulk_create(TaskName(name=name) for name in sorted(current - known))
            self.stdout.write(f"check_tasks: recorded {len(current)} task names")
            return
        try:
            recorded = set(TaskName.objects.values_list("name", flat=True))
        except DatabaseError:  # the first deploy of a release with this table: nothing recorded yet
            recorded = set()
        if not recorded:
            self.stdout.write("check_tasks: skipped, no release recorded its task names yet")
            return
        retired = set(getattr(settings, VARIABLE, None) or [])
        report = task_names.compare(recorded, current, retired)
        if message := task_names.problem(report):
            raise CommandError(message)
        self.stdout.write(f"check_tasks: {len(current)} task names, none dropped"
                          + (f"; retired: {', '.join(report.retired)}" if report.retired else "")
                          + (f"; new: {', '.join(report.added)}" if report.added else ""))
