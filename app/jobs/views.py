from django.conf import settings
from django.shortcuts import render


def index(request):
    """Upload an image and watch its status change (polls the JSON API)."""
    return render(request, "jobs/index.html", {"max_bytes": settings.UPLOAD_MAX_BYTES})
