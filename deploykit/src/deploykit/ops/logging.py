"""Logging configuration: plain text for people, one JSON object per line for log pipelines.

Celery log lines carry the task id and name (`task_id`, `task_name`) in both formats.
"""

from __future__ import annotations

import logging
from typing import Any

VALID_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class TaskContextFilter(logging.Filter):
    """Adds task_id/task_name of the Celery task running in this thread/process (or empty strings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_id = task_name = ""
        try:
            from celery import current_task

            task = current_task._get_current_object() if current_task else None
            if task is not None and task.request and task.request.id:
                task_id, task_name = task.request.id, task.name
        except Exception:  # pragma: no cover - logging must never fail
            pass
        if not getattr(record, "task_id", None):
            record.task_id = task_id
        if not getattr(record, "task_name", None):
            record.task_name = task_name
        return True


def build_logging(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    level = level if level in VALID_LEVELS else "INFO"
    formatters = {
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(task_id)s %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(task_id)s %(task_name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"task": {"()": "deploykit.ops.logging.TaskContextFilter"}},
        "formatters": formatters,
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": log_format if log_format in formatters else "text",
                "filters": ["task"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "django": {"level": level, "propagate": True},
            "celery": {"level": level, "propagate": True},
            # Access logs of the probes would drown everything else.
            "django.server": {"level": "WARNING", "propagate": True},
        },
    }
