"""RabbitMQ queue declarations: quorum queues by default (docs/reliability.md#rabbitmq-quorum-queues).

config/settings.py applies `queue_declarations()` to CELERY_TASK_QUEUES on an amqp:// broker. A quorum
queue (x-queue-type quorum) makes Celery use per-consumer QoS and native delayed delivery for countdown/ETA
tasks; native delayed delivery routes through topic exchanges only (a direct exchange would leave the
countdown to the worker, holding a prefetch slot until it is due), so the queues' exchanges are topic
exchanges with the queue name as binding key: a task routed to a queue still reaches only that queue.
"""

from __future__ import annotations

QUEUE_TYPES = ("quorum", "classic")
# RabbitMQ 4.0+ drops a message returned to a quorum queue more often than this, unless a policy or an
# x-delivery-limit argument says otherwise (rabbitmq-server#11937). RabbitMQ 3.x: no limit by default.
DEFAULT_DELIVERY_LIMIT = 20


def is_amqp_url(url: str | None) -> bool:
    return bool(url) and url.startswith(("amqp://", "amqps://"))


def queue_declarations(queues: dict[str, dict], queue_type: str) -> dict[str, dict]:
    """CELERY_TASK_QUEUES for the given RabbitMQ queue type ("classic": unchanged)."""
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue type must be one of {QUEUE_TYPES}, not {queue_type!r}")
    if queue_type == "classic":
        return dict(queues)
    return {name: {**queue, "exchange_type": "topic", "queue_arguments": {"x-queue-type": "quorum"}}
            for name, queue in queues.items()}
