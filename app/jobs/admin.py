from django.contrib import admin

from .models import Report, SentEmail, TaskRecord, UploadedImage


@admin.register(UploadedImage)
class UploadedImageAdmin(admin.ModelAdmin):
    list_display = ("id", "original_name", "status", "created")
    list_filter = ("status",)
    search_fields = ("id", "original_name")
    readonly_fields = ("created", "updated")


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "rows", "created")
    list_filter = ("status", "kind")


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "args", "created")
    list_filter = ("task",)


admin.site.register(SentEmail)
