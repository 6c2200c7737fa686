"""JSON API (Django REST framework). Every bad request gets a 4xx with a readable `error` message.

Error body: {"error": "<one readable sentence>", "details": {<field>: [<messages>]}}  (details optional)
"""

from __future__ import annotations

import logging
import uuid
from numbers import Number

from celery.result import AsyncResult
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from PIL import Image
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from deploykit.outages import RETRY_AFTER_SECONDS, outage_message, outage_of
from deploykit.storage import content_disposition, safe_content_type
from deploykit.throttle import CreateRateThrottle, UploadRateThrottle

from .models import Report, Status, TaskRecord, UploadedImage
from .tasks import DEMO_TASKS, generate_report, image_workflow

logger = logging.getLogger("jobs.api")

# --- errors ------------------------------------------------------------------------------------------


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


NOT_QUEUED = "broker unavailable: not queued; submit again"


def api_not_found(request, exception=None):
    """handler404 for /api/ paths (JSON); other paths get Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"Not found: {request.path}"}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def _get(model, raw_id: str, what: str):
    try:
        key = uuid.UUID(str(raw_id))
    except ValueError:
        raise exceptions.NotFound(f"No {what} with id {raw_id!r} (ids are UUIDs).") from None
    try:
        return model.objects.get(id=key)
    except model.DoesNotExist:
        raise exceptions.NotFound(f"No {what} with id {raw_id}.") from None


ERROR_SCHEMA = inline_serializer("Error", {"error": serializers.CharField(), "details": serializers.DictField(required=False)})
CREATED_SCHEMA = inline_serializer("Accepted", {"id": serializers.UUIDField(), "url": serializers.CharField()})
# Every endpoint that creates background work is rate-limited per client (deploykit/throttle.py).
THROTTLED = {429: OpenApiResponse(ERROR_SCHEMA, description="Too many requests from this client; retry after "
                                                            "Retry-After seconds.")}
RETRY_AFTER = OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, required=True, response=[429],
                               description="Seconds until the client's limit allows a new request.")


# --- demo tasks --------------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


class TaskCreateSerializer(serializers.Serializer):
    task = serializers.ChoiceField(choices=sorted(DEMO_TASKS), help_text="add | multiply | sleep | noop")
    args = serializers.ListField(child=serializers.JSONField(), required=False, default=list,
                                 help_text="add/multiply: two integers; sleep: seconds (0 < s <= 120); noop: none")

    def validate(self, attrs):
        task, args = attrs["task"], attrs["args"]
        if task in ("add", "multiply"):
            if len(args) != 2 or not all(_is_int(a) for a in args):
                raise serializers.ValidationError({"args": [f"{task} takes exactly two integers, e.g. [2, 3]."]})
            if not all(abs(a) < 2**63 for a in args):
                raise serializers.ValidationError({"args": ["integers must fit in 64 bits."]})
        elif task == "sleep":
            if len(args) != 1 or not _is_number(args[0]):
                raise serializers.ValidationError({"args": ["sleep takes one number of seconds, e.g. [5]."]})
            if not 0 < args[0] <= 120:
                raise serializers.ValidationError({"args": ["sleep seconds must be > 0 and <= 120."]})
        elif task == "noop" and args:
            raise serializers.ValidationError({"args": ["noop takes no arguments."]})
        return attrs


class TaskView(APIView):
    parser_classes = [JSONParser]
    throttle_classes = [CreateRateThrottle]

    @extend_schema(
        request=TaskCreateSerializer,
        responses={202: CREATED_SCHEMA, 400: ERROR_SCHEMA, **THROTTLED},
        parameters=[RETRY_AFTER],
        examples=[OpenApiExample("add", value={"task": "add", "args": [2, 3]}, request_only=True)],
        summary="Start a demo task",
    )
    def post(self, request):
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"detail": ["Expected a JSON object."]})
        serializer = TaskCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task_name, args = serializer.validated_data["task"], serializer.validated_data["args"]
        with transaction.atomic():
            record = TaskRecord.objects.create(task=task_name, args=args)
            # TaskRecord has no status of its own (the state is Celery's): a record that never reached the
            # broker is deleted, so its id can never show PENDING forever.
            publish_on_commit(lambda: DEMO_TASKS[task_name].apply_async(args=args, task_id=str(record.id)),
                              lambda: TaskRecord.objects.filter(id=record.id).delete())
        return Response({"id": str(record.id), "url": f"/api/tasks/{record.id}/"}, status=202)


class TaskDetailView(APIView):
    @extend_schema(
        responses={
            200: inline_serializer("TaskState", {
                "id": serializers.UUIDField(), "task": serializers.CharField(),
                "state": serializers.CharField(), "result": serializers.JSONField(),
                "error": serializers.CharField(allow_null=True)}),
            404: ERROR_SCHEMA,
        },
        summary="Read a demo task's state and result",
    )
    def get(self, request, task_id):
        record = _get(TaskRecord, task_id, "task")
        result = AsyncResult(str(record.id))
        state = result.state
        body = {"id": str(record.id), "task": record.task, "state": state, "result": None, "error": None}
        if state == "SUCCESS":
            body["result"] = result.result
        elif state in ("FAILURE", "REVOKED"):
            exc = result.result
            body["error"] = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
        return Response(body)


# --- images ------------------------------------------------------------------------------------------

ACCEPTED_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"}


def _identify(upload) -> str:
    """Cheap header check in the web tier: is it an image at all? Full decoding (pixel limit, corrupt
    data) happens in the worker, and ends as status=failed with the reason."""
    upload.seek(0)
    try:
        with Image.open(upload) as picture:
            fmt = picture.format
    except Image.DecompressionBombError:
        fmt = "BOMB"  # identified as an image; the worker rejects it with the pixel-limit message
    except Exception:
        raise exceptions.ValidationError({"file": ["Not an image: the file format cannot be identified."]}) from None
    finally:
        upload.seek(0)
    if fmt != "BOMB" and fmt not in ACCEPTED_FORMATS:
        raise exceptions.ValidationError(
            {"file": [f"Unsupported image format {fmt}; accepted: {', '.join(sorted(ACCEPTED_FORMATS))}."]}
        )
    return fmt


def _too_large_message() -> str:
    return f"Upload too large: the limit is {settings.UPLOAD_MAX_BYTES} bytes (UPLOAD_MAX_BYTES)."


def image_urls(image: UploadedImage) -> dict:
    base = f"/api/images/{image.id}/download"
    return {
        "original_url": f"{base}?variant=original" if image.original else None,
        "resized_url": base if image.resized and image.status == Status.DONE else None,
        "thumbnails": {size: f"{base}?variant={size}" for size in sorted(image.thumbnails, key=int)},
    }


class ImageView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [UploadRateThrottle]

    @extend_schema(
        request={"multipart/form-data": inline_serializer("ImageUpload", {"file": serializers.FileField()})},
        responses={202: CREATED_SCHEMA, 400: ERROR_SCHEMA, 413: ERROR_SCHEMA, **THROTTLED},
        parameters=[RETRY_AFTER],
        summary="Upload an image to resize (thumbnails are made in parallel)",
    )
    def post(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        # Refuse before reading the body when the declared size already exceeds the limit (+ form overhead).
        if length > settings.UPLOAD_MAX_BYTES + 64 * 1024:
            raise PayloadTooLarge(_too_large_message())
        upload = request.FILES.get("file")
        if upload is None:
            raise exceptions.ValidationError({"file": ["Missing multipart field 'file'."]})
        if upload.size > settings.UPLOAD_MAX_BYTES:
            raise PayloadTooLarge(_too_large_message())
        if upload.size == 0:
            raise exceptions.ValidationError({"file": ["The file is empty."]})
        _identify(upload)
        name = (upload.name or "upload").replace("/", "_")[-100:]
        with transaction.atomic():
            image = UploadedImage(original_name=name)
            image.original.save(name, upload, save=False)
            image.save()
            publish_on_commit(image_workflow(image.id).apply_async, lambda: UploadedImage.objects.filter(
                id=image.id).update(status=Status.FAILED, error=NOT_QUEUED))
        return Response({"id": str(image.id), "url": f"/api/images/{image.id}/"}, status=202)


class ImageDetailView(APIView):
    @extend_schema(
        responses={200: inline_serializer("ImageState", {
            "id": serializers.UUIDField(), "status": serializers.CharField(),
            "error": serializers.CharField(allow_null=True), "original_url": serializers.CharField(),
            "resized_url": serializers.CharField(allow_null=True), "thumbnails": serializers.DictField()}),
            404: ERROR_SCHEMA},
        summary="Poll an image's processing status",
    )
    def get(self, request, image_id):
        image = _get(UploadedImage, image_id, "image")
        return Response({"id": str(image.id), "status": image.status, "error": image.error or None,
                         **image_urls(image), "width": image.width, "height": image.height})


def serve_file(name: str, filename: str):
    """Stream from filesystem storage; redirect to a short-lived presigned URL for object storage.

    Both ways with the safe headers of deploykit.storage (allowlisted Content-Type from the stored
    name, never the uploader's claim; inline only for raster images), so the two modes behave alike.
    """
    content_type = safe_content_type(name)
    disposition = content_disposition(name, filename)
    if isinstance(default_storage, FileSystemStorage):
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
        response["Content-Disposition"] = disposition
        return response
    return HttpResponseRedirect(default_storage.url(
        name, parameters={"ResponseContentType": content_type, "ResponseContentDisposition": disposition}))


class ImageDownloadView(APIView):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiResponse(description="the file"),
                              302: OpenApiResponse(description="presigned object-storage URL"),
                              404: ERROR_SCHEMA, 409: ERROR_SCHEMA},
                   summary="Download the resized image (?variant=original or a thumbnail size)")
    def get(self, request, image_id):
        image = _get(UploadedImage, image_id, "image")
        variant = request.query_params.get("variant", "resized")
        if variant == "original":
            return serve_file(image.original.name, image.original_name or "original")
        if variant == "resized":
            if image.status != Status.DONE:
                raise NotReady(f"Image is not processed (status: {image.status}).")
            return serve_file(image.resized.name, f"{image.id}.jpg")
        if variant in image.thumbnails:
            return serve_file(image.thumbnails[variant], f"{image.id}-{variant}.jpg")
        valid = ["original", "resized", *sorted(image.thumbnails, key=int)]
        raise exceptions.ValidationError({"variant": [f"Unknown variant {variant!r}; one of: {', '.join(valid)}."]})


# --- reports -----------------------------------------------------------------------------------------


class ReportCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=settings.REPORT_KINDS, help_text="tasks | images")


class ReportView(APIView):
    parser_classes = [JSONParser]
    throttle_classes = [CreateRateThrottle]

    @extend_schema(request=ReportCreateSerializer, responses={202: CREATED_SCHEMA, 400: ERROR_SCHEMA, **THROTTLED},
                   parameters=[RETRY_AFTER],
                   summary="Request a CSV report (built in the background)")
    def post(self, request):
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"detail": ["Expected a JSON object."]})
        serializer = ReportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            report = Report.objects.create(kind=serializer.validated_data["kind"])
            publish_on_commit(lambda: generate_report.delay(str(report.id)), lambda: Report.objects.filter(
                id=report.id).update(status=Status.FAILED, error=NOT_QUEUED))
        return Response({"id": str(report.id), "url": f"/api/reports/{report.id}/"}, status=202)


class ReportDetailView(APIView):
    @extend_schema(responses={200: inline_serializer("ReportState", {
        "id": serializers.UUIDField(), "kind": serializers.CharField(), "status": serializers.CharField(),
        "error": serializers.CharField(allow_null=True), "rows": serializers.IntegerField(allow_null=True),
        "download_url": serializers.CharField(allow_null=True)}), 404: ERROR_SCHEMA},
        summary="Poll a report")
    def get(self, request, report_id):
        report = _get(Report, report_id, "report")
        done = report.status == Status.DONE
        return Response({"id": str(report.id), "kind": report.kind, "status": report.status,
                         "error": report.error or None, "rows": report.rows,
                         "download_url": f"/api/reports/{report.id}/download" if done else None})


class ReportDownloadView(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="CSV"), 404: ERROR_SCHEMA,
                              409: ERROR_SCHEMA}, summary="Download a finished report as CSV")
    def get(self, request, report_id):
        report = _get(Report, report_id, "report")
        if report.status != Status.DONE:
            raise NotReady(f"Report is not ready (status: {report.status}).")
        return serve_file(report.file.name, f"{report.kind}-report-{report.id}.csv")
