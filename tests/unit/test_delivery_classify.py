"""Unit tests for task_scheduler.delivery: classifying answers and preparing the request.

Contract section 5 (what a receiver gets, which answers succeed, fail or are retried).
No network: only the pure functions and `prepare_headers` are exercised.
"""

from datetime import UTC, datetime

import pytest

import task_scheduler
from task_scheduler.actions import ActionContext
from task_scheduler.actions.webhook import parse_webhook_payload
from task_scheduler.delivery import (
    HttpWebhookDeliverer,
    classify,
    parse_retry_after,
    prepare_body,
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


@pytest.mark.parametrize("name", ["Content-Type", "content-type", "CONTENT-TYPE"])
def test_clients_content_type_is_kept(name):
    headers = headers_for({"url": URL, "data": 1, "headers": {name: "text/plain"}}, b"1")
    assert headers == {name: "text/plain", "User-Agent": task_scheduler.USER_AGENT}


def test_clients_headers_are_sent_unchanged_and_not_mutated():
    request = parse_webhook_payload({"url": URL, "headers": {"Authorization": "Bearer t"}})
    headers = HttpWebhookDeliverer(session=None).prepare_headers(request, CONTEXT, None)
    assert headers["Authorization"] == "Bearer t"
    assert request.headers == {"Authorization": "Bearer t"}


def test_user_agent_can_be_configured():
    deliverer = HttpWebhookDeliverer(session=None, user_agent="custom/1")
    request = parse_webhook_payload({"url": URL})
    assert deliverer.prepare_headers(request, CONTEXT, None)["User-Agent"] == "custom/1"
