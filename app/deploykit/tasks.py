"""deploykit's own periodic task (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from celery import current_app, shared_task

from .unacked import restore_orphans


@shared_task(name="deploykit.restore_unacked", ignore_result=True)
def restore_unacked() -> dict:
    """Requeue Redis task messages whose worker died or lost the broker (see deploykit/unacked.py)."""
    return restore_orphans(current_app)
