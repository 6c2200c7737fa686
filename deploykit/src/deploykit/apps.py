from django.apps import AppConfig


class DeploykitConfig(AppConfig):
    name = "deploykit"
    verbose_name = "Deployment kit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers deploykit.purge_idempotency_keys with every worker (the module defines a shared task).
        from .delivery import idempotency  # noqa: F401
        from .ops import metrics

        metrics.register()  # the collector's gauges on the project's /metrics (django-prometheus)
