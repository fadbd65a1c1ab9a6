"""The `webhook` action: call a URL with a JSON body (contract sections 1 and 5)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from task_scheduler.actions import ActionContext, ActionResult
from task_scheduler.addresses import (
    ForbiddenTarget,
    NameNotResolved,
    Resolver,
    system_resolver,
    url_addresses,
)
from task_scheduler.errors import FieldProblem, InvalidRequest, quote

MAX_URL_LENGTH = 2048
METHODS = ("POST", "PUT", "PATCH", "DELETE", "GET")
DEFAULT_METHOD = "POST"
DEFAULT_TIMEOUT_SECONDS = 10
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 1, 30
MAX_HEADERS = 50
MAX_HEADER_VALUE_LENGTH = 4096
# Set by the scheduler on every delivery; a client may not set them (contract section 5).
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
# Hop-by-hop and framing headers belong to the HTTP connection, which the scheduler manages.
CONNECTION_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")  # an RFC 9110 token
_PAYLOAD_FIELDS = ("url", "data", "method", "headers", "timeout_seconds")
_NO_DATA = object()


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    method: str = DEFAULT_METHOD
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    has_data: bool = False
    data: Any = None


class WebhookDeliverer(Protocol):
    def deliver(self, request: WebhookRequest, context: ActionContext) -> ActionResult: ...


class WebhookValidator:
    """The API side: the payload's shape and its target's addresses."""

    name = "webhook"

    def __init__(self, allow_loopback: bool = False, resolver: Resolver = system_resolver) -> None:
        self._allow_loopback = allow_loopback
        self._resolver = resolver

    def validate(self, payload: Any) -> WebhookRequest:
        request = parse_webhook_payload(payload)
        check_target(request.url, self._allow_loopback, self._resolver)
        return request


class WebhookPerformer:
    """The execute side: the stored payload, delivered (the deliverer checks the target again)."""

    name = "webhook"

    def __init__(self, deliverer: WebhookDeliverer) -> None:
        self._deliverer = deliverer

    def execute(self, payload: Any, context: ActionContext) -> ActionResult:
        return self._deliverer.deliver(parse_webhook_payload(payload), context)


def parse_webhook_payload(payload: Any) -> WebhookRequest:
    """Validates a webhook payload, naming every field at fault."""
    if not isinstance(payload, dict):
        raise InvalidRequest([FieldProblem("payload", "must be an object")])
    problems: list[FieldProblem] = []
    for name in payload:
        if name not in _PAYLOAD_FIELDS:
            allowed = ", ".join(_PAYLOAD_FIELDS)
            problem = FieldProblem(quote(f"payload.{name}"), f"is not a known field ({allowed})")
            problems.append(problem)
    url = _check_url(payload.get("url"), problems)
    method = _check_method(payload.get("method", DEFAULT_METHOD), problems)
    headers = _check_headers(payload.get("headers", {}), problems)
    timeout = _check_timeout(payload.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS), problems)
    if problems:
        raise InvalidRequest(problems)
    data = payload.get("data", _NO_DATA)
    return WebhookRequest(
        url=url,
        method=method,
        headers=headers,
        timeout_seconds=timeout,
        has_data=data is not _NO_DATA,
        data=None if data is _NO_DATA else data,
    )


def check_target(url: str, allow_loopback: bool, resolver: Resolver) -> None:
    """Refuses a URL whose host is, or resolves to, an address the scheduler must not reach.
    A name that does not resolve yet is accepted: it is checked again when the task runs."""
    try:
        url_addresses(url, allow_loopback=allow_loopback, resolver=resolver)
    except ForbiddenTarget as refused:
        problem = FieldProblem("payload.url", f"is refused: {quote(refused.reason)}")
        raise InvalidRequest([problem]) from None
    except NameNotResolved:
        pass


def _check_url(url: Any, problems: list[FieldProblem]) -> str:
    def bad(problem: str) -> str:
        problems.append(FieldProblem("payload.url", problem))
        return ""

    if url is None:
        return bad("is required")
    if not isinstance(url, str) or not url:
        return bad("must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        return bad(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return bad("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return bad("is not a valid URL")
    if parts.scheme.lower() not in ("http", "https"):
        return bad("must be an absolute http:// or https:// URL")
    if not parts.hostname:
        return bad("must name a host")
    if parts.username is not None or parts.password is not None:
        return bad("must not contain credentials; send them in payload.headers instead")
    if port == 0:
        return bad("must not use port 0")
    return url


def _check_method(method: Any, problems: list[FieldProblem]) -> str:
    if isinstance(method, str) and method.upper() in METHODS:
        return method.upper()
    problems.append(FieldProblem("payload.method", f"must be one of {', '.join(METHODS)}"))
    return DEFAULT_METHOD


def _check_headers(headers: Any, problems: list[FieldProblem]) -> dict[str, str]:
    if not isinstance(headers, dict):
        problems.append(FieldProblem("payload.headers", "must be an object of string to string"))
        return {}
    if len(headers) > MAX_HEADERS:
        problems.append(FieldProblem("payload.headers", f"must have at most {MAX_HEADERS} entries"))
        return {}
    seen: set[str] = set()
    for name, value in headers.items():
        where = quote(f"payload.headers.{name}")
        if not _HEADER_NAME.fullmatch(name):
            problems.append(FieldProblem(where, "is not a valid header name"))
        elif name.lower() in RESERVED_HEADERS:
            problems.append(FieldProblem(where, "is set by the scheduler and cannot be overridden"))
        elif name.lower() in CONNECTION_HEADERS:
            problems.append(FieldProblem(where, "is a connection header the scheduler manages"))
        elif name.lower() in seen:
            problems.append(FieldProblem(where, "is given twice (header names ignore case)"))
        elif not isinstance(value, str):
            problems.append(FieldProblem(where, "must be a string"))
        elif len(value) > MAX_HEADER_VALUE_LENGTH:
            problems.append(
                FieldProblem(where, f"must be at most {MAX_HEADER_VALUE_LENGTH} characters")
            )
        elif not _sendable_header_value(value):
            problems.append(
                FieldProblem(
                    where,
                    "must be Latin-1 text without control characters or surrounding spaces",
                )
            )
        seen.add(name.lower())
    return dict(headers)


def _sendable_header_value(value: str) -> bool:
    """What HTTP can carry as a field value (RFC 9110 5.5), as `requests` will send it."""
    if value != value.strip(" \t"):
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value)


def _check_timeout(timeout: Any, problems: list[FieldProblem]) -> float:
    low, high = MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not low <= timeout <= high
    ):
        problems.append(
            FieldProblem("payload.timeout_seconds", f"must be a number from {low} to {high}")
        )
        return DEFAULT_TIMEOUT_SECONDS
    return timeout
