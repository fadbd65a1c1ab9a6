"""The one place where domain exceptions become HTTP statuses and JSON bodies (contract §2)."""

from __future__ import annotations

from typing import Any

from task_scheduler.errors import (
    DependencyFailure,
    InvalidRequest,
    PayloadTooLarge,
    SchedulerError,
    TaskConflict,
    TaskNotFound,
    UnsupportedMediaType,
)

_STATUS: tuple[tuple[type[SchedulerError], int], ...] = (
    (InvalidRequest, 400),
    (TaskNotFound, 404),
    (TaskConflict, 409),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (DependencyFailure, 503),
)


def status_for(error: SchedulerError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_body(error: SchedulerError) -> dict[str, Any]:
    body: dict[str, Any] = {"message": error.message}
    if isinstance(error, InvalidRequest) and error.problems:
        body["errors"] = [problem.as_dict() for problem in error.problems]
    return body
