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


def check_queue_types(sender=None, **kwargs) -> None:
    """`worker_init` handler, RabbitMQ only: declares the queues this worker consumes before it starts, and
    explains RabbitMQ's PRECONDITION_FAILED, the refusal to redeclare a queue or exchange of an earlier
    release (a classic queue on a direct exchange cannot become a quorum queue on a topic exchange). The
    worker then exits non-zero, as it would anyway, with this message before Celery's bare 406."""
    import logging

    from amqp.exceptions import PreconditionFailed
    from django.conf import settings

    app = getattr(sender, "app", None)
    if app is None or not is_amqp_url(app.conf.broker_url):
        return
    queue_type = getattr(settings, "DEPLOYKIT_RABBITMQ_QUEUE_TYPE", "quorum")
    other = "classic" if queue_type == "quorum" else "quorum"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            for queue in app.amqp.queues.consume_from.values():
                queue.bind(channel).declare()
    except PreconditionFailed as exc:
        logging.getLogger("deploykit.rabbitmq").critical(
            "RabbitMQ refused the %s queue declarations (DEPLOYKIT_RABBITMQ_QUEUE_TYPE=%s): %s. This vhost holds "
            "the queues of an earlier release: migrate them (docs/reliability.md, 'RabbitMQ: quorum queues': a new "
            "vhost, or drain and delete) or set DEPLOYKIT_RABBITMQ_QUEUE_TYPE=%s until then",
            queue_type, queue_type, getattr(exc, "reply_text", exc), other)
    except Exception:  # noqa: BLE001 - broker unreachable and the like: Celery's own start-up handles it
        return


def install(app) -> None:
    from celery import signals

    signals.worker_init.connect(check_queue_types, weak=False)
