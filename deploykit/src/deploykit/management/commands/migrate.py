"""Django's `migrate`, with every migration transaction on PostgreSQL under DEPLOYKIT_MIGRATE_LOCK_TIMEOUT and
DEPLOYKIT_MIGRATE_STATEMENT_TIMEOUT (deploykit/ops/migrate.py says why)."""

from django.conf import settings
from django.core.management.commands import migrate
from django.db import connections

from deploykit.ops.migrate import timeouts


class Command(migrate.Command):
    help = migrate.Command.help + " On PostgreSQL, under deploykit's lock and statement timeouts."

    def handle(self, *args, **options):
        connection = connections[options["database"]]
        with timeouts(connection, getattr(settings, "DEPLOYKIT_MIGRATE_LOCK_TIMEOUT", 5),
                      getattr(settings, "DEPLOYKIT_MIGRATE_STATEMENT_TIMEOUT", 30)):
            return super().handle(*args, **options)
