"""Include at the root of ROOT_URLCONF: path("", include("deploykit.urls"))."""

from django.urls import path

from .ops import probes

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("status", probes.status, name="status"),
    # prometheus_client's default registry (deploykit's gauges included) for a project without its own
    # /metrics; a project's URLconf that serves /metrics (django-prometheus) is resolved first.
    path("metrics", probes.metrics, name="metrics"),
]
