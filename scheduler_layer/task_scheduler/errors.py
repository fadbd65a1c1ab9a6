"""Domain exceptions. They say what went wrong; `http_errors` alone decides the HTTP status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# An error shows at most this much of any one client input (contract section 2).
MAX_QUOTED_CHARS = 200


def quote(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """`text` as an error may show it: cut to `limit` characters (marked with "..."), and with lone
    UTF-16 surrogates written as `\\udxxx` escapes, so the answer and the log stay UTF-8 text."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return shown.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of a request, e.g. ("payload.url", "is required")."""

    field: str
    problem: str


class SchedulerError(Exception):
    """Base of every error the scheduler reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(SchedulerError):
    """The request is malformed or breaks a rule; `problems` names each field at fault."""

    def __init__(self, problems: list[FieldProblem], message: str | None = None) -> None:
        if not message:
            first = problems[0] if problems else None
            message = (
                f"Invalid request: {first.field} {first.problem}." if first else "Invalid request."
            )
            if len(problems) > 1:
                message = f"Invalid request: {len(problems)} fields are invalid."
        super().__init__(message)
        self.problems = list(problems)


class UnsupportedMediaType(SchedulerError):
    """The body was sent with a Content-Type other than JSON."""


class PayloadTooLarge(SchedulerError):
    """The body is larger than the API accepts."""


class TaskNotFound(SchedulerError):
    """No task has the id the client asked for."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"Task {quote(task_id)} was not found.")
        self.task_id = task_id


class TaskConflict(SchedulerError):
    """The task is in a state that does not allow what was asked (the lifecycle routes' 409)."""


class IdempotencyKeyReused(InvalidRequest):
    """An `Idempotency-Key` already used with another body (contract section 1's 422)."""


class RepeatInProgress(SchedulerError):
    """A request with this `Idempotency-Key` is still being handled (contract section 1's 409)."""


class DependencyFailure(SchedulerError):
    """An AWS service the scheduler relies on failed; nothing half-written was left behind.

    `code` is the error code AWS answered (e.g. "ConditionalCheckFailedException"), None when it
    did not answer: callers that expect a particular refusal decide on it, never on the text.
    `item`: the item a refused conditional write found, when DynamoDB was asked to return it."""

    def __init__(
        self, message: str, code: str | None = None, item: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.item = item
