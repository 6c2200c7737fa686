"""A project URLconf that does not include deploykit.urls (test_app_probes)."""

urlpatterns = []
