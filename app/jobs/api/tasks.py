"""The demo-task resource: start a task (/api/tasks/) and read its state and result from Celery."""

from __future__ import annotations

from numbers import Number

from celery.result import AsyncResult
from django.db import transaction
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from deploykit.ops.throttle import CreateRateThrottle

from ..models import TaskRecord
from ..tasks import DEMO_TASKS
from .errors import BAD_JSON_BODY, ERROR_SCHEMA, RETRY_AFTER, THROTTLED, get_or_404
from .handoff import CREATED_SCHEMA, publish_on_commit
from .parsers import StrictJSONParser


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


class TaskCreateSerializer(serializers.Serializer):
    task = serializers.ChoiceField(choices=sorted(DEMO_TASKS), help_text="add | multiply | sleep | noop")
    args = serializers.ListField(child=serializers.JSONField(), required=False, default=list,
                                 help_text="add/multiply: two integers; sleep: seconds (0 < s <= 120); noop: none")

    def validate(self, attrs):
        task, args = attrs["task"], attrs["args"]
        if task in ("add", "multiply"):
            if len(args) != 2 or not all(_is_int(a) for a in args):
                raise serializers.ValidationError({"args": [f"{task} takes exactly two integers, e.g. [2, 3]."]})
            if not all(abs(a) < 2**63 for a in args):
                raise serializers.ValidationError({"args": ["integers must fit in 64 bits."]})
        elif task == "sleep":
            if len(args) != 1 or not _is_number(args[0]):
                raise serializers.ValidationError({"args": ["sleep takes one number of seconds, e.g. [5]."]})
            if not 0 < args[0] <= 120:
                raise serializers.ValidationError({"args": ["sleep seconds must be > 0 and <= 120."]})
        elif task == "noop" and args:
            raise serializers.ValidationError({"args": ["noop takes no arguments."]})
        return attrs


class TaskView(APIView):
    parser_classes = [StrictJSONParser]
    throttle_classes = [CreateRateThrottle]

    @extend_schema(
        request=TaskCreateSerializer,
        responses={202: CREATED_SCHEMA, **BAD_JSON_BODY, **THROTTLED},
        parameters=[RETRY_AFTER],
        examples=[OpenApiExample("add", value={"task": "add", "args": [2, 3]}, request_only=True)],
        summary="Start a demo task",
    )
    def post(self, request):
        serializer = TaskCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task_name, args = serializer.validated_data["task"], serializer.validated_data["args"]
        with transaction.atomic():
            record = TaskRecord.objects.create(task=task_name, args=args)
            # TaskRecord has no status of its own (the state is Celery's): a record that never reached the
            # broker is deleted, so its id can never show PENDING forever.
            publish_on_commit(lambda: DEMO_TASKS[task_name].apply_async(args=args, task_id=str(record.id)),
                              lambda: TaskRecord.objects.filter(id=record.id).delete())
        return Response({"id": str(record.id), "url": f"/api/tasks/{record.id}/"}, status=202)


class TaskDetailView(APIView):
    @extend_schema(
        responses={
            200: inline_serializer("TaskState", {
                "id": serializers.UUIDField(), "task": serializers.CharField(),
                "state": serializers.CharField(), "result": serializers.JSONField(),
                "error": serializers.CharField(allow_null=True)}),
            404: ERROR_SCHEMA,
        },
        summary="Read a demo task's state and result",
    )
    def get(self, request, task_id):
        record = get_or_404(TaskRecord, task_id, "task")
        result = AsyncResult(str(record.id))
        state = result.state
        body = {"id": str(record.id), "task": record.task, "state": state, "result": None, "error": None}
        if state == "SUCCESS":
            body["result"] = result.result
        elif state in ("FAILURE", "REVOKED"):
            exc = result.result
            body["error"] = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
        return Response(body)
