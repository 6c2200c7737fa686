"""The web-to-worker hand-off: a start endpoint publishes its task once its row is committed, and marks
the row failed (503 to the client) when the broker is down."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from deploykit.ops.outages import outage_message, outage_of

from .errors import ServiceUnavailable

NOT_QUEUED = "broker unavailable: not queued; submit again"
# The 202 body of every start endpoint: where to poll.
CREATED_SCHEMA = inline_serializer("Accepted", {"id": serializers.UUIDField(), "url": serializers.CharField()})


def publish_on_commit(send, mark_failed) -> None:
    """Publish `send()` once the transaction commits (the worker must find the committed row).

    If the broker is down the row is already committed: `mark_failed()` records that it was never
    queued (so nothing waits "pending" forever) and the client gets a 503 to retry (docs/api.md).
    """

    def publish():
        try:
            send()
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            mark_failed()
            raise ServiceUnavailable(
                f"{outage_message('task broker')} Nothing was queued; send the request again."
            ) from exc

    transaction.on_commit(publish)
