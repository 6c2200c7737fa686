"""The image resource: upload (checked cheaply here, processed by the workers), poll, download."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from PIL import Image
from rest_framework import exceptions, serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from deploykit.ops.throttle import UploadRateThrottle

from ..models import Status, UploadedImage
from ..tasks import image_workflow
from .errors import ERROR_SCHEMA, RETRY_AFTER, THROTTLED, NotReady, PayloadTooLarge, get_or_404
from .files import serve_file
from .handoff import CREATED_SCHEMA, NOT_QUEUED, publish_on_commit

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
        fmt = _identify(upload)
        name = (upload.name or "upload").replace("/", "_")[-100:]
        with transaction.atomic():
            image = UploadedImage(original_name=name, format="" if fmt == "BOMB" else fmt, size=upload.size)
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
        image = get_or_404(UploadedImage, image_id, "image")
        return Response({"id": str(image.id), "status": image.status, "error": image.error or None,
                         **image_urls(image), "width": image.width, "height": image.height})


class ImageDownloadView(APIView):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiResponse(description="the file"),
                              302: OpenApiResponse(description="presigned object-storage URL"),
                              404: ERROR_SCHEMA, 409: ERROR_SCHEMA},
                   summary="Download the resized image (?variant=original or a thumbnail size)")
    def get(self, request, image_id):
        image = get_or_404(UploadedImage, image_id, "image")
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
