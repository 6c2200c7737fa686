from django.urls import path

from . import api, views

app_name = "jobs"
urlpatterns = [
    path("", views.index, name="index"),
    path("api/tasks/", api.TaskView.as_view(), name="task-create"),
    path("api/tasks/<str:task_id>/", api.TaskDetailView.as_view(), name="task-detail"),
    path("api/images/", api.ImageView.as_view(), name="image-create"),
    path("api/images/<str:image_id>/", api.ImageDetailView.as_view(), name="image-detail"),
    path("api/images/<str:image_id>/download", api.ImageDownloadView.as_view(), name="image-download"),
    path("api/reports/", api.ReportView.as_view(), name="report-create"),
    path("api/reports/<str:report_id>/", api.ReportDetailView.as_view(), name="report-detail"),
    path("api/reports/<str:report_id>/download", api.ReportDownloadView.as_view(), name="report-download"),
]
