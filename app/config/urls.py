from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("", include("deploykit.urls")),  # /healthz /readyz /status
    path("", include("django_prometheus.urls")),  # /metrics
    path(settings.ADMIN_URL, admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("jobs.urls")),
]

handler404 = "jobs.api.api_not_found"
