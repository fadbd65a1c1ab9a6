"""The edge of `POST /schedule-task` (contract sections 1 and 2): the raw body read into a
`ScheduleRequest` (size, media type, JSON shape), then parsed into one typed `ScheduleCommand`
that names every field problem at once. The services accept only the command."""

from __future__ import annotations

import base64
import json
import math
import re
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
    quote,
)
from task_scheduler.model import DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS
from task_scheduler.timing import Schedule, parse_run_at, parse_timezone

MAX_BODY_BYTES = 256 * 1024
# Deeper documents are refused: every later step (storage, delivery) walks them recursively.
MAX_NESTING = 64
# Longer integers are refused: Python reads (and writes back) at most 4300 digits.
MAX_INTEGER_DIGITS = 4300
_FIELDS = ("action", "payload", "run_at", "retry", "timezone")


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
    timezone: Any = None

    def to_command(
        self, actions: ActionRegistry[ActionValidator], now: datetime
    ) -> ScheduleCommand:
        """Checks every field, so one InvalidRequest names every problem."""
        problems: list[FieldProblem] = []
        action_request = _collect(problems, lambda: self._action_request(actions))
        zone = _collect(problems, lambda: parse_timezone(self.timezone))
        schedule = _collect(problems, lambda: parse_run_at(self.run_at, now, zone))
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
                FieldProblem(quote(f"retry.{name}"), "is not a known field (max_attempts)")
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


def decode_event_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The raw bytes of an API Gateway proxy event's `body` (base64 when `isBase64Encoded`), or
    InvalidRequest naming `body`."""
    if not body:
        return b""
    if is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:  # binascii.Error, or a character that is not ASCII
            raise InvalidRequest(
                [FieldProblem("body", "is marked base64-encoded but is not valid base64")]
            ) from None
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the event's text was never UTF-8
        raise InvalidRequest([FieldProblem("body", "is not UTF-8 text")]) from None


def parse_schedule_body(body: bytes | None, content_type: str | None) -> ScheduleRequest:
    """Turns the raw request body into a ScheduleRequest, or raises the matching domain error."""
    if content_type is not None and not is_json_media_type(content_type):
        media_type = content_type.split(";", 1)[0].strip()
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not '{quote(media_type)}'."
        )
    body = body or b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body must be at most {MAX_BODY_BYTES} bytes (256 KiB).")
    if not body.strip():
        raise InvalidRequest([FieldProblem("body", "is empty: send a JSON object")])
    document = _load_json(body)
    if not isinstance(document, dict):
        raise InvalidRequest([FieldProblem("body", "must be a JSON object")])
    depth, surrogate_paths = _scan(document)
    if depth > MAX_NESTING:
        raise InvalidRequest([FieldProblem("body", f"nests deeper than {MAX_NESTING} levels")])
    if surrogate_paths:
        raise InvalidRequest([FieldProblem(path, _SURROGATE_PROBLEM) for path in surrogate_paths])
    problems = [
        FieldProblem(quote(name), f"is not a known field ({', '.join(_FIELDS)})")
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
        timezone=document.get("timezone"),
    )


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class _NotJson(ValueError):
    """Raised while reading the body; `reason` says why, in words fit for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _load_json(body: bytes) -> Any:
    """The body's JSON value, or InvalidRequest naming `body` and why it is not JSON."""
    try:
        text = body.decode("utf-8-sig")  # JSON is UTF-8 (RFC 8259); one leading BOM is ignored
        if text.startswith("\ufeff"):  # json would answer with a Python hint (utf-8-sig)
            raise _NotJson("it starts with more than one byte order mark")
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_convertible_int,
        )
    except RecursionError:
        raise InvalidRequest(
            [FieldProblem("body", f"nests deeper than {MAX_NESTING} levels")],
            message="The request body nests too deeply.",
        ) from None
    except UnicodeDecodeError:
        reason: str | None = "it is not UTF-8 text"
    except _NotJson as error:
        reason = error.reason
    except json.JSONDecodeError as error:  # its texts are fixed phrases, without the input
        reason = f"{error.msg} at line {error.lineno} column {error.colno}"
    except ValueError:  # Python's own, about its limits: not words for a client
        reason = None
    problem = "is not valid JSON" + (f" ({reason})" if reason else "")
    raise InvalidRequest(
        [FieldProblem("body", problem)], message="The request body is not valid JSON."
    )


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotJson(f"the number {text[:20]} is too large")
    return value


def _convertible_int(text: str) -> int:
    # Python reads at most 4300 digits (sys.int_info.default_max_str_digits); checked first so
    # that the answer says so in plain words.
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _NotJson(f"a number has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


# A path in the document: None for the document itself, else (the parent's path, key or index).
type _Path = tuple[_Path, str | int] | None

_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, any surrogate is a lone one
_SURROGATE_PROBLEM = (
    "holds a lone UTF-16 surrogate (\\ud800-\\udfff without its pair), which is not text"
)


def _scan(document: Any) -> tuple[int, list[str]]:
    """The nesting depth of a parsed JSON value, and the field names of the strings in it (object
    keys included) that hold a lone surrogate, in document order. Without recursion: the value
    may be deep. Lone surrogates come from `\\ud800` escapes; nothing can store or send them."""
    deepest, found = 0, []
    stack: list[tuple[Any, int, _Path, str | None]] = [(document, 1, None, None)]
    while stack:
        value, level, path, key = stack.pop()
        deepest = max(deepest, level)
        if (key is not None and _SURROGATE.search(key)) or (
            isinstance(value, str) and _SURROGATE.search(value)
        ):
            found.append(_field_name(path))
        if isinstance(value, dict):
            children = [(child, level + 1, (path, k), k) for k, child in value.items()]
            stack.extend(reversed(children))
        elif isinstance(value, list):
            items = [(child, level + 1, (path, i), None) for i, child in enumerate(value)]
            stack.extend(reversed(items))
    return deepest, found


def _field_name(path: _Path) -> str:
    """`payload.data.items[2]` for the path to it, quoted (keys are client input)."""
    parts: list[str] = []
    while path is not None:
        path, segment = path
        parts.append(f"[{segment}]" if isinstance(segment, int) else f".{segment}")
    return quote("".join(reversed(parts)).removeprefix("."))
