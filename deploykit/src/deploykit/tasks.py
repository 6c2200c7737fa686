"""deploykit's own tasks, found by Celery's autodiscovery in every worker.

- `deploykit.probe`: a round trip through one worker pool. Smoke suites send it with `queue=<pool's queue>`
  and get back which worker took it from which queue.
- `deploykit.beat_tick`: beat's heartbeat (the `beat-tick` entry deploykit.settings.apply() adds, every
  DEPLOYKIT_BEAT_TICK_SECONDS): records beat's last run, which /status shows (deploykit.ops.checks).
Both are routed like any task without options: the project's default queue unless its routes say otherwise.
"""

from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import BeatTick


@shared_task(name="deploykit.probe", bind=True, ignore_result=False)
def probe(self) -> dict:
    info = self.request.delivery_info or {}
    return {"hostname": self.request.hostname, "queue": info.get("routing_key") or info.get("exchange"),
            "time": timezone.now().isoformat()}


@shared_task(name="deploykit.beat_tick", bind=True)
def beat_tick(self) -> str:
    now = timezone.now()
    with transaction.atomic():
        tick, _ = BeatTick.objects.get_or_create(name=BeatTick.BEAT, defaults={"last_run": now})
        BeatTick.objects.filter(pk=tick.pk).update(
            last_run=now, worker=(self.request.hostname or "")[:200], count=F("count") + 1)
    return now.isoformat()
