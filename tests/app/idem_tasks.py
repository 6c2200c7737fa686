"""Tasks the idempotency tests load into a real worker (`celery worker --include idem_tasks`). Each writes
its side effect (a row in idem_side_effect) under the guard, and appends every attempt and its outcome to
<directory>/attempts outside any transaction, so the test counts executions and side effects apart."""

import os
import time
from pathlib import Path

from celery import shared_task
from django.db import connection, transaction

from deploykit.delivery import idempotency


def note(directory: str, *words) -> None:
    with open(Path(directory) / "attempts", "a") as log:  # one short O_APPEND write per line
        log.write(" ".join(map(str, words)) + "\n")


def insert_side_effect(task_id: str) -> None:
    with connection.cursor() as cur:
        cur.execute("INSERT INTO idem_side_effect (task_id) VALUES (%s)", [task_id])


@shared_task(bind=True, name="idem_tests.commit_then_wait")
def commit_then_wait(self, directory: str) -> str:
    """claim() + side effect commit, then wait for the test (which SIGKILLs this pool child: committed, unacked)."""
    note(directory, "start", self.request.id, os.getpid())
    with transaction.atomic():
        first = idempotency.claim(self)
        if first:
            insert_side_effect(self.request.id)
    outcome = "ran" if first else "skipped"
    note(directory, outcome, self.request.id, os.getpid())
    deadline = time.monotonic() + 120
    while first and not (Path(directory) / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return outcome


@shared_task(bind=True, name="idem_tests.slow_decorated")
@idempotency.idempotent
def slow_decorated(self, directory: str, hold: float) -> dict:
    """The decorator form: the side effect and the claim commit together after `hold` seconds."""
    note(directory, "ran", self.request.id, os.getpid(), f"{time.time():.3f}")
    insert_side_effect(self.request.id)
    time.sleep(hold)
    return {"pid": os.getpid()}
