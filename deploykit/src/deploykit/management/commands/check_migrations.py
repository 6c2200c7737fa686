"""Migrations a rolling deploy can apply while the previous release still serves (docs/release.md#migrations).

During a rollout the old release's processes run against the new schema. django-migration-linter reads
each migration's SQL (`sqlmigrate`) and flags what the old code cannot live with: a dropped or renamed
column or table it still reads, a NOT NULL column without a database default it does not write. Such a
change is the *contract* step of expand/contract: ship it one release after the code stopped using the
column, and list it in DEPLOYKIT_MIGRATIONS_REVIEWED ("app_label.migration_name") with the reason.

The linter is a development tool, not a runtime dependency: run this in CI, not in the image."""

import logging
import site
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

SETTING = "DEPLOYKIT_MIGRATIONS_REVIEWED"


def installed_dirs() -> tuple[Path, ...]:
    return tuple(Path(p).resolve() for p in (*site.getsitepackages(), site.getusersitepackages()))


def project_apps() -> list[str]:
    """The apps whose migrations this project writes: deploykit's and every app outside site-packages
    (third-party apps ship migrations their own authors checked)."""
    third_party = installed_dirs()
    labels = []
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if config.label == "deploykit" or not any(path.is_relative_to(d) for d in third_party):
            if (path / "migrations").is_dir():
                labels.append(config.label)
    return sorted(labels)


def linter_class():
    from django_migration_linter import MigrationLinter

    class ReviewedLinter(MigrationLinter):
        """Skips the reviewed migrations by app label and name (the linter's own list has names only)."""

        reviewed: frozenset = frozenset()

        def should_ignore_migration(self, app_label, migration_name, *args, **kwargs):
            return (f"{app_label}.{migration_name}" in self.reviewed
                    or super().should_ignore_migration(app_label, migration_name, *args, **kwargs))

    return ReviewedLinter


class Command(BaseCommand):
    help = ("Lint the project's migrations for a rolling deploy (django-migration-linter on this database's "
            f"SQL); exit 1 naming each unsafe migration not listed in {SETTING}.")

    def add_arguments(self, parser):
        parser.add_argument("--app", action="append", dest="apps", help="lint only this app (repeatable)")

    def handle(self, *args, **opts):
        try:
            linter_cls = linter_class()
        except ImportError as exc:
            raise CommandError("check_migrations needs django-migration-linter (a development tool): "
                               "pip install django-migration-linter") from exc
        reviewed = list(getattr(settings, SETTING, None) or [])
        bad = [name for name in reviewed if "." not in name]
        if bad:
            raise CommandError(f"{SETTING}: entries must be app_label.migration_name, got {bad}")
        labels = opts["apps"] or project_apps()
        logging.getLogger("django_migration_linter").setLevel(logging.WARNING)  # one line per sqlmigrate call
        linter_cls.reviewed = frozenset(reviewed)
        linter = linter_cls(include_apps=labels, no_cache=True, quiet=["ok", "ignore"])
        linter.lint_all_migrations()
        if linter.has_errors:
            raise CommandError(f"check_migrations: {linter.nb_erroneous} migration(s) above would break the "
                               f"release still running during a rolling deploy (apps: {', '.join(labels)}); "
                               f"split them with expand/contract, or list a reviewed contract step in {SETTING}")
        self.stdout.write(f"check_migrations: {linter.nb_valid} safe, {linter.nb_warnings} with warnings, "
                          f"reviewed: {', '.join(reviewed) or 'none'} (apps: {', '.join(labels)})")
