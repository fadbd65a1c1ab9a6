"""Unit tests for task_scheduler.delivery: classifying answers and preparing the request.

Contract section 5 (what a receiver gets, which answers succeed, fail or are retried).
No network: the pure functions, `prepare_headers`, and reading and delivering over fakes of the
session, the response and its raw body.
"""

import time
from datetime import UTC, datetime

import pytest
import requests
import urllib3
from botocore.exceptions import ClientError, EndpointConnectionError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import task_scheduler
from task_scheduler import delivery
from task_scheduler.actions import ActionContext
from task_scheduler.actions.webhook import WebhookRequest, parse_webhook_payload
from task_scheduler.addresses import NameNotResolved
from task_scheduler.delivery import (
    MAX_EXCERPT_BYTES,
    MAX_RESPONSE_BYTES,
    HttpWebhookDeliverer,
    classify,
    parse_retry_after,
    prepare_body,
    read_excerpt,
)
from task_scheduler.errors import DependencyFailure
from task_scheduler.signing import InvalidSecret, SecretsManagerSecret
from tests.support.addresses import ISSUE_SPELLINGS, RecordingResolver
from tests.support.fakes import StaticSecret

URL = "https://example.com/hook"
CONTEXT = ActionContext(task_id="123e4567-e89b-42d3-a456-426614174000", run_id="r:1", attempt=1)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PUBLIC = "93.184.215.14"
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")

pytestmark = pytest.mark.usefixtures("no_dns")


def public_resolver(host, port):
    """Stands in for DNS: every name is one public address (example.com is never looked up)."""
    return [PUBLIC]


def unsigned(headers):
    """The headers without the three signature headers (checked on their own)."""
    return {name: value for name, value in headers.items() if name not in SIGNATURE_HEADERS}


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
    deliverer = HttpWebhookDeliverer(StaticSecret(SECRET))
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
    headers = HttpWebhookDeliverer(StaticSecret(SECRET)).prepare_headers(request, CONTEXT, b"null")
    assert headers == {"Content-Type": "application/json", "User-Agent": task_scheduler.USER_AGENT}


def test_clients_headers_are_sent_unchanged_and_not_mutated():
    request = parse_webhook_payload({"url": URL, "headers": {"Authorization": "Bearer t"}})
    headers = HttpWebhookDeliverer(StaticSecret(SECRET)).prepare_headers(request, CONTEXT, None)
    assert headers["Authorization"] == "Bearer t"
    assert request.headers == {"Authorization": "Bearer t"}


def test_user_agent_can_be_configured():
    deliverer = HttpWebhookDeliverer(StaticSecret(SECRET), user_agent="custom/1")
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
    """A requests.Session as the deliverer uses it: a context manager with request()."""

    def __init__(self, response=None, raises=None):
        self.response = response
        self.raises = raises
        self.calls = []
        self.entered = 0
        self.exited = 0

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc_info):
        self.exited += 1
        return False

    def request(self, method, url, **kwargs):
        assert self.entered == 1
        assert self.exited == 0
        self.calls.append((method, url, kwargs))
        if self.raises is not None:
            raise self.raises
        return self.response


class SessionFactory:
    """Stands in for `pinned_session`: records the address each session is pinned to."""

    def __init__(self, session):
        self.session = session
        self.addresses = []
        self.socket_hooks = []

    def __call__(self, address, on_socket):
        self.addresses.append(address)
        self.socket_hooks.append(on_socket)
        return self.session


class CountingSecret:
    """A SecretSource that counts reads and raises `raises` if given."""

    def __init__(self, secret=SECRET, raises=None):
        self.inner = StaticSecret(secret)
        self.raises = raises
        self.reads = 0

    def get(self):
        self.reads += 1
        if self.raises is not None:
            raise self.raises
        return self.inner.get()


def deliverer_for(
    session, resolver=public_resolver, secret=None, unix_time=None, **options
) -> tuple[HttpWebhookDeliverer, SessionFactory]:
    factory = SessionFactory(session)
    deliverer = HttpWebhookDeliverer(
        secret or StaticSecret(SECRET),
        resolver=resolver,
        session_for=factory,
        unix_time=unix_time or time.time,
        **options,
    )
    return deliverer, factory


def verify(body, headers):
    """What a receiver does with the standardwebhooks library; raises if the signature fails."""
    Webhook(SECRET).verify(body or b"", headers, json_parse=False)


def test_deliver_sends_the_request_and_classifies_the_answer(monotonic):
    response = FakeResponse(FakeRaw([b"accepted"]), status_code=202)
    session = FakeSession(response)
    request = parse_webhook_payload(
        {"url": URL, "data": {"a": 1}, "headers": {"X-Tenant": "acme"}, "timeout_seconds": 3}
    )
    deliverer, _ = deliverer_for(session)
    result = deliverer.deliver(request, CONTEXT)
    assert result.succeeded is True
    assert result.status_code == 202
    assert result.response_excerpt == "accepted"
    [(method, url, kwargs)] = session.calls
    assert (method, url) == ("POST", URL)
    headers = kwargs.pop("headers")
    assert kwargs == {
        "data": b'{"a":1}',
        "timeout": (3, 3),
        "allow_redirects": False,
        "stream": True,
    }
    assert unsigned(headers) == {
        "X-Tenant": "acme",
        "Content-Type": "application/json",
        "User-Agent": task_scheduler.USER_AGENT,
    }
    assert set(headers) - set(unsigned(headers)) == set(SIGNATURE_HEADERS)
    assert session.exited == 1  # the session (and its connections) is closed


def test_deliver_caps_the_connect_timeout_at_5_seconds(monotonic):
    session = FakeSession(FakeResponse(FakeRaw([])))
    request = parse_webhook_payload({"url": URL, "timeout_seconds": 30})
    deliverer_for(session)[0].deliver(request, CONTEXT)
    assert session.calls[0][2]["timeout"] == (5.0, 30)
    assert session.calls[0][2]["data"] is None


def test_deliver_turns_a_body_too_slow_into_a_retryable_timeout(monotonic):
    raw = FakeRaw([b"x"] * 100, clock=monotonic, per_read=1.0)
    response = FakeResponse(raw, status_code=200)
    request = parse_webhook_payload({"url": URL, "timeout_seconds": 2})
    result = deliverer_for(FakeSession(response))[0].deliver(request, CONTEXT)
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
    result = deliverer_for(FakeSession(response))[0].deliver(request, CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "reading the response failed: connection reset by peer"


class RaisingRaw:
    """A body whose read raises what urllib3 raises when the connection breaks or stalls."""

    def __init__(self, error):
        self.error = error

    def read1(self, amt=None, decode_content=None):
        raise self.error


def test_deliver_turns_a_broken_body_into_a_retryable_failure(monotonic):
    error = urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead(2 bytes read)")
    response = FakeResponse(RaisingRaw(error), status_code=200)
    result = deliverer_for(FakeSession(response))[0].deliver(
        parse_webhook_payload({"url": URL}), CONTEXT
    )
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error.startswith("reading the response failed: Connection broken")
    assert response.closed == 1


def test_deliver_turns_a_body_read_timeout_into_a_retryable_timeout(monotonic):
    error = urllib3.exceptions.ReadTimeoutError(None, URL, "Read timed out.")
    response = FakeResponse(RaisingRaw(error), status_code=200)
    request = parse_webhook_payload({"url": URL, "timeout_seconds": 4})
    result = deliverer_for(FakeSession(response))[0].deliver(request, CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "timed out after 4 s"
    assert response.closed == 1


def test_deliver_turns_a_request_timeout_into_a_retryable_failure(monotonic):
    request = parse_webhook_payload({"url": URL, "timeout_seconds": 1.5})
    session = FakeSession(raises=requests.ReadTimeout("read timed out"))
    result = deliverer_for(session)[0].deliver(request, CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "timed out after 1.5 s"
    assert session.exited == 1


def test_deliver_turns_a_connection_error_into_a_retryable_failure(monotonic):
    request = parse_webhook_payload({"url": URL})
    session = FakeSession(raises=requests.ConnectionError("Connection refused"))
    result = deliverer_for(session)[0].deliver(request, CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "connection failed: Connection refused"


def test_deliver_classifies_a_503_with_retry_after(monotonic):
    response = FakeResponse(FakeRaw([b"busy"]), status_code=503, headers={"Retry-After": "42"})
    result = deliverer_for(FakeSession(response))[0].deliver(
        parse_webhook_payload({"url": URL}), CONTEXT
    )
    assert result.succeeded is False
    assert result.retryable is True
    assert result.retry_after_seconds == 42.0
    assert result.status_code == 503


# --- deliver: the target's addresses ----------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "169.254.169.254",
        "100.64.1.1",
        "::1",
        "fe80::1",
        "fec0::1",
        "192.88.99.1",
    ],
)
def test_forbidden_resolution_fails_without_retry_and_never_connects(monotonic, address):
    secret = CountingSecret()
    session = FakeSession(FakeResponse(FakeRaw([])))
    deliverer, factory = deliverer_for(session, RecordingResolver(address), secret)
    result = deliverer.deliver(parse_webhook_payload({"url": URL}), CONTEXT)
    assert result.succeeded is False
    assert result.retryable is False
    assert result.error.startswith("refused: example.com resolves to ")
    assert address in result.error
    assert result.status_code is None
    assert factory.addresses == []
    assert session.calls == []
    assert secret.reads == 0


def test_forbidden_ip_literal_fails_without_a_lookup(monotonic):
    resolver = RecordingResolver(PUBLIC)
    deliverer, factory = deliverer_for(FakeSession(), resolver)
    result = deliverer.deliver(parse_webhook_payload({"url": "http://127.0.0.1:9/x"}), CONTEXT)
    assert result.retryable is False
    assert result.error.startswith("refused: ")
    assert resolver.calls == []
    assert factory.addresses == []


def test_one_forbidden_address_among_public_ones_refuses_the_delivery(monotonic):
    resolver = RecordingResolver(PUBLIC, "192.168.0.10")
    deliverer, factory = deliverer_for(FakeSession(), resolver)
    result = deliverer.deliver(parse_webhook_payload({"url": URL}), CONTEXT)
    assert result.retryable is False
    assert "192.168.0.10" in result.error
    assert factory.addresses == []


def test_loopback_is_delivered_to_only_when_loopback_is_allowed(monotonic):
    resolver = RecordingResolver("127.0.0.1")
    request = parse_webhook_payload({"url": "http://localhost:3000/hook"})
    strict, strict_factory = deliverer_for(FakeSession(FakeResponse(FakeRaw([]))), resolver)
    assert strict.deliver(request, CONTEXT).error.startswith("refused: ")
    assert strict_factory.addresses == []
    session = FakeSession(FakeResponse(FakeRaw([]), status_code=204))
    local, local_factory = deliverer_for(session, resolver, allow_loopback=True)
    assert local.deliver(request, CONTEXT).succeeded is True
    assert local_factory.addresses == ["127.0.0.1"]
    assert resolver.calls == [("localhost", 3000), ("localhost", 3000)]


def test_name_that_does_not_resolve_is_a_retryable_failure(monotonic):
    resolver = RecordingResolver(raises=NameNotResolved("example.com did not resolve"))
    secret = CountingSecret()
    deliverer, factory = deliverer_for(FakeSession(), resolver, secret)
    result = deliverer.deliver(parse_webhook_payload({"url": URL}), CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "example.com does not resolve"
    assert factory.addresses == []
    assert secret.reads == 0


def test_name_resolving_to_nothing_usable_is_a_retryable_failure(monotonic):
    deliverer, factory = deliverer_for(FakeSession(), RecordingResolver("not-an-address"))
    result = deliverer.deliver(parse_webhook_payload({"url": URL}), CONTEXT)
    assert result.retryable is True
    assert factory.addresses == []


# --- deliver: the signing secret --------------------------------------------------------------


def secrets_manager_failure(error):
    """What SecretsManagerSecret.get raises when Secrets Manager fails with `error`."""

    class FailingSecretsManager:
        def get_secret_value(self, **kwargs):
            raise error

    with pytest.raises(DependencyFailure) as caught:
        SecretsManagerSecret(FailingSecretsManager(), "arn:signing").get()
    return caught.value


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetSecretValue"
        ),
        EndpointConnectionError(endpoint_url="https://secretsmanager.eu-west-1.amazonaws.com"),
    ],
    ids=["client-error", "botocore-error"],
)
def test_unreadable_secret_is_a_retryable_failure_and_nothing_is_sent(monotonic, error):
    secret = CountingSecret(raises=secrets_manager_failure(error))
    session = FakeSession(FakeResponse(FakeRaw([])))
    deliverer, factory = deliverer_for(session, secret=secret)
    result = deliverer.deliver(parse_webhook_payload({"url": URL}), CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error == "the signing secret could not be read"
    assert secret.reads == 1
    assert factory.addresses == []
    assert session.calls == []


# --- deliver: pinning and signing -------------------------------------------------------------


def test_send_is_pinned_to_the_first_resolved_address_and_signed(monotonic):
    stamp = int(time.time()) - 2
    resolver = RecordingResolver(PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    session = FakeSession(FakeResponse(FakeRaw([b"ok"]), status_code=200))
    deliverer, factory = deliverer_for(session, resolver, unix_time=lambda: stamp + 0.75)
    request = parse_webhook_payload({"url": URL, "data": {"msg": "Hello from Lambda"}})
    context = ActionContext(task_id="t", run_id="t:3", attempt=2)
    result = deliverer.deliver(request, context)
    assert result.succeeded is True
    assert resolver.calls == [("example.com", 443)]
    assert factory.addresses == [PUBLIC]
    [(method, url, kwargs)] = session.calls
    assert (method, url) == ("POST", URL)  # the URL keeps its name; only the socket is pinned
    headers, body = kwargs["headers"], kwargs["data"]
    assert body == b'{"msg":"Hello from Lambda"}'
    assert headers["webhook-id"] == "t:3"
    assert headers["webhook-timestamp"] == str(stamp)
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == task_scheduler.USER_AGENT
    assert headers["User-Agent"] == f"serverless-task-scheduler/{task_scheduler.__version__}"
    verify(body, headers)
    assert Webhook(SECRET).verify(body, headers) == {"msg": "Hello from Lambda"}


def test_ipv6_first_address_is_the_one_pinned(monotonic):
    session = FakeSession(FakeResponse(FakeRaw([]), status_code=204))
    resolver = RecordingResolver("2606:2800:21f:cb07:6820:80da:af6b:8b2c", PUBLIC)
    deliverer, factory = deliverer_for(session, resolver)
    deliverer.deliver(parse_webhook_payload({"url": "http://example.com:8080/x"}), CONTEXT)
    assert factory.addresses == ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert resolver.calls == [("example.com", 8080)]


def test_delivery_without_data_is_signed_over_an_empty_body(monotonic):
    session = FakeSession(FakeResponse(FakeRaw([]), status_code=204))
    deliverer, _ = deliverer_for(session)
    deliverer.deliver(parse_webhook_payload({"url": URL, "method": "GET"}), CONTEXT)
    [(_, _, kwargs)] = session.calls
    assert kwargs["data"] is None
    assert "Content-Type" not in kwargs["headers"]
    verify(b"", kwargs["headers"])
    with pytest.raises(WebhookVerificationError):
        verify(b"null", kwargs["headers"])


def test_signature_fails_verification_for_another_body(monotonic):
    session = FakeSession(FakeResponse(FakeRaw([]), status_code=200))
    deliverer, _ = deliverer_for(session)
    deliverer.deliver(parse_webhook_payload({"url": URL, "data": {"amount": 10}}), CONTEXT)
    [(_, _, kwargs)] = session.calls
    verify(kwargs["data"], kwargs["headers"])
    with pytest.raises(WebhookVerificationError):
        verify(b'{"amount":1000}', kwargs["headers"])


def test_clients_headers_are_sent_alongside_the_signature(monotonic):
    session = FakeSession(FakeResponse(FakeRaw([]), status_code=200))
    deliverer, _ = deliverer_for(session)
    payload = {"url": URL, "data": [1], "headers": {"Authorization": "Bearer t", "X-A": "b"}}
    deliverer.deliver(parse_webhook_payload(payload), CONTEXT)
    headers = session.calls[0][2]["headers"]
    assert headers["Authorization"] == "Bearer t"
    assert headers["X-A"] == "b"
    verify(b"[1]", headers)


def test_webhook_id_is_the_run_id_and_stable_across_attempts(monotonic):
    ids = []
    for attempt in (1, 2, 3):
        session = FakeSession(FakeResponse(FakeRaw([]), status_code=503))
        deliverer, _ = deliverer_for(session)
        context = ActionContext(task_id="t", run_id="t:7", attempt=attempt)
        deliverer.deliver(parse_webhook_payload({"url": URL, "data": 1}), context)
        ids.append(session.calls[0][2]["headers"]["webhook-id"])
    assert ids == ["t:7", "t:7", "t:7"]


def test_malformed_secret_is_a_retryable_failure_and_nothing_is_sent(monotonic):
    secret = CountingSecret(raises=InvalidSecret("a signing secret starts with whsec_"))
    session = FakeSession(FakeResponse(FakeRaw([])))
    deliverer, factory = deliverer_for(session, secret=secret)
    result = deliverer.deliver(parse_webhook_payload({"url": URL}), CONTEXT)
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error.startswith("the signing secret is malformed")
    assert factory.addresses == []


@pytest.mark.parametrize("url", ISSUE_SPELLINGS)
def test_every_spelling_is_refused_at_sending_even_if_a_resolver_would_say_public(monotonic, url):
    # A resolver answering with a public address must not be consulted for these spellings.
    resolver = RecordingResolver(PUBLIC)
    deliverer, factory = deliverer_for(FakeSession(), resolver)
    result = deliverer.deliver(parse_webhook_payload({"url": url}), CONTEXT)
    assert result.succeeded is False
    assert result.retryable is False
    assert result.error.startswith("refused: ")
    assert factory.addresses == []


def test_an_http_date_retry_after_is_read_against_the_send_time(monotonic):
    sent_at = 1_900_000_000  # 2030-03-17 17:46:40 UTC
    response = FakeResponse(
        FakeRaw([b"busy"]),
        status_code=503,
        headers={"Retry-After": "Sun, 17 Mar 2030 17:48:10 GMT"},
    )
    deliverer, _ = deliverer_for(FakeSession(response), unix_time=lambda: sent_at)
    result = deliverer.deliver(parse_webhook_payload({"url": URL}), CONTEXT)
    assert result.retryable is True
    assert result.retry_after_seconds == 90.0
