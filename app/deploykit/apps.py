from django.apps import AppConfig


class DeploykitConfig(AppConfig):
    name = "deploykit"
    verbose_name = "Deployment kit"
    default_auto_field = "django.db.models.BigAutoField"
