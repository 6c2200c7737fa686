from django.conf import settings
from django.contrib import admin
from django.urls import include, path


def schema_view(request, *args, **kwargs):
    """The OpenAPI schema; drf-spectacular's generator is imported on first use, not by every process."""
    from drf_spectacular.views import SpectacularAPIView

    return SpectacularAPIView.as_view()(request, *args, **kwargs)


urlpatterns = [
    path("", include("deploykit.urls")),  # /healthz /readyz /status
    path("", include("django_prometheus.urls")),  # /metrics
    path(settings.ADMIN_URL, admin.site.urls),
    path("api/schema/", schema_view, name="schema"),
    path("", include("jobs.urls")),
]

handler404 = "jobs.api.errors.api_not_found"
