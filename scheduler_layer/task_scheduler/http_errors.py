"""The one place where domain exceptions become HTTP statuses and JSON bodies (contract §2)."""

from __future__ import annotations

from typing import Any

from task_scheduler.errors import (
    DependencyFailure,
    IdempotencyKeyReused,
    InvalidRequest,
    PayloadTooLarge,
    RepeatInProgress,
    SchedulerError,
    TaskConflict,
    TaskNotFound,
    UnsupportedMediaType,
    quote,
)

# An answer lists this many problems at most (its message counts them all), and no text in it is
# longer than MAX_TEXT_CHARS. Each message already quotes at most 200 characters of any input;
# these bounds keep an answer, and the log line that repeats it, small whatever a message holds.
MAX_LISTED_PROBLEMS = 50
MAX_TEXT_CHARS = 1000

# The first kind an error is an instance of decides (a 422 is also an InvalidRequest).
_STATUS: tuple[tuple[type[SchedulerError], int], ...] = (
    (IdempotencyKeyReused, 422),
    (InvalidRequest, 400),
    (TaskNotFound, 404),
    (TaskConflict, 409),
    (RepeatInProgress, 409),
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
    body: dict[str, Any] = {"message": quote(error.message, MAX_TEXT_CHARS)}
    if isinstance(error, InvalidRequest) and error.problems:
        body["errors"] = [
            {"field": quote(p.field, MAX_TEXT_CHARS), "problem": quote(p.problem, MAX_TEXT_CHARS)}
            for p in error.problems[:MAX_LISTED_PROBLEMS]
        ]
    return body
