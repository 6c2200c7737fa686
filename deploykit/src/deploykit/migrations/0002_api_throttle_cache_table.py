"""The table of Django's database cache that holds the API's rate-limit counters when no Redis is
configured (the RabbitMQ variant; config/settings.py CACHES["throttle"], deploykit/throttle.py).

A migration rather than `manage.py createcachetable`, so every deployment path that applies migrations
(including the VMs' `migrate --check` gate) creates it. Made for every installation: an empty table
where Redis holds the counters instead."""

from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

TABLE = "api_throttle"


def create(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0  # set by the command's handle(), which is not run here
    command.create_table(schema_editor.connection.alias, TABLE, dry_run=False)


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("deploykit", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
