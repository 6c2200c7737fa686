from django.urls import path

from . import views
from .api.images import ImageDetailView, ImageDownloadView, ImageView
from .api.reports import ReportDetailView, ReportDownloadView, ReportView
from .api.tasks import TaskDetailView, TaskView

app_name = "jobs"
urlpatterns = [
    path("", views.index, name="index"),
    path("api/tasks/", TaskView.as_view(), name="task-create"),
    path("api/tasks/<str:task_id>/", TaskDetailView.as_view(), name="task-detail"),
    path("api/images/", ImageView.as_view(), name="image-create"),
    path("api/images/<str:image_id>/", ImageDetailView.as_view(), name="image-detail"),
    path("api/images/<str:image_id>/download", ImageDownloadView.as_view(), name="image-download"),
    path("api/reports/", ReportView.as_view(), name="report-create"),
    path("api/reports/<str:report_id>/", ReportDetailView.as_view(), name="report-detail"),
    path("api/reports/<str:report_id>/download", ReportDownloadView.as_view(), name="report-download"),
]
