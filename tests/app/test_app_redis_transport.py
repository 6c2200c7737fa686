"""deploykit.delivery.redis_transport against a real redis-server: kombu's commands share one redis.Redis per
channel and pool (the journal itself is proven in test_app_unacked.py and by tests/chaos)."""

import kombu
import pytest

pytestmark = pytest.mark.integration


def test_one_client_per_channel_and_pool_serves_publish_receipt_and_ack(redis_server):
    queue = kombu.Queue("transport-test", kombu.Exchange("transport-test"), "transport-test")
    with kombu.Connection(redis_server.url, transport="deploykit.delivery.redis_transport:Transport") as conn:
        channel = conn.default_channel
        built = []  # the synchronous clients the channel builds (the BRPOP client is asynchronous)
        create = channel._create_client

        def counting_create(asynchronous=False):
            client = create(asynchronous=asynchronous)
            if not asynchronous:
                built.append(client)
            return client

        channel._create_client = counting_create
        producer = kombu.Producer(channel)
        received = []

        def on_message(body, message):
            received.append(body["n"])
            message.ack()

        def send_and_receive(numbers):
            for n in numbers:
                producer.publish({"n": n}, exchange=queue.exchange, routing_key=queue.routing_key,
                                 declare=[queue])
            with kombu.Consumer(channel, [queue], callbacks=[on_message]):
                while len(received) < numbers[-1] + 1:
                    conn.drain_events(timeout=10)

        send_and_receive(range(5))
        assert received == list(range(5))
        assert len(built) == 1, f"{len(built)} clients for 5 publishes, receipts and acks"

        pool = channel.pool
        channel._disconnect_pools()  # what a closing channel does: the next command needs a new pool
        send_and_receive(range(5, 8))
        assert received == list(range(8))
        assert channel.pool is not pool
        assert len(built) == 2 and built[1].connection_pool is channel.pool
        assert not channel.client.llen("transport-test"), "every message was acked"
