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
- restore (`_do_restore_message`: shutdown, reject(requeue), visibility timeout, deploykit.unacked):
  re-journals the re-dumped payload (kombu sets the redelivered flags, so the bytes change) at its new
  position, in the same transaction that takes it out of `unacked`.
- purge / delete of a queue drop its journal.

So the journal holds what is queued, what is between BRPOP and append right now, and what was lost.
Because a list is sorted by position, an entry whose position is below that of the message at the pop
end of every list of its queue (LINDEX -1), or whose lists are empty, is provably in none of them: no
LPOS scan, and a backlog of any length costs one LINDEX per list. deploykit.lost requeues such entries
when they are absent in two rounds in a row and not in `unacked` (see there).

Cost: a publish is one EVALSHA instead of one LPUSH (same round trip; 5 commands in Redis); a receipt
adds HDEL + ZREM to its existing MULTI. Memory: one more copy of each queued task message.
Not journaled: messages that are not Celery tasks (pidbox replies, events: headers without `id` and
`task`), queues with an expiry (their lists vanish by themselves), and channels with kombu's
`global_keyprefix` (its key prefixing does not cover scripts).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from time import time

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps
from kombu.utils.objects import cached_property

from .env import is_redis_url

logger = logging.getLogger("deploykit.redis_transport")

TRANSPORT = "deploykit.redis_transport:Transport"
SEQ_KEY = "deploykit.journal_seq"
QUEUES_KEY = "deploykit.journal_queues"

# One script, so taking a position and pushing are atomic: two publishers cannot push in the opposite
# order of their positions (deploykit.lost relies on every list being sorted by position).
# KEYS: list, journal hash, order zset, counter, queue set. ARGV: tag, payload, side, queue.
PUSH_LUA = """
local n = redis.call('INCR', KEYS[4])
if ARGV[3] == 'pop_end' then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  n = -n
else
  redis.call('LPUSH', KEYS[1], ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], n, ARGV[1])
redis.call('SADD', KEYS[5], ARGV[4])
return n
"""


def broker_transport(url: str | None) -> str | None:
    """The kombu transport for a broker URL: the journaling one for Redis, kombu's choice otherwise."""
    return TRANSPORT if is_redis_url(url) else None


def entries_key(queue: str) -> str:
    return f"deploykit.journal:{queue}"


def order_key(queue: str) -> str:
    return f"deploykit.journal_order:{queue}"


def is_task_message(payload: dict) -> bool:
    headers = payload.get("headers") or {}
    return "id" in headers and "task" in headers


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag):
        queue = self.channel._receiving_from
        if queue is None:  # not delivered through a journaling consumer: kombu's own bookkeeping
            return super().append(message, delivery_tag)
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:  # one MULTI: the message moves from journal to unacked
            pipe.zadd(self.unacked_index_key, {delivery_tag: time()}) \
                .hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, delivery["exchange"], delivery["routing_key"]])) \
                .hdel(entries_key(queue), delivery_tag) \
                .zrem(order_key(queue), delivery_tag) \
                .execute()
        virtual.QoS.append(self, message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS
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
        try:
            payload["headers"]["redelivered"] = True  # as kombu does
            payload["properties"]["delivery_info"]["redelivered"] = True
        except KeyError:
            pass
        try:
            for queue in self._lookup(exchange, routing_key):
                if queue in self._expires:
                    key = self._q_for_pri(queue, self._get_message_priority(payload, reverse=False))
                    (pipe.lpush if leftmost else pipe.rpush)(key, dumps(payload))
                    continue
                # kombu's `leftmost` is LPUSH: the back of the queue; otherwise the pop end.
                keys, args = self._push_args(queue, payload, pop_end=not leftmost)
                self._push_script(keys, args, client=pipe)
        except self.connection_errors:
            raise  # aborts the transaction: the message stays in `unacked`
        except Exception:
            logger.critical("Could not restore message: %r", payload, exc_info=True)

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
