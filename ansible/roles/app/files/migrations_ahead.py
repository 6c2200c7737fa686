# Run by rollback.yml with the rollback target's code (`manage.py shell -c`): print the migrations
# the database has applied but this code has no file for, as one line "MIGRATIONS_AHEAD <json list>".
import json

from django.db import connection
from django.db.migrations.loader import MigrationLoader

loader = MigrationLoader(connection, ignore_no_migrations=True)
ahead = sorted(f"{app}.{name}" for app, name in set(loader.applied_migrations) - set(loader.disk_migrations))
print("MIGRATIONS_AHEAD " + json.dumps(ahead))
