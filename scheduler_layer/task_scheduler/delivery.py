"""Sending a webhook over HTTP and classifying the answer (contract section 5).

Built as a pipeline so that what a later issue adds slots in: headers are prepared in one place
(where signing goes), the request is sent in one place (where address checks and pinning go), and
the answer is classified in one place (which retries read).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from task_scheduler import USER_AGENT
from task_scheduler.actions import ActionContext, ActionResult
from task_scheduler.actions.webhook import WebhookRequest
from task_scheduler.addresses import (
    ForbiddenTarget,
    NameNotResolved,
    ResolutionTimedOut,
    Resolver,
    system_resolver,
    url_addresses,
)
from task_scheduler.attempt_deadline import AttemptDeadline
from task_scheduler.errors import DependencyFailure
from task_scheduler.pinned_http import SocketHook, pinned_session
from task_scheduler.signing import InvalidSecret, SecretSource

MAX_RESPONSE_BYTES = 64 * 1024
MAX_EXCERPT_BYTES = 1024
_CHUNK = 8192
MAX_CONNECT_TIMEOUT_SECONDS = 5.0
RETRYABLE_STATUS = frozenset({408, 429})


class HttpWebhookDeliverer:
    """Checks the target's addresses, signs, sends to the checked address, classifies."""

    def __init__(
        self,
        secret: SecretSource,
        *,
        allow_loopback: bool = False,
        resolver: Resolver = system_resolver,
        session_for: Callable[[str, SocketHook], requests.Session] = pinned_session,
        unix_time: Callable[[], float] = time.time,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._secret = secret
        self._allow_loopback = allow_loopback
        self._resolver = resolver
        self._session_for = session_for
        self._unix_time = unix_time
        self._user_agent = user_agent

    def deliver(self, request: WebhookRequest, context: ActionContext) -> ActionResult:
        with AttemptDeadline(request.timeout_seconds) as deadline:
            return self._attempt(request, context, deadline)

    def _attempt(
        self, request: WebhookRequest, context: ActionContext, deadline: AttemptDeadline
    ) -> ActionResult:
        started = deadline.started
        try:
            addresses = url_addresses(
                request.url,
                allow_loopback=self._allow_loopback,
                resolver=self._resolver,
                resolve_timeout_seconds=deadline.remaining(),
            )
        except ForbiddenTarget as refused:
            return _failure(started, f"refused: {refused.reason}", retryable=False)
        except ResolutionTimedOut:
            return _timed_out(request, deadline)
        except NameNotResolved:
            host = urlsplit(request.url).hostname
            return _failure(started, f"{host} does not resolve", retryable=True)
        try:
            secret = self._secret.get()
        except DependencyFailure:
            return _failure(started, "the signing secret could not be read", retryable=True)
        except InvalidSecret as malformed:
            # A deployment defect an operator can fix while the retries wait.
            return _failure(started, f"the signing secret is malformed: {malformed}", True)
        body = prepare_body(request)
        headers = self.prepare_headers(request, context, body)
        headers.update(secret.headers(context.run_id, int(self._unix_time()), body or b""))
        with self._session_for(str(addresses[0]), deadline.watch) as session:
            result = self._send(session, request, body, headers, deadline)
        # Whatever came through sockets the deadline shut down is a timeout: a failure was the
        # cut itself, an answer may have been cut short (a truncated head reads as complete).
        return _timed_out(request, deadline) if deadline.cut_off else result

    def _send(
        self,
        session: requests.Session,
        request: WebhookRequest,
        body: bytes | None,
        headers: dict[str, str],
        deadline: AttemptDeadline,
    ) -> ActionResult:
        started = deadline.started
        remaining = deadline.remaining()
        if remaining <= 0:  # a timeout of 0 would make the socket non-blocking, not expired
            return _timed_out(request, deadline)
        try:
            response = session.request(
                request.method,
                request.url,
                data=body,
                headers=headers,
                timeout=(min(MAX_CONNECT_TIMEOUT_SECONDS, remaining), remaining),
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout:
            return _timed_out(request, deadline)
        except requests.ConnectionError as error:
            return _failure(started, f"connection failed: {_reason(error)}", retryable=True)
        except requests.RequestException as error:
            return _failure(started, f"request failed: {_reason(error)}", retryable=False)
        try:
            excerpt = read_excerpt(response, deadline=started + request.timeout_seconds)
        except (_TooSlow, urllib3.exceptions.TimeoutError):
            return _timed_out(request, deadline)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
            return _failure(
                started, f"reading the response failed: {_reason(error)}", retryable=True
            )
        now = datetime.fromtimestamp(self._unix_time(), UTC)
        return classify(response.status_code, response.headers, excerpt, _elapsed_ms(started), now)

    def prepare_headers(
        self, request: WebhookRequest, context: ActionContext, body: bytes | None
    ) -> dict[str, str]:
        headers = dict(request.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        headers["User-Agent"] = self._user_agent
        return headers


def prepare_body(request: WebhookRequest) -> bytes | None:
    """The JSON of `data`, compact and UTF-8; no body when the payload has no `data`."""
    if not request.has_data:
        return None
    return json.dumps(request.data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _TooSlow(Exception):
    """The response body did not arrive within the request's timeout."""


def read_excerpt(response: requests.Response, deadline: float) -> str:
    """Reads at most MAX_RESPONSE_BYTES of the body, by `deadline` (monotonic time) in all, and
    keeps an excerpt of at most MAX_EXCERPT_BYTES of UTF-8 text."""
    received = bytearray()
    try:
        while len(received) < MAX_RESPONSE_BYTES:
            if time.monotonic() > deadline:
                raise _TooSlow()
            # read1: at most one socket read, so a trickling body cannot outlast the deadline.
            chunk = response.raw.read1(
                min(_CHUNK, MAX_RESPONSE_BYTES - len(received)), decode_content=True
            )
            if not chunk:
                break
            received += chunk
    finally:
        response.close()
    # Cut on bytes, then drop a character the cut split: the excerpt's size is bounded in bytes.
    return bytes(received[:MAX_EXCERPT_BYTES]).decode("utf-8", errors="ignore")


def classify(
    status: int, headers: Any, excerpt: str, duration_ms: int, now: datetime | None = None
) -> ActionResult:
    """2xx succeeds; 408, 429 and 5xx may be retried; 3xx (not followed), 410 and other 4xx fail."""
    if 200 <= status < 300:
        return ActionResult(True, duration_ms, status_code=status, response_excerpt=excerpt or None)
    retryable = status in RETRYABLE_STATUS or status >= 500
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    elif status == 410:
        error = "HTTP 410: the receiver is gone"
    else:
        error = f"HTTP {status}"
    return ActionResult(
        False,
        duration_ms,
        status_code=status,
        error=error,
        retryable=retryable,
        # `now` reads an HTTP-date Retry-After; without it only delta-seconds count.
        retry_after_seconds=parse_retry_after(headers.get("Retry-After"), now)
        if retryable
        else None,
        response_excerpt=excerpt or None,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None or now is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _timed_out(request: WebhookRequest, deadline: AttemptDeadline) -> ActionResult:
    return _failure(
        deadline.started, f"timed out after {request.timeout_seconds:g} s", retryable=True
    )


def _failure(started: float, error: str, retryable: bool) -> ActionResult:
    return ActionResult(False, _elapsed_ms(started), error=error, retryable=retryable)


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _reason(error: Exception) -> str:
    # requests nests the interesting part (e.g. "Connection refused") inside urllib3's wrapper.
    inner = error.args[0] if error.args else error
    reason = getattr(inner, "reason", inner)
    text = str(reason)
    return text if len(text) <= 300 else text[:297] + "..."
