"""Include at the root of ROOT_URLCONF: path("", include("deploykit.urls"))."""

from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("status", views.status, name="status"),
]
