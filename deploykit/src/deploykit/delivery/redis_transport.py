"""Redis broker: a publish journal, so a task message popped but never recorded as unacked is not lost.

kombu's Redis transport hands a message over in two steps: BRPOP takes it off its queue list, then
QoS.append copies it into the `unacked` hash. A message popped in the instant before Redis shuts down
or the worker's main process dies, or whose append fails because Redis went away, is in neither place
and gone for good (celery/kombu#305, celery/celery#4354; measured: 1 of 300 tasks in a Redis restart,
1 of 1,000 in a burst with killed workers). This transport (selected for redis:// brokers in
config/settings.py, `broker_transport()`) keeps, per queue, a journal of the Celery task messages
between publish and receipt:

- publish (`_put`, also inside a kombu publish batch): one Lua script pushes the payload as kombu does
  and records it: hash `deploykit.journal:<queue>` tag -> the exact payload pushed, sorted set
  `deploykit.journal_order:<queue>` tag -> its position. Positions come from one counter: a message
  pushed to the back (LPUSH) gets +n, one pushed to the pop end (RPUSH, a restore) gets -n. So every
  list, read from its pop end, is in ascending position order, and BRPOP always takes the lowest.
- receipt (QoS.append): the same MULTI that writes `unacked` removes the tag from the journal.
- restore (`_do_restore_message`: shutdown, reject(requeue), deploykit.delivery.unacked): re-journals the
  re-dumped payload under a NEW delivery tag (kombu sets the redelivered flags, so the bytes change) at
  its new position, in the same transaction that takes it out of `unacked`. A new tag, so a late ack of
  the original copy cannot delete the `unacked` entry of whoever holds the requeued one.
- purge / delete of a queue drop its journal.

So the journal holds what is queued, what is between BRPOP and append right now, and what was lost.
Because a list is sorted by position, an entry whose position is below that of the message at the pop
end of every list of its queue (LINDEX -1), or whose lists are empty, is provably in none of them: no
LPOS scan, and a backlog of any length costs one LINDEX per list. deploykit.delivery.lost requeues such entries
once they have been absent for a lease TTL (see there).

The receipt also records the message's owner (deploykit.delivery.lease) and renews that lease; the periodic
restore kombu runs in every consumer (`restore_visible`, every `unacked_restore_interval` seconds) is
replaced by deploykit.delivery.unacked's round, which requeues what a dead owner held.

Cost: a publish is one EVALSHA instead of one LPUSH (same round trip; 5 commands in Redis); a receipt
adds HDEL + ZREM + HSET (owner) + SET (lease) to its existing MULTI, an ack one HDEL to its own. Memory: one more copy of each queued task message.
Not journaled: messages that are not Celery tasks (pidbox replies, events: headers without `id` and
`task`), queues with an expiry (their lists vanish by themselves), and channels with kombu's
`global_keyprefix` (its key prefixing does not cover scripts).
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from time import time

from kombu.transport import redis as kombu_redis
from kombu.transport.redis import Mutex, MutexHeld
from kombu.transport import virtual
from kombu.utils.json import dumps
from kombu.utils.objects import cached_property

from . import lease
from ..config.env import is_redis_url

logger = logging.getLogger("deploykit.redis_transport")

# This module and deploykit.delivery.unacked/lost/request override private members of kombu's Redis transport and
# Celery's worker (QoS.append/_remove_from_indices/restore_visible, Channel._put/_do_restore_message,
# Request.on_failure): deploykit declares one minor series of both, checked at import (deploykit.versions),
# moved together after reading upstream.

TRANSPORT = "deploykit.delivery.redis_transport:Transport"
SEQ_KEY = "deploykit.journal_seq"
QUEUES_KEY = "deploykit.journal_queues"

# One script, so taking a position and pushing are atomic: two publishers cannot push in the opposite
# order of their positions (deploykit.delivery.lost relies on every list being sorted by position). The function
# also serves deploykit.delivery.unacked's and deploykit.delivery.lost's requeue scripts.
PUSH_FUNCTION = """
local function push(list, journal, order, seq, queues, tag, payload, side, queue)
  local n = redis.call('INCR', seq)
  if side == 'pop_end' then
    redis.call('RPUSH', list, payload)
    n = -n
  else
    redis.call('LPUSH', list, payload)
  end
  redis.call('HSET', journal, tag, payload)
  redis.call('ZADD', order, n, tag)
  redis.call('SADD', queues, queue)
  return n
end
"""
# KEYS: list, journal hash, order zset, counter, queue set. ARGV: tag, payload, side, queue.
PUSH_LUA = PUSH_FUNCTION + "return push(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"
# The hash of unacked tags -> owner (deploykit.delivery.lease) of the worker process that received them.
OWNERS_KEY = "deploykit.unacked_owner"


def broker_transport(url: str | None) -> str | None:
    """The kombu transport for a broker URL: the journaling one for Redis, kombu's choice otherwise."""
    return TRANSPORT if is_redis_url(url) else None


def entries_key(queue: str) -> str:
    return f"deploykit.journal:{queue}"


def order_key(queue: str) -> str:
    return f"deploykit.journal_order:{queue}"


def mark_redelivered(payload: dict) -> dict:
    """A requeued copy: the redelivered flags kombu sets, and a new delivery tag (see the module doc)."""
    payload.setdefault("headers", {})["redelivered"] = True
    properties = payload.setdefault("properties", {})
    properties.setdefault("delivery_info", {})["redelivered"] = True
    properties["delivery_tag"] = str(uuid.uuid4())
    return payload


def is_task_message(payload: dict) -> bool:
    headers = payload.get("headers") or {}
    return "id" in headers and "task" in headers


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):
        queue = self.channel._receiving_from
        owner = lease.current_owner()
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:  # one MULTI: the message moves from journal to unacked
            pipe.zadd(self.unacked_index_key, {delivery_tag: time()}) \
                .hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, delivery["exchange"], delivery["routing_key"]]))
            if owner is not None:  # renewed with each receipt: an owned message never has an expired owner
                pipe.hset(OWNERS_KEY, delivery_tag, owner).set(lease.key(owner), os.getpid(), ex=self.channel.lease_ttl)
            if queue is not None:  # delivered through a journaling consumer
                pipe.hdel(entries_key(queue), delivery_tag).zrem(order_key(queue), delivery_tag)
            pipe.execute()
        virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag, pipe=None):
        return super()._remove_from_indices(delivery_tag, pipe).hdel(OWNERS_KEY, delivery_tag)

    def restore_visible(self, start=0, num=10, interval=10):
        """kombu calls this in every consumer's event loop (`unacked_restore_interval`); instead of
        requeueing what is older than the visibility timeout, requeue what a dead owner held."""
        from . import unacked

        self._vrestore_count += 1
        if (self._vrestore_count - 1) % (interval or 1):
            return
        with self.channel.conn_or_acquire() as client:
            try:
                with Mutex(client, self.unacked_mutex_key, self.unacked_mutex_expire):
                    unacked.recover(self.channel, client)
            except MutexHeld:
                pass


class Channel(kombu_redis.Channel):
    QoS = QoS
    # Transport options of our own (settings.CELERY_BROKER_TRANSPORT_OPTIONS).
    from_transport_options = kombu_redis.Channel.from_transport_options + ("lease_ttl", "lost_after")
    lease_ttl = lease.DEFAULT_TTL
    lost_after = lease.DEFAULT_TTL
    # The queue whose message is being delivered right now (set around the consumer callback).
    _receiving_from: str | None = None
    _shared_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        """kombu builds a new redis.Redis for every command it sends without a client: each publish,
        receipt, ack and task event. Building one costs ~180 µs of Python (it copies its table of
        response callbacks), several per task in the worker's main process. A redis.Redis holds no
        connection (its pool does) and is safe to share between threads, so one per channel and pool
        serves them all; a new pool (after a reconnect) gets a new one."""
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()
        yield shared

    def _journals(self, queue: str, message: dict) -> bool:
        return not self.global_keyprefix and queue not in self._expires and is_task_message(message)

    @cached_property
    def _push_script(self):
        return self.client.register_script(PUSH_LUA)

    def _push_args(self, queue: str, message: dict, pop_end: bool) -> tuple[list, list]:
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        keys = [key, entries_key(queue), order_key(queue), SEQ_KEY, QUEUES_KEY]
        return keys, [message["properties"]["delivery_tag"], dumps(message),
                      "pop_end" if pop_end else "back", queue]

    def _put(self, queue, message, **kwargs):
        if not self._journals(queue, message):
            return super()._put(queue, message, **kwargs)
        keys, args = self._push_args(queue, message, pop_end=False)
        batch = kwargs.pop("_publish_batch", None)
        if batch is not None:
            # The batch's pipeline loads the script (SCRIPT EXISTS/LOAD) before it runs its commands.
            batch.pipeline.scripts.add(self._push_script)
            batch.add("evalsha", self._push_script.sha, len(keys), *keys, *args)
            return
        with self.conn_or_acquire() as client:
            self._push_script(keys, args, client=client)

    def _do_restore_message(self, payload, exchange, routing_key, pipe, leftmost=False):
        if self.global_keyprefix or not is_task_message(payload):
            return super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)
        mark_redelivered(payload)
        try:
            for queue in self._lookup(exchange, routing_key):
                if queue in self._expires:
                    key = self._q_for_pri(queue, self._get_message_priority(payload, reverse=False))
                    (pipe.lpush if leftmost else pipe.rpush)(key, dumps(payload))
                    continue
                # kombu's `leftmost` is LPUSH: the back of the queue; otherwise the pop end.
                keys, args = self._push_args(queue, payload, pop_end=not leftmost)
                self._push_script(keys, args, client=pipe)
        except Exception:
            # Aborts the transaction, so the message stays in `unacked` (kombu logs and carries on, and
            # its MULTI then deletes a message it never pushed back).
            logger.critical("Could not restore message: %r", payload, exc_info=True)
            raise

    def basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs):
        result = super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)
        deliver = self.connection._callbacks[queue]

        def journaled_delivery(raw_message):
            self._receiving_from = queue
            try:
                if no_ack and is_task_message(raw_message):  # no receipt will come: consumed now
                    self._forget(queue, raw_message["properties"]["delivery_tag"])
                return deliver(raw_message)
            finally:
                self._receiving_from = None

        self.connection._callbacks[queue] = journaled_delivery
        return result

    def basic_get(self, queue, no_ack=False, **kwargs):
        self._receiving_from = queue
        try:
            message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        finally:
            self._receiving_from = None
        if message is not None and no_ack and is_task_message(message._raw):
            self._forget(queue, message.delivery_tag)
        return message

    def _forget(self, queue: str, tag: str) -> None:
        with self.conn_or_acquire() as client:
            client.pipeline().hdel(entries_key(queue), tag).zrem(order_key(queue), tag).execute()

    def _drop_journal(self, queue: str, client=None, deleted: bool = False) -> None:
        with self.conn_or_acquire(client) as client:
            pipe = client.pipeline().delete(entries_key(queue), order_key(queue))
            if deleted:
                pipe.srem(QUEUES_KEY, queue)
            pipe.execute()

    def _purge(self, queue):
        size = super()._purge(queue)
        self._drop_journal(queue)
        return size

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        super()._delete(queue, exchange, routing_key, pattern, *args, **kwargs)
        self._drop_journal(queue, kwargs.get("client"), deleted=True)


class Transport(kombu_redis.Transport):
    Channel = Channel
