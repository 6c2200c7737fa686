"""Downloads of stored files (images, reports), alike for filesystem and object storage."""

from __future__ import annotations

from django.core.files.storage import FileSystemStorage, default_storage
from django.http import FileResponse, HttpResponseRedirect

from deploykit.ops.storage import content_disposition, safe_content_type


def serve_file(name: str, filename: str):
    """Stream from filesystem storage; redirect to a short-lived presigned URL for object storage.

    Both ways with the safe headers of deploykit.ops.storage (allowlisted Content-Type from the stored
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
