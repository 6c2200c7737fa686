"""The API's error model: every bad request gets a 4xx with a readable `error` message, an outage a 503.

Error body: {"error": "<one readable sentence>", "details": {<field>: [<messages>]}}  (details optional)
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers, status

from deploykit.ops.outages import RETRY_AFTER_SECONDS, outage_message, outage_of

logger = logging.getLogger("jobs.api")  # the logger name docs/api.md gives


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Upload too large."
    default_code = "too_large"


class ServiceUnavailable(exceptions.APIException):
    """A backing service is down: 503 + Retry-After (added by exception_handler)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is temporarily unavailable; retry later."
    default_code = "service_unavailable"


class NotReady(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not ready yet."
    default_code = "not_ready"


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _flatten(value)
            parts.append(text if field in ("non_field_errors", "detail") else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc, context):
    """DRF errors as {"error": "...", "details": {...}}; an outage of the database, broker or result
    store is a 503 with Retry-After (details logged, never shown); other unexpected errors stay 500s."""
    service = None if isinstance(exc, exceptions.APIException) else outage_of(exc)
    if service is not None:
        logger.warning("%s unavailable during %s", service, context["request"].path, exc_info=exc)
        exc = ServiceUnavailable(outage_message(service))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, RequestDataTooBig):  # Django's own limit (a form body): a JSON 413, not its HTML 400
        exc = PayloadTooLarge(f"Request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = exceptions.ParseError(str(exc))
    # Imported here: rest_framework.views loads DEFAULT_PARSER_CLASSES (parsers.py, which imports this module).
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    body = {"error": _flatten(data)}
    if isinstance(data, dict) and set(data) != {"detail"}:
        body["details"] = data
    response.data = body
    if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def api_not_found(request, exception=None):
    """handler404 for /api/ paths (JSON); other paths get Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"Not found: {request.path}"}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def get_or_404(model, raw_id: str, what: str):
    """The `model` row with id `raw_id`, or a 404 naming `what` (also when the id is not a UUID)."""
    try:
        key = uuid.UUID(str(raw_id))
    except ValueError:
        raise exceptions.NotFound(f"No {what} with id {raw_id!r} (ids are UUIDs).") from None
    try:
        return model.objects.get(id=key)
    except model.DoesNotExist:
        raise exceptions.NotFound(f"No {what} with id {raw_id}.") from None


ERROR_SCHEMA = inline_serializer("Error", {"error": serializers.CharField(), "details": serializers.DictField(required=False)})
# Every endpoint that reads a JSON body (parsers.py): malformed 400, too large 413, not UTF-8 JSON 415.
BAD_JSON_BODY = {400: ERROR_SCHEMA, 413: ERROR_SCHEMA, 415: ERROR_SCHEMA}
# Every endpoint that creates background work is rate-limited per client (deploykit/ops/throttle.py).
THROTTLED = {429: OpenApiResponse(ERROR_SCHEMA, description="Too many requests from this client; retry after "
                                                            "Retry-After seconds.")}
RETRY_AFTER = OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, required=True, response=[429],
                               description="Seconds until the client's limit allows a new request.")
