"""The restore round is no longer a beat task (deploykit/unacked.py runs in every consumer): drop the
entry django-celery-beat's DatabaseScheduler kept from the old CELERY_BEAT_SCHEDULE, or beat would keep
sending a task no worker knows."""

from django.db import migrations


def drop_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="deploykit.restore_unacked").delete()


class Migration(migrations.Migration):
    dependencies = [("deploykit", "0003_idempotency_key"), ("django_celery_beat", "0001_initial")]

    operations = [migrations.RunPython(drop_schedule, migrations.RunPython.noop)]
