from django.contrib import admin

from .models import TaskDelivery


@admin.register(TaskDelivery)
class TaskDeliveryAdmin(admin.ModelAdmin):
    list_display = ("key", "task_name", "count", "updated")
    search_fields = ("key", "task_name")
