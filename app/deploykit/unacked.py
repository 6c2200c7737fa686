"""Redis broker: requeue the task messages no live worker holds, long before the visibility timeout.

kombu's Redis transport emulates acknowledgements: a message a worker receives is copied into the
`unacked` hash, and leaves it when the worker acks it, or puts it back on its queue when the worker
shuts down or loses the connection. Two faults leave it behind:

- the worker's main process dies (kill -9, the OOM killer, a lost host): nobody restores it
  (celery/celery#4984);
- the broker restarts while the worker holds it: the worker drops it and restores it at once, while
  Redis is still down, which fails (celery/celery#1307, "Restore unacked on broker reconnection").

kombu brings such a message back only once it is older than the visibility timeout
(CELERY_VISIBILITY_TIMEOUT, 1 h). Shortening that is no fix: it must outlast the longest task and ETA,
or long tasks run twice. `restore_orphans()` closes the gap instead: it asks every live worker which
tasks it holds (inspect scheduled, reserved, active) and requeues each unacked message, delivered
before the question, whose task none of them held in two rounds in a row. Beat runs a round every
CELERY_UNACKED_RESTORE_INTERVAL seconds (deploykit.tasks.restore_unacked), so a stranded message is
back on its queue within about two intervals. On RabbitMQ it does nothing: the broker requeues itself.

The price: a live worker that misses both questions looks dead, and the tasks it holds may run twice.
Rounds where no worker answers, or the answers disagree, change nothing; tasks must be idempotent
anyway (acks_late), and a requeued message counts as a redelivery (deploykit.celery).

The same round also requeues what the `unacked` hash never saw: a message popped off its queue and lost
before the worker recorded it (deploykit.lost, with the publish journal of deploykit.redis_transport).
"""

from __future__ import annotations

import json
import logging
import time

from . import lost

logger = logging.getLogger("deploykit.unacked")

# Only messages delivered this long before the workers were asked are considered: covers clock skew
# between hosts (the delivery time is the receiving worker's clock).
MIN_AGE_SECONDS = 15.0
LOCK_KEY = "deploykit.unacked_restore"
# Messages no worker held in the previous round: requeued only when still unheld in the next one, so
# one late answer (a worker busy for a few seconds) does not make a task run twice.
SUSPECTS_KEY = "deploykit.unacked_suspects"


def held_task_ids(app, timeout: float) -> set[str] | None:
    """Ids of the tasks the live workers hold; None when no worker answered or their answers disagree.

    Asked in the order a task moves (scheduled -> reserved -> active), so a task that moves between
    two questions is still seen once.
    """
    held: set[str] = set()
    workers = None
    for question in ("scheduled", "reserved", "active"):
        # The first question waits the whole timeout; the next ones only until the same workers answered.
        inspect = app.control.inspect(timeout=timeout, limit=len(workers) if workers else None)
        replies = getattr(inspect, question)() or {}
        if not replies or (workers is not None and set(replies) != workers):
            logger.warning("no usable answer to inspect %s (workers %s, before %s); skipping this round",
                           question, sorted(replies), sorted(workers or ()))
            return None
        workers = set(replies)
        for requests in replies.values():
            for item in requests:
                held.add(item.get("request", item)["id"])  # scheduled entries wrap the request
    return held


def _task_id(raw: bytes | None) -> str | None:
    try:
        return json.loads(raw)[0]["headers"]["id"]
    except (ValueError, LookupError, TypeError):
        return None  # acked meanwhile, or not a Celery task message (protocol 2): never touched


def restore_orphans(app, timeout: float = 5.0, min_age: float = MIN_AGE_SECONDS) -> dict:
    """One round: requeue the unacked messages no live worker held in this round and the previous one."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        if not getattr(channel, "ack_emulation", False):
            return {"skipped": f"{conn.transport_cls} acknowledges in the broker"}
        client = channel.client
        lock = client.lock(LOCK_KEY, timeout=max(60.0, 10 * timeout))
        if not lock.acquire(blocking=False):
            return {"skipped": "another round is running"}
        try:
            return _round(app, channel, client, timeout, min_age)
        finally:
            try:
                lock.release()
            except Exception:  # noqa: BLE001 - expired: at worst two rounds overlap, both transactional
                pass


def _round(app, channel, client, timeout: float, min_age: float) -> dict:
    asked_at = time.time()
    old = client.zrange(channel.unacked_index_key, 0, asked_at - min_age, byscore=True)
    absent = lost.absent_messages(channel, client) if lost.journals(channel) else {}
    missing = {tag: absent[tag] for tag in lost.remember(client, absent)}  # absent in two rounds in a row
    summary = {"unacked": len(old), "restored": 0, "absent": len(absent), "requeued": 0}
    if not old:
        client.delete(SUSPECTS_KEY)
    if not old and not missing:  # the usual case: no worker is asked anything
        return summary
    held = held_task_ids(app, timeout)
    if held is None:
        return {**summary, "skipped": "no usable answer from the workers"}
    summary["held"] = len(held)
    if old:
        summary.update(_restore_unheld(channel, client, old, held))
    summary["requeued"] = len(lost.requeue(channel, client, {
        tag: entry for tag, entry in missing.items() if entry[1] not in held}))
    return summary


def _restore_unheld(channel, client, old: list, held: set[str]) -> dict:
    unheld = {tag: task_id for tag in old
              if (task_id := _task_id(client.hget(channel.unacked_key, tag))) and task_id not in held}
    suspects = client.smembers(SUSPECTS_KEY)
    restored = []
    for tag, task_id in unheld.items():
        if tag in suspects:
            # A transaction watching the hash: a message acked meanwhile is not requeued.
            channel.qos.restore_by_tag(tag, client)
            restored.append(task_id)
    pipe = client.pipeline()
    pipe.delete(SUSPECTS_KEY)
    if waiting := [tag for tag in unheld if tag not in suspects]:
        pipe.sadd(SUSPECTS_KEY, *waiting).expire(SUSPECTS_KEY, 3600)
    pipe.execute()
    if restored:
        logger.warning("requeued %d task message(s) no live worker held (its worker died or lost the "
                       "broker): %s", len(restored), ", ".join(restored[:20]))
    return {"suspected": len(waiting), "restored": len(restored)}
