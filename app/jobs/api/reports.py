"""The report resource: request a CSV report (built by a worker), poll it, download it."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from deploykit.ops.throttle import CreateRateThrottle

from ..models import Report, Status
from ..tasks import generate_report
from .errors import BAD_JSON_BODY, ERROR_SCHEMA, RETRY_AFTER, THROTTLED, NotReady, get_or_404
from .files import serve_file
from .handoff import CREATED_SCHEMA, NOT_QUEUED, publish_on_commit
from .parsers import StrictJSONParser


class ReportCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=settings.REPORT_KINDS, help_text=(
        "tasks: CSV day,task,tasks (tasks started per day and task name); images: CSV "
        "day,format,status,images,bytes (uploads and their bytes per day, format and status). Aggregates of "
        "the last 31 days only: no ids, no names."))


class ReportView(APIView):
    parser_classes = [StrictJSONParser]
    throttle_classes = [CreateRateThrottle]

    @extend_schema(request=ReportCreateSerializer, responses={202: CREATED_SCHEMA, **BAD_JSON_BODY, **THROTTLED},
                   parameters=[RETRY_AFTER],
                   summary="Request a CSV report of aggregates (built in the background)")
    def post(self, request):
        serializer = ReportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            report = Report.objects.create(kind=serializer.validated_data["kind"])
            publish_on_commit(lambda: generate_report.delay(str(report.id)), lambda: Report.objects.filter(
                id=report.id).update(status=Status.FAILED, error=NOT_QUEUED))
        return Response({"id": str(report.id), "url": f"/api/reports/{report.id}/"}, status=202)


class ReportDetailView(APIView):
    @extend_schema(responses={200: inline_serializer("ReportState", {
        "id": serializers.UUIDField(), "kind": serializers.CharField(), "status": serializers.CharField(),
        "error": serializers.CharField(allow_null=True), "rows": serializers.IntegerField(allow_null=True),
        "download_url": serializers.CharField(allow_null=True)}), 404: ERROR_SCHEMA},
        summary="Poll a report")
    def get(self, request, report_id):
        report = get_or_404(Report, report_id, "report")
        done = report.status == Status.DONE
        return Response({"id": str(report.id), "kind": report.kind, "status": report.status,
                         "error": report.error or None, "rows": report.rows,
                         "download_url": f"/api/reports/{report.id}/download" if done else None})


class ReportDownloadView(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="CSV"), 404: ERROR_SCHEMA,
                              409: ERROR_SCHEMA}, summary="Download a finished report as CSV")
    def get(self, request, report_id):
        report = get_or_404(Report, report_id, "report")
        if report.status != Status.DONE:
            raise NotReady(f"Report is not ready (status: {report.status}).")
        return serve_file(report.file.name, f"{report.kind}-report-{report.id}.csv")
