"""Unit tests for task_scheduler.delivery: classifying answers and preparing the request.

Contract section 5 (what a receiver gets, which answers succeed, fail or are retried).
No network: the pure functions, `prepare_headers`, and reading and delivering over fakes of the
session, the response and its raw body.
"""

from datetime import UTC, datetime

import pytest
import requests

import task_scheduler
from task_scheduler import delivery
from task_scheduler.actions import ActionContext
from task_scheduler.actions.webhook import WebhookRequest, parse_webhook_payload
from task_scheduler.delivery import (
    MAX_EXCERPT_BYTES,
    MAX_RESPONSE_BYTES,
    HttpWebhookDeliverer,
    classify,
    parse_retry_after,
    prepare_body,
    read_excerpt,
)

URL = "https://example.com/hook"
CONTEXT = ActionContext(task_id="123e4567-e89b-42d3-a456-426614174000", run_id="r:1", attempt=1)


# --- classify ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_success(status):
    result = classify(status, {}, "ok", 42)
    assert result.succeeded is True
    assert result.status_code == status
    assert result.duration_ms == 42
    assert result.error is None
    assert result.retryable is False
    assert result.retry_after_seconds is None
    assert result.response_excerpt == "ok"


def test_success_with_an_empty_body_keeps_no_excerpt():
    assert classify(204, {}, "", 3).response_excerpt is None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_fail_and_are_not_retried(status):
    result = classify(status, {"Location": "https://elsewhere.example"}, "", 5)
    assert result.succeeded is False
    assert result.retryable is False
    assert result.status_code == status
    assert result.error == f"HTTP {status}: redirects are not followed"


def test_410_fails_at_once():
    result = classify(410, {"Retry-After": "5"}, "gone", 7)
    assert result.succeeded is False
    assert result.retryable is False
    assert result.retry_after_seconds is None
    assert result.error == "HTTP 410: the receiver is gone"
    assert result.response_excerpt == "gone"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 422])
def test_other_4xx_fail_at_once(status):
    result = classify(status, {"Retry-After": "5"}, "", 1)
    assert result.succeeded is False
    assert result.retryable is False
    assert result.retry_after_seconds is None
    assert result.error == f"HTTP {status}"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_408_429_and_5xx_are_retryable(status):
    result = classify(status, {}, "busy", 9)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.retry_after_seconds is None
    assert result.status_code == status
    assert result.error == f"HTTP {status}"
    assert result.response_excerpt == "busy"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_read_for_retryable_answers(status):
    result = classify(status, {"Retry-After": "120"}, "", 9)
    assert result.retryable is True
    assert result.retry_after_seconds == 120.0


def test_retry_after_is_read_case_insensitively_from_a_requests_header_map():
    from requests.structures import CaseInsensitiveDict

    result = classify(503, CaseInsensitiveDict({"retry-after": "7"}), "", 9)
    assert result.retry_after_seconds == 7.0


# --- parse_retry_after ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("5", 5.0), (" 30 ", 30.0), ("86400", 86400.0)],
)
def test_retry_after_delta_seconds(value, expected):
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "5s"])
def test_retry_after_absent_or_bad_is_none(value):
    assert parse_retry_after(value) is None


def test_retry_after_http_date_is_seconds_from_now():
    now = datetime(2030, 5, 19, 17, 56, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 19 May 2030 17:57:30 GMT", now) == 90.0


def test_retry_after_http_date_in_the_past_is_zero():
    now = datetime(2030, 5, 19, 17, 56, 0, tzinfo=UTC)
    assert parse_retry_after("Sun, 19 May 2030 17:00:00 GMT", now) == 0.0


def test_retry_after_http_date_without_now_is_none():
    assert parse_retry_after("Sun, 19 May 2030 17:57:30 GMT") is None


# --- prepare_body -----------------------------------------------------------------------------


def test_no_data_means_no_body():
    assert prepare_body(parse_webhook_payload({"url": URL})) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, b"null"),
        ([1, "two", None], b'[1,"two",null]'),
        (42, b"42"),
        (2.5, b"2.5"),
        (False, b"false"),
        ("", b'""'),
        ({}, b"{}"),
        ({"msg": "Hello from Lambda", "n": [1, 2]}, b'{"msg":"Hello from Lambda","n":[1,2]}'),
        ({"city": "Zürich", "emoji": "🚀"}, '{"city":"Zürich","emoji":"🚀"}'.encode()),
    ],
)
def test_data_is_sent_as_compact_utf8_json(data, expected):
    assert prepare_body(parse_webhook_payload({"url": URL, "data": data})) == expected


# --- prepare_headers --------------------------------------------------------------------------


def headers_for(payload, body):
    deliverer = HttpWebhookDeliverer(session=None)
    return deliverer.prepare_headers(parse_webhook_payload(payload), CONTEXT, body)


def test_user_agent_names_the_scheduler_and_its_version():
    expected = f"serverless-task-scheduler/{task_scheduler.__version__}"
    assert expected == "serverless-task-scheduler/0.1.0"
    headers = headers_for({"url": URL}, None)
    assert headers["User-Agent"] == expected


def test_json_content_type_is_set_when_there_is_a_body():
    headers = headers_for({"url": URL, "data": {"a": 1}, "headers": {"X-Tenant": "acme"}}, b"{}")
    assert headers == {
        "X-Tenant": "acme",
        "Content-Type": "application/json",
        "User-Agent": task_scheduler.USER_AGENT,
    }


def test_no_content_type_without_a_body():
    headers = headers_for({"url": URL, "method": "GET"}, None)
    assert headers == {"User-Agent": task_scheduler.USER_AGENT}


def test_json_content_type_is_set_whatever_the_method_when_there_is_a_body():
    for method in ("GET", "DELETE", "PUT", "PATCH"):
        payload = {"url": URL, "method": method, "data": None}
        headers = headers_for(payload, prepare_body(parse_webhook_payload(payload)))
        assert headers["Content-Type"] == "application/json", method


def test_scheduler_content_type_replaces_one_that_slipped_past_validation():
    # Validation refuses Content-Type (it is reserved); prepare_headers does not rely on that.
    request = WebhookRequest(url=URL, headers={"Content-Type": "text/plain"}, has_data=True)
    headers = HttpWebhookDeliverer(session=None).prepare_headers(request, CONTEXT, b"null")
    assert headers == {"Content-Type": "application/json", "User-Agent": task_scheduler.USER_AGENT}


def test_clients_headers_are_sent_unchanged_and_not_mutated():
    request = parse_webhook_payload({"url": URL, "headers": {"Authorization": "Bearer t"}})
    headers = HttpWebhookDeliverer(session=None).prepare_headers(request, CONTEXT, None)
    assert headers["Authorization"] == "Bearer t"
    assert request.headers == {"Authorization": "Bearer t"}


def test_user_agent_can_be_configured():
    deliverer = HttpWebhookDeliverer(session=None, user_agent="custom/1")
    request = parse_webhook_payload({"url": URL})
    assert deliverer.prepare_headers(request, CONTEXT, None)["User-Agent"] == "custom/1"


# --- read_excerpt -----------------------------------------------------------------------------


class FakeMonotonic:
    """Stands in for time.monotonic; `advance` moves it on."""

    def __init__(self, start=1000.0):
        self.current = start

    def __call__(self):
        return self.current

    def advance(self, seconds):
        self.current += seconds


class FakeRaw:
    """urllib3's response body: read1 hands out the scripted chunks, at most `amt` bytes each,
    and records every call. `endless` repeats its only chunk for ever; `per_read` is how long
    each read takes on the fake monotonic clock."""

    def __init__(self, chunks, endless=False, clock=None, per_read=0.0):
        self.chunks = list(chunks)
        self.endless = endless
        self.clock = clock
        self.per_read = per_read
        self.calls = []
        self.handed_out = 0

    def read1(self, amt=None, decode_content=None):
        self.calls.append((amt, decode_content))
        if self.clock is not None:
            self.clock.advance(self.per_read)
        if not self.chunks:
            return b""
        chunk = self.chunks[0] if self.endless else self.chunks.pop(0)
        if amt is not None and len(chunk) > amt:
            if not self.endless:
                self.chunks.insert(0, chunk[amt:])
            chunk = chunk[:amt]
        self.handed_out += len(chunk)
        return chunk


class FakeResponse:
    def __init__(self, raw, status_code=200, headers=None):
        self.raw = raw
        self.status_code = status_code
        self.headers = headers or {}
        self.closed = 0

    def close(self):
        self.closed += 1


@pytest.fixture
def monotonic(monkeypatch):
    clock = FakeMonotonic()
    monkeypatch.setattr(delivery.time, "monotonic", clock)
    return clock


FAR = 10**9  # a deadline that is never reached


def test_excerpt_joins_the_chunks_and_closes_the_response():
    raw = FakeRaw([b'{"ok":', b" true", b"}"])
    response = FakeResponse(raw)
    assert read_excerpt(response, deadline=FAR) == '{"ok": true}'
    assert response.closed == 1
    assert all(decode is True for _, decode in raw.calls)  # gzip and the like are decoded
    assert all(amount <= 8192 for amount, _ in raw.calls)


def test_empty_body_is_an_empty_excerpt():
    response = FakeResponse(FakeRaw([]))
    assert read_excerpt(response, deadline=FAR) == ""
    assert response.closed == 1


def test_reading_stops_at_64_kib():
    assert MAX_RESPONSE_BYTES == 64 * 1024
    raw = FakeRaw([b"x" * 5000], endless=True)
    response = FakeResponse(raw)
    excerpt = read_excerpt(response, deadline=FAR)
    assert raw.handed_out == MAX_RESPONSE_BYTES
    # 13 reads of 5000 bytes, then only what is left below the cap is asked for.
    assert len(raw.calls) == 14
    assert raw.calls[-1][0] == MAX_RESPONSE_BYTES - 13 * 5000
    assert excerpt == "x" * MAX_EXCERPT_BYTES
    assert response.closed == 1


def test_a_body_of_exactly_64_kib_is_read_without_asking_for_more():
    raw = FakeRaw([b"y" * 8192] * 8 + [b"never read"])
    read_excerpt(FakeResponse(raw), deadline=FAR)
    assert raw.handed_out == MAX_RESPONSE_BYTES
    assert len(raw.calls) == 8


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("a" * 2000, "a" * 1024),
        ("a" * 1023 + "é" + "b", "a" * 1023),  # é (2 bytes) would end at byte 1025: dropped
        ("a" * 1022 + "é" + "b", "a" * 1022 + "é"),  # é ends exactly at byte 1024: kept
        ("€" * 400, "€" * 341),  # 3 bytes each: 1023 bytes
        ("🚀" * 300, "🚀" * 256),  # 4 bytes each: exactly 1024 bytes
        ("a" + "🚀" * 300, "a" + "🚀" * 255),  # the 257th rocket is split at the cut
        ("Zürich", "Zürich"),
    ],
)
def test_excerpt_is_at_most_1024_bytes_of_utf8(text, kept):
    assert MAX_EXCERPT_BYTES == 1024
    excerpt = read_excerpt(FakeResponse(FakeRaw([text.encode()])), deadline=FAR)
    assert excerpt == kept
    assert len(excerpt.encode()) <= MAX_EXCERPT_BYTES


def test_a_character_split_between_two_chunks_is_kept_whole():
    encoded = "ab€cd".encode()  # the euro sign is bytes 2..4
    raw = FakeRaw([encoded[:3], encoded[3:]])
    assert read_excerpt(FakeResponse(raw), deadline=FAR) == "ab€cd"


def test_body_not_arriving_by_the_deadline_is_too_slow(monotonic):
    raw = FakeRaw([b"x"] * 100, clock=monotonic, per_read=1.0)
    response = FakeResponse(raw)
    with pytest.raises(delivery._TooSlow):
        read_excerpt(response, deadline=monotonic() + 3.5)
    assert len(raw.calls) == 4  # reads at 1000, 1001, 1002, 1003; at 1004 the deadline passed
    assert response.closed == 1


def test_body_ending_exactly_at_the_deadline_is_read(monotonic):
    raw = FakeRaw([b"a", b"b", b"c"], clock=monotonic, per_read=1.0)
    assert read_excerpt(FakeResponse(raw), deadline=monotonic() + 3.0) == "abc"


def test_a_failing_read_still_closes_the_response():
    class BrokenRaw:
        def read1(self, amt=None, decode_content=None):
            raise OSError("connection reset")

    response = FakeResponse(BrokenRaw())
    with pytest.raises(OSError, match="connection reset"):
        read_excerpt(response, deadline=FAR)
    assert response.closed == 1


# --- deliver ----------------------------------------------------------------------------------


class FakeSession:
    def __init__(self, response=None, raises=None):
        self.response = response
        self.raises = raises
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        if self.raises is not None:
            raise self.raises
        return self.response


def test_deliver_sends_the_request_and_classifies_the_answer(monotonic):
    response = FakeResponse(FakeRaw([b"accepted"]), status_code=202)
    session = FakeSession(response)
    request = parse_webhook_payload(
        {"url": URL, "data": {"a": 1}, "headers": {"X-Tenant": "acme"}, "timeout_seconds": 3}
    )
    result = HttpWebhookDeliverer(session).deliver(request, CONTEXT)
    assert result.succeeded is True
    assert result.status_code == 202
    assert result.response_excerpt == "accepted"
    [(method, url, kwargs)] = session.calls
    assert (method, url) == ("POST", URL)
    assert kwargs == {
        "data": b'{"a":1}',
        "headers": {
            "X-Tenant": "acme",
            "Content-Type": "application/json",
            "User-Agent": task_scheduler.USER_AGENT,
        },
        "timeout": (3, 3),
        "allow_redirects": False,
        "stream": True,
    }


def test_deliver_caps_the_connect_timeout_at_5_seconds(monotonic):
    session = FakeSession(FakeResponse(FakeRaw([])))
    request = parse_webhook_payload({"url": URL, "timeout_seconds": 30})
    HttpWebhookDeliverer(session).deliver(request, CONTEXT)
    assert session.calls[0][2]["timeout"] == (5.0, 30)
    assert session.calls[0][2]["data"] is None


def test_deliver_turns_a_body_too_slow_into_a_retryable_timeout(monotonic):
    raw = FakeRaw([b"x"] * 100, clock=monotonic, per_read=1.0)
    response = FakeResponse(raw, status_code=200)
    request = parse_webhook_payload({"url": URL, "timeout_seconds": 2})
    result = HttpWebhookDeliverer(FakeSession(response)).deliver(request, CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "timed out after 2 s"
    assert result.status_code is None
    assert result.duration_ms == 3000
    assert response.closed == 1


def test_deliver_turns_a_failing_read_into_a_retryable_failure(monotonic):
    class BrokenRaw:
        def read1(self, amt=None, decode_content=None):
            raise OSError("connection reset by peer")

    response = FakeResponse(BrokenRaw(), status_code=200)
    request = parse_webhook_payload({"url": URL})
    result = HttpWebhookDeliverer(FakeSession(response)).deliver(request, CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "reading the response failed: connection reset by peer"


def test_deliver_turns_a_request_timeout_into_a_retryable_failure(monotonic):
    request = parse_webhook_payload({"url": URL, "timeout_seconds": 1.5})
    session = FakeSession(raises=requests.ReadTimeout("read timed out"))
    result = HttpWebhookDeliverer(session).deliver(request, CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "timed out after 1.5 s"
