"""The edge of `POST /schedule-task` (contract sections 1 and 2): the raw body read into a
`ScheduleRequest` (size, media type, JSON shape), then parsed into one typed `ScheduleCommand`
that names every field problem at once. The services accept only the command."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from task_scheduler.actions import ActionRegistry, ActionValidator
from task_scheduler.errors import (
    FieldProblem,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from task_scheduler.model import DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS
from task_scheduler.timing import Schedule, parse_run_at

MAX_BODY_BYTES = 256 * 1024
# Deeper documents are refused: every later step (storage, delivery) walks them recursively.
MAX_NESTING = 64
_FIELDS = ("action", "payload", "run_at", "retry")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # delivery attempts per run, the first included


@dataclass(frozen=True)
class ScheduleCommand:
    """A valid request to schedule a task: what the scheduling service accepts."""

    action: str
    payload: Any  # stored and performed as the client sent it
    action_request: Any  # the action's typed reading of the payload (e.g. a WebhookRequest)
    schedule: Schedule
    retry: RetryPolicy


@dataclass(frozen=True)
class ScheduleRequest:
    """The body's fields as sent, before any of them is checked."""

    action: Any
    payload: Any
    run_at: Any
    retry: Any = None

    def to_command(
        self, actions: ActionRegistry[ActionValidator], now: datetime
    ) -> ScheduleCommand:
        """Checks every field, so one InvalidRequest names every problem."""
        problems: list[FieldProblem] = []
        action_request = _collect(problems, lambda: self._action_request(actions))
        schedule = _collect(problems, lambda: parse_run_at(self.run_at, now))
        retry = _collect(problems, lambda: _retry_policy(self.retry))
        if problems:
            raise InvalidRequest(problems)
        return ScheduleCommand(self.action, self.payload, action_request, schedule, retry)

    def _action_request(self, actions: ActionRegistry[ActionValidator]) -> Any:
        action = actions.get(self.action)
        if self.payload is None:
            raise InvalidRequest([FieldProblem("payload", "is required")])
        return action.validate(self.payload)


def _collect[Value](problems: list[FieldProblem], parse: Callable[[], Value]) -> Value:
    """`parse()`, with the problems of an InvalidRequest added to `problems`."""
    try:
        return parse()
    except InvalidRequest as error:
        problems.extend(error.problems)
        return None  # type: ignore[return-value]  # never used: `problems` is not empty


def _retry_policy(retry: Any) -> RetryPolicy:
    """`retry.max_attempts` (1-20, default 5), or InvalidRequest naming the field."""
    if retry is None:
        return RetryPolicy()
    if not isinstance(retry, dict):
        raise InvalidRequest([FieldProblem("retry", 'must be an object like {"max_attempts": 5}')])
    unknown = [name for name in retry if name != "max_attempts"]
    if unknown:
        raise InvalidRequest(
            [
                FieldProblem(f"retry.{name}", "is not a known field (max_attempts)")
                for name in unknown
            ]
        )
    value = retry.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MAX_ATTEMPTS:
        raise InvalidRequest(
            [
                FieldProblem(
                    "retry.max_attempts", f"must be a whole number from 1 to {MAX_MAX_ATTEMPTS}"
                )
            ]
        )
    return RetryPolicy(value)


def parse_schedule_body(body: bytes | None, content_type: str | None) -> ScheduleRequest:
    """Turns the raw request body into a ScheduleRequest, or raises the matching domain error."""
    if content_type is not None and not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {content_type.split(';')[0].strip()!r}."
        )
    body = body or b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body must be at most {MAX_BODY_BYTES} bytes (256 KiB).")
    if not body.strip():
        raise InvalidRequest([FieldProblem("body", "is empty: send a JSON object")])
    try:
        document = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidRequest(
            [FieldProblem("body", f"nests deeper than {MAX_NESTING} levels")],
            message="The request body nests too deeply.",
        ) from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidRequest(
            [FieldProblem("body", f"is not valid JSON ({_json_reason(error)})")],
            message="The request body is not valid JSON.",
        ) from None
    if not isinstance(document, dict):
        raise InvalidRequest([FieldProblem("body", "must be a JSON object")])
    if _depth(document) > MAX_NESTING:
        raise InvalidRequest([FieldProblem("body", f"nests deeper than {MAX_NESTING} levels")])
    problems = [
        FieldProblem(name, f"is not a known field ({', '.join(_FIELDS)})")
        for name in document
        if name not in _FIELDS
    ]
    if problems:
        raise InvalidRequest(problems)
    return ScheduleRequest(
        action=document.get("action"),
        payload=document.get("payload"),
        run_at=document.get("run_at"),
        retry=document.get("retry"),
    )


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(current, dict):
            stack.extend((child, level + 1) for child in current.values())
        elif isinstance(current, list):
            stack.extend((child, level + 1) for child in current)
    return deepest


def _json_reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return str(error)
