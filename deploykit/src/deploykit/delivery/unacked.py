"""Redis broker: requeue the task messages whose worker is gone, as soon as its lease expires.

kombu's Redis transport emulates acknowledgements: a message a worker receives is copied into the
`unacked` hash, and leaves it when the worker acks it, or goes back on its queue when the worker shuts
down or loses the connection. Two faults leave it behind: the worker's main process dies (kill -9, the
OOM killer, a lost host; celery/celery#4984), or the broker restarts while the worker holds it
(celery/celery#1307). kombu alone brings such a message back once it is older than the visibility
timeout, which must outlast the longest task and ETA (an hour), or long tasks run twice.

`recover()` is the round that replaces kombu's `restore_visible` in every consumer (deploykit.delivery.redis_transport;
kombu runs it from the worker's event loop every DEPLOYKIT_RECOVERY_INTERVAL seconds, under its
`unacked_mutex`, so recovery never waits behind user work). Per round:

- each `unacked` message names its owner (deploykit.delivery.lease); owners whose lease key has expired are
  dead, and their messages go back to the pop end of their queue, each in one Lua script that checks
  again that the lease is gone and the entry unchanged, and pushes the copy under a new delivery tag;
- a message with no owner (received by a process without the lease, e.g. kombu's plain transport
  during an upgrade) keeps kombu's rule: requeued once older than the visibility timeout;
- messages popped and never recorded (deploykit.delivery.lost) are requeued once absent for a lease TTL.

A live worker -- draining on a warm shutdown, busy, holding ETA or rate-limited tasks -- keeps its lease,
so nothing it holds is touched however long it takes. Cost of a round with nothing to do: one HGETALL of
the owners, one EXISTS per live owner, the journal check of deploykit.delivery.lost.
"""

from __future__ import annotations

import json
import logging
import time

from kombu.utils.json import dumps

from . import lease, lost
from .redis_transport import OWNERS_KEY, PUSH_FUNCTION, QUEUES_KEY, SEQ_KEY, entries_key, mark_redelivered, order_key

logger = logging.getLogger("deploykit.unacked")

# The time of the last round, for operators and tests ("has a round run since ...").
LAST_ROUND_KEY = "deploykit.recovery_last_round"

# KEYS: unacked hash, unacked index, owners hash, owner's lease, target list, journal hash, order zset,
#       counter, queue set. ARGV: old tag, owner, new tag, new payload, queue, journal ('1' or '0').
RECOVER_LUA = PUSH_FUNCTION + """
if redis.call('EXISTS', KEYS[4]) == 1 or redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2]
   or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[6] == '1' then
  push(KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], ARGV[3], ARGV[4], 'pop_end', ARGV[5])
else
  redis.call('RPUSH', KEYS[5], ARGV[4])
end
return 1
"""


def recover(channel, client, now: float | None = None) -> dict:
    """One round (the caller holds kombu's unacked mutex); returns what it found and did."""
    now = time.time() if now is None else now
    owners = {tag.decode(): owner.decode() for tag, owner in client.hgetall(OWNERS_KEY).items()}
    distinct = sorted(set(owners.values()))
    pipe = client.pipeline(transaction=False)
    for owner in distinct:
        pipe.exists(lease.key(owner))
    dead = {owner for owner, alive in zip(distinct, pipe.execute()) if not alive}
    orphans = [tag for tag, owner in owners.items() if owner in dead]
    summary = {"owned": len(owners), "dead_owners": len(dead), "restored": 0, "expired": 0}
    if orphans:
        summary["restored"] = _restore_orphans(channel, client, orphans, owners)
    # No owner: kombu's own rule (visibility timeout).
    stale = [tag.decode() for tag in
             client.zrange(channel.unacked_index_key, 0, now - channel.visibility_timeout, byscore=True)]
    for tag in stale:
        if tag not in owners:
            channel.qos.restore_by_tag(tag, client)
            summary["expired"] += 1
    if lost.journals(channel):
        summary.update(lost.recover(channel, client, now))
    client.set(LAST_ROUND_KEY, f"{now:.3f}")
    return summary


def _restore_orphans(channel, client, tags: list[str], owners: dict[str, str]) -> int:
    script = client.register_script(RECOVER_LUA)
    restored = []
    for tag in tags:
        raw = client.hget(channel.unacked_key, tag)
        if raw is None:
            continue  # acked meanwhile
        payload, exchange, routing_key = json.loads(raw)
        queues = channel._lookup(exchange, routing_key)
        if len(queues) != 1:  # not a Celery task message: kombu's own restore, all or nothing
            channel.qos.restore_by_tag(tag, client)
            continue
        queue = queues[0]
        mark_redelivered(payload)
        journal = "1" if channel._journals(queue, payload) else "0"
        target = channel._q_for_pri(queue, channel._get_message_priority(payload, reverse=False))
        keys = [channel.unacked_key, channel.unacked_index_key, OWNERS_KEY, lease.key(owners[tag]), target,
                entries_key(queue), order_key(queue), SEQ_KEY, QUEUES_KEY]
        args = [tag, owners[tag], payload["properties"]["delivery_tag"], dumps(payload), queue, journal]
        if script(keys, args, client=client):
            restored.append(payload.get("headers", {}).get("id", tag))
    if restored:
        logger.warning("requeued %d task message(s) whose worker's lease expired (it died or lost the broker "
                       "for a whole DEPLOYKIT_LEASE_TTL): %s", len(restored), ", ".join(map(str, restored[:20])))
    return len(restored)


def restore_orphans(app) -> dict:
    """Run one round now, outside a worker (tests, a management shell): under the same mutex."""
    from kombu.transport.redis import Mutex, MutexHeld

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        if not getattr(channel, "ack_emulation", False):
            return {"skipped": f"{conn.transport_cls} acknowledges in the broker"}
        client = channel.client
        try:
            with Mutex(client, channel.unacked_mutex_key, channel.unacked_mutex_expire):
                return recover(channel, client)
        except MutexHeld:
            return {"skipped": "another round is running"}
