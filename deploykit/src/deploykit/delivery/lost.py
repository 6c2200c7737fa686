"""Redis broker: find the task messages the publish journal holds but no list or worker does, and requeue them.

The journal (deploykit/delivery/redis_transport.py) keeps each task message from publish to receipt, with its
position in its queue. An entry is *absent* when its position is below that of the message at the pop
end of every list of its queue (or they are empty) -- so it is in no list, since a list is sorted by
position -- and it is not in `unacked`. That is the state of a message popped and then lost (Redis
stopped, the worker's main process died, or its append failed), and, for a few microseconds, of every
message between BRPOP and its receipt. So deploykit.delivery.unacked's round requeues an entry only once it has
been absent for DEPLOYKIT_LEASE_TTL seconds (the time since it was first seen absent is kept, so rounds
that come late or back to back change nothing). The requeue is one Lua script that checks again,
atomically, that the entry is still absent, and pushes the journaled payload back to the pop end of its
list under a new delivery tag (it never ran: the task id and redelivery count are kept; the new tag
keeps a late ack of a copy that did reach a worker from deleting the requeued one's receipt).

Finding them costs one SMEMBERS per round and, per queue, one LINDEX per priority list plus a ZSCORE,
and a ZRANGE that returns only absent entries: a backlog of any length costs nothing more. A queue whose pop end
holds a message the journal does not know (published by something else) is left for later rounds.
What it cannot tell apart: a message whose worker stalls between BRPOP and append for a whole lease TTL
(a stopped process) runs twice, and so does one consumed by a client that does not keep the journal
(a process with kombu's plain Redis transport, e.g. during the upgrade that introduces the journal).
"""

from __future__ import annotations

import json
import logging
import uuid

from kombu.utils.json import dumps

from .redis_transport import PUSH_FUNCTION, QUEUES_KEY, SEQ_KEY, Channel, entries_key, order_key

logger = logging.getLogger("deploykit.lost")

# Absent tags -> when a round first saw them absent.
SUSPECTS_KEY = "deploykit.journal_absent_since"
# Bounds one round's work per queue if something went badly wrong (e.g. a flushed list).
MAX_PER_QUEUE = 1000

# KEYS: journal hash, order zset, unacked hash, counter, target list, queue set, then every list of the
# queue. ARGV: tag, new tag, new payload, queue. Returns 1 when requeued, 0 when no longer absent.
REQUEUE_LUA = PUSH_FUNCTION + """
local pos = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not pos or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
pos = tonumber(pos)
for i = 7, #KEYS do
  local tail = redis.call('LINDEX', KEYS[i], -1)
  if tail then
    local ok, message = pcall(cjson.decode, tail)
    local tag = ok and type(message) == 'table' and type(message['properties']) == 'table'
                and message['properties']['delivery_tag']
    local tail_pos = type(tag) == 'string' and redis.call('ZSCORE', KEYS[2], tag)
    if not tail_pos or tonumber(tail_pos) <= pos then return 0 end
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
push(KEYS[5], KEYS[1], KEYS[2], KEYS[4], KEYS[6], ARGV[2], ARGV[3], 'pop_end', ARGV[4])
return 1
"""


def journals(channel) -> bool:
    """Whether the broker channel keeps the journal (a stale journal of another transport is ignored)."""
    return isinstance(channel, Channel) and not channel.global_keyprefix


def _lists(channel, queue: str) -> list[str]:
    return list(dict.fromkeys(channel._q_for_pri(queue, pri) for pri in channel.priority_steps))


def _tag(raw: bytes) -> str | None:
    try:
        return json.loads(raw)["properties"]["delivery_tag"]
    except (ValueError, LookupError, TypeError):
        return None


def _pop_end_bound(client, queue: str, lists: list[str]) -> float | None:
    """Lowest position at the pop ends of the queue's lists (inf when all are empty); None when unknown."""
    pipe = client.pipeline(transaction=False)
    for key in lists:
        pipe.lindex(key, -1)
    tails = [raw for raw in pipe.execute() if raw is not None]
    bound = float("inf")
    for raw in tails:
        tag = _tag(raw)
        position = client.zscore(order_key(queue), tag) if tag else None
        if position is None:
            return None
        bound = min(bound, position)
    return bound


def absent_messages(channel, client) -> dict[str, tuple[str, str]]:
    """Journal entries in no list and not in `unacked`: {tag: (queue, task id)}."""
    absent: dict[str, tuple[str, str]] = {}
    for queue in sorted(q.decode() for q in client.smembers(QUEUES_KEY)):
        bound = _pop_end_bound(client, queue, _lists(channel, queue))
        if bound is None:
            logger.debug("queue %s: the message at its pop end is not journaled; checked later", queue)
            continue
        high = "+inf" if bound == float("inf") else f"({bound!r}"
        tags = client.zrange(order_key(queue), "-inf", high, byscore=True, offset=0, num=MAX_PER_QUEUE)
        if not tags:
            continue
        pipe = client.pipeline(transaction=False)
        for tag in tags:
            pipe.hexists(channel.unacked_key, tag).hget(entries_key(queue), tag)
        replies = pipe.execute()
        for tag, in_unacked, payload in zip(tags, replies[::2], replies[1::2]):
            task_id = _task_id(payload)
            if not in_unacked and task_id:
                absent[tag.decode()] = (queue, task_id)
    return absent


def _task_id(payload: bytes | None) -> str | None:
    try:
        return json.loads(payload)["headers"]["id"]
    except (ValueError, LookupError, TypeError):
        return None


def recover(channel, client, now: float) -> dict:
    """Requeue the entries absent for at least the channel's `lost_after` seconds."""
    absent = absent_messages(channel, client)
    since = {tag.decode(): float(at) for tag, at in client.hgetall(SUSPECTS_KEY).items()}
    pipe = client.pipeline()
    pipe.delete(SUSPECTS_KEY)
    if absent:
        pipe.hset(SUSPECTS_KEY, mapping={tag: since.get(tag, now) for tag in absent}).expire(SUSPECTS_KEY, 3600)
    pipe.execute()
    due = {tag: entry for tag, entry in absent.items() if now - since.get(tag, now) >= channel.lost_after}
    return {"absent": len(absent), "requeued": len(requeue(channel, client, due)) if due else 0}


def requeue(channel, client, lost: dict[str, tuple[str, str]]) -> list[str]:
    """Push each lost message back to the pop end of its list; returns the task ids requeued."""
    script = client.register_script(REQUEUE_LUA)
    requeued = []
    for tag, (queue, task_id) in lost.items():
        payload = client.hget(entries_key(queue), tag)
        if payload is None:
            continue
        message = json.loads(payload)
        message["properties"]["delivery_tag"] = new_tag = str(uuid.uuid4())
        target = channel._q_for_pri(queue, channel._get_message_priority(message, reverse=False))
        keys = [entries_key(queue), order_key(queue), channel.unacked_key, SEQ_KEY, target, QUEUES_KEY,
                *_lists(channel, queue)]
        if script(keys, [tag, new_tag, dumps(message), queue], client=client):
            requeued.append(task_id)
    if requeued:
        logger.warning("requeued %d task message(s) lost between the queue and the worker (popped, never "
                       "recorded as unacked: Redis stopped or the worker died): %s",
                       len(requeued), ", ".join(requeued[:20]))
    return requeued
