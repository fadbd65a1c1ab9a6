"""Unit tests for the webhook payload rules (contract section 1, `payload` for `webhook`)."""

import pytest

from task_scheduler.actions import ActionContext, validators
from task_scheduler.actions.webhook import (
    DEFAULT_METHOD,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_URL_LENGTH,
    WebhookPerformer,
    WebhookRequest,
    WebhookValidator,
    parse_webhook_payload,
)
from task_scheduler.addresses import NameNotResolved
from task_scheduler.errors import InvalidRequest
from tests.support.addresses import RecordingResolver

URL = "https://example.com/hooks/report"
PUBLIC = "93.184.215.14"

pytestmark = pytest.mark.usefixtures("no_dns")


def public_resolver(host, port):
    """Stands in for DNS: every name is one public address (example.com is never looked up)."""
    return [PUBLIC]


def problems_of(payload):
    with pytest.raises(InvalidRequest) as caught:
        parse_webhook_payload(payload)
    return [(p.field, p.problem) for p in caught.value.problems]


def single_problem(payload):
    problems = problems_of(payload)
    assert len(problems) == 1, problems
    return problems[0]


# --- defaults and a full payload --------------------------------------------------------------


def test_minimal_payload_gets_the_defaults():
    request = parse_webhook_payload({"url": URL})
    assert request == WebhookRequest(
        url=URL, method="POST", headers={}, timeout_seconds=10, has_data=False, data=None
    )
    assert DEFAULT_METHOD == "POST"
    assert DEFAULT_TIMEOUT_SECONDS == 10


def test_full_payload_is_kept():
    request = parse_webhook_payload(
        {
            "url": URL,
            "data": {"msg": "Hello from Lambda"},
            "method": "PUT",
            "headers": {"X-Tenant": "acme", "Authorization": "Bearer t0k3n"},
            "timeout_seconds": 25,
        }
    )
    assert request.url == URL
    assert request.method == "PUT"
    assert request.headers == {"X-Tenant": "acme", "Authorization": "Bearer t0k3n"}
    assert request.timeout_seconds == 25
    assert request.has_data is True
    assert request.data == {"msg": "Hello from Lambda"}


@pytest.mark.parametrize("data", [None, [], [1, "two"], 0, 3.5, "text", False, {}])
def test_any_json_value_is_data_including_null(data):
    request = parse_webhook_payload({"url": URL, "data": data})
    assert request.has_data is True
    assert request.data == data
    assert type(request.data) is type(data)


@pytest.mark.parametrize("payload", [None, "https://example.com", [URL], 5, True])
def test_payload_must_be_an_object(payload):
    assert problems_of(payload) == [("payload", "must be an object")]


# --- url --------------------------------------------------------------------------------------


def test_url_is_required():
    assert single_problem({}) == ("payload.url", "is required")
    assert single_problem({"data": 1}) == ("payload.url", "is required")


@pytest.mark.parametrize("url", ["", 5, ["https://example.com"], True, {"href": URL}])
def test_url_must_be_a_non_empty_string(url):
    assert single_problem({"url": url}) == ("payload.url", "must be a non-empty string")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "http://example.com:8080/path?q=1#frag",
        "HTTPS://EXAMPLE.COM/X",
        "https://[2001:db8::1]/hook",
    ],
)
def test_absolute_http_and_https_urls_are_accepted(url):
    assert parse_webhook_payload({"url": url}).url == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "example.com/hook",
        "/relative/path",
        "//example.com/hook",
        "mailto:ops@example.com",
    ],
)
def test_url_must_be_absolute_http_or_https(url):
    assert single_problem({"url": url}) == (
        "payload.url",
        "must be an absolute http:// or https:// URL",
    )


def test_url_must_name_a_host():
    assert single_problem({"url": "https:///path"}) == ("payload.url", "must name a host")


@pytest.mark.parametrize(
    "url", ["https://exa mple.com", "https://example.com/\n", "https://e\t.com"]
)
def test_url_must_not_contain_whitespace(url):
    assert single_problem({"url": url}) == (
        "payload.url",
        "must not contain spaces or control characters",
    )


@pytest.mark.parametrize("url", ["https://example.com:notaport/", "https://example.com:70000/"])
def test_url_with_a_bad_port_is_invalid(url):
    assert single_problem({"url": url}) == ("payload.url", "is not a valid URL")


def test_url_with_credentials_is_refused():
    field, problem = single_problem({"url": "https://user:secret@example.com/"})
    assert field == "payload.url"
    assert problem.startswith("must not contain credentials")


def long_url(length: int) -> str:
    base = "https://example.com/"
    return base + "a" * (length - len(base))


def test_url_of_2048_characters_is_accepted():
    assert MAX_URL_LENGTH == 2048
    url = long_url(2048)
    assert len(url) == 2048
    assert parse_webhook_payload({"url": url}).url == url


def test_url_of_2049_characters_is_refused():
    assert single_problem({"url": long_url(2049)}) == (
        "payload.url",
        "must be at most 2048 characters",
    )


# --- method -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "GET"])
def test_each_supported_method_is_accepted(method):
    assert parse_webhook_payload({"url": URL, "method": method}).method == method


@pytest.mark.parametrize(("method", "expected"), [("post", "POST"), ("Patch", "PATCH")])
def test_method_case_is_normalised(method, expected):
    assert parse_webhook_payload({"url": URL, "method": method}).method == expected


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "CONNECT", "", "P OST", 1])
def test_other_methods_are_refused(method):
    assert single_problem({"url": URL, "method": method}) == (
        "payload.method",
        "must be one of POST, PUT, PATCH, DELETE, GET",
    )


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [[], "X-A: 1", 5, [["X-A", "1"]]])
def test_headers_must_be_an_object(headers):
    assert single_problem({"url": URL, "headers": headers}) == (
        "payload.headers",
        "must be an object of string to string",
    )


@pytest.mark.parametrize("value", [1, None, True, ["a"], {"a": "b"}])
def test_header_values_must_be_strings(value):
    assert single_problem({"url": URL, "headers": {"X-Tenant": value}}) == (
        "payload.headers.X-Tenant",
        "must be a string",
    )


def test_empty_header_value_is_a_string():
    assert parse_webhook_payload({"url": URL, "headers": {"X-Empty": ""}}).headers == {
        "X-Empty": ""
    }


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "host",
        "HOST",
        "Content-Length",
        "content-length",
        "Content-Type",
        "content-type",
        "CONTENT-TYPE",
        "User-Agent",
        "user-agent",
        "webhook-id",
        "Webhook-Id",
        "webhook-timestamp",
        "WEBHOOK-TIMESTAMP",
        "webhook-signature",
        "Webhook-Signature",
    ],
)
def test_reserved_headers_are_refused_whatever_their_case(name):
    assert single_problem({"url": URL, "headers": {name: "x"}}) == (
        f"payload.headers.{name}",
        "is set by the scheduler and cannot be overridden",
    )


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "X-Webhook-Id",
        "webhook-idx",
        "Accept",
        "X-Content-Type",
        "Content-Typ",
        "X-Connection",
        "Tenant",
        "Expected",
    ],
)
def test_ordinary_headers_are_allowed(name):
    assert parse_webhook_payload({"url": URL, "headers": {name: "v"}}).headers == {name: "v"}


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "te",
        "Trailer",
        "Transfer-Encoding",
        "TRANSFER-ENCODING",
        "Upgrade",
        "Expect",
    ],
)
def test_connection_headers_are_refused_whatever_their_case(name):
    assert single_problem({"url": URL, "headers": {name: "x"}}) == (
        f"payload.headers.{name}",
        "is a connection header the scheduler manages",
    )


@pytest.mark.parametrize("name", ["", "X Tenant", "X:Tenant", "Ünicode", "X\nY"])
def test_header_names_must_be_tokens(name):
    assert single_problem({"url": URL, "headers": {name: "v"}}) == (
        f"payload.headers.{name}",
        "is not a valid header name",
    )


def test_header_name_with_a_trailing_newline_is_not_a_token():
    assert single_problem({"url": URL, "headers": {"X-A\n": "v"}}) == (
        "payload.headers.X-A\n",
        "is not a valid header name",
    )


UNSENDABLE = "must be Latin-1 text without control characters or surrounding spaces"


@pytest.mark.parametrize(
    "value",
    [
        "a\r\nX-Injected: 1",
        "a\nb",
        "a\rb",
        "a\0b",
        "a\x1bb",  # ESC
        "a\x7fb",  # DEL counts as a control character
        "a\x0bb",  # vertical tab
        "\x1f",
        "5 €",  # outside Latin-1
        "Zürich 🚀",
        "日本",
        " leading",
        "trailing ",
        "\tleading-tab",
        "trailing-tab\t",
        " ",
        "\t",
    ],
)
def test_header_values_must_be_sendable(value):
    assert single_problem({"url": URL, "headers": {"X-A": value}}) == (
        "payload.headers.X-A",
        UNSENDABLE,
    )


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc.def-ghi",
        "a\tb",  # a tab inside a value is allowed
        "two  spaces inside",
        "Zürich café",  # Latin-1 beyond ASCII (obs-text)
        "\xff\xa0x",
        "~!#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
        "x" * 4096,
    ],
)
def test_sendable_header_values_are_kept(value):
    assert parse_webhook_payload({"url": URL, "headers": {"X-A": value}}).headers == {"X-A": value}


def test_header_value_longer_than_4096_characters_is_refused():
    assert single_problem({"url": URL, "headers": {"X-A": "x" * 4097}}) == (
        "payload.headers.X-A",
        "must be at most 4096 characters",
    )


def test_header_given_twice_in_different_case_is_refused():
    assert single_problem({"url": URL, "headers": {"X-Tenant": "a", "x-tenant": "b"}}) == (
        "payload.headers.x-tenant",
        "is given twice (header names ignore case)",
    )


def test_every_bad_header_is_named():
    headers = {
        "Host": "evil",
        "X-Ok": "fine",
        "X-Num": 3,
        "content-type": "text/plain",
        "Connection": "close",
        "X-Bad": "a\nb",
        "webhook-signature": "v1,x",
    }
    assert problems_of({"url": URL, "headers": headers}) == [
        ("payload.headers.Host", "is set by the scheduler and cannot be overridden"),
        ("payload.headers.X-Num", "must be a string"),
        ("payload.headers.content-type", "is set by the scheduler and cannot be overridden"),
        ("payload.headers.Connection", "is a connection header the scheduler manages"),
        ("payload.headers.X-Bad", UNSENDABLE),
        ("payload.headers.webhook-signature", "is set by the scheduler and cannot be overridden"),
    ]


# --- timeout_seconds --------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [1, 1.5, 10, 29.9, 30])
def test_timeout_from_1_to_30_is_accepted(timeout):
    assert parse_webhook_payload({"url": URL, "timeout_seconds": timeout}).timeout_seconds == (
        timeout
    )


@pytest.mark.parametrize(
    "timeout",
    [0, 0.999, 30.001, 31, -5, "10", [10], True, False, float("nan"), float("inf")],
)
def test_timeout_outside_1_to_30_or_not_a_number_is_refused(timeout):
    assert single_problem({"url": URL, "timeout_seconds": timeout}) == (
        "payload.timeout_seconds",
        "must be a number from 1 to 30",
    )


# --- unknown fields and several problems at once ----------------------------------------------


def test_unknown_payload_fields_are_named():
    assert problems_of({"url": URL, "body": "x", "retries": 3}) == [
        ("payload.body", "is not a known field (url, data, method, headers, timeout_seconds)"),
        ("payload.retries", "is not a known field (url, data, method, headers, timeout_seconds)"),
    ]


def test_every_field_at_fault_is_named_in_one_error():
    payload = {
        "url": "ftp://example.com",
        "method": "HEAD",
        "headers": {"Host": "x"},
        "timeout_seconds": 0,
        "colour": "red",
    }
    assert [field for field, _ in problems_of(payload)] == [
        "payload.colour",
        "payload.url",
        "payload.method",
        "payload.headers.Host",
        "payload.timeout_seconds",
    ]


# --- the action -------------------------------------------------------------------------------


def test_webhook_action_validates_with_the_same_rules():
    action = WebhookValidator(resolver=public_resolver)
    assert action.name == "webhook"
    assert action.validate({"url": URL, "method": "get"}).method == "GET"
    with pytest.raises(InvalidRequest):
        action.validate({"url": "nope"})


def test_webhook_action_hands_the_parsed_request_to_its_deliverer():
    seen = []

    class Deliverer:
        def deliver(self, request, context):
            seen.append((request, context))
            return "result"

    context = ActionContext(task_id="t", run_id="t:1", attempt=1)
    result = WebhookPerformer(Deliverer()).execute({"url": URL, "data": [1]}, context)
    assert result == "result"
    assert seen == [(WebhookRequest(url=URL, has_data=True, data=[1]), context)]


# --- the target's addresses (contract section 5) ----------------------------------------------


def refusal(action, url):
    with pytest.raises(InvalidRequest) as caught:
        action.validate({"url": url})
    [problem] = caught.value.problems
    return problem


def test_public_target_is_accepted_and_looked_up_with_its_port():
    resolver = RecordingResolver(PUBLIC)
    action = WebhookValidator(resolver=resolver)
    assert action.validate({"url": URL}).url == URL
    action.validate({"url": "http://example.com/x"})
    action.validate({"url": "https://example.com:8443/x"})
    assert resolver.calls == [("example.com", 443), ("example.com", 80), ("example.com", 8443)]


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("64:ff9b::a00:1", "NAT64"),
        ("2002:7f00:1::", "6to4"),
    ],
)
def test_target_resolving_to_a_forbidden_address_is_refused(address, category):
    problem = refusal(WebhookValidator(resolver=RecordingResolver(address)), URL)
    assert problem.field == "payload.url"
    assert problem.problem.startswith("is refused: example.com resolves to ")
    assert category in problem.problem


def test_one_forbidden_address_among_public_ones_is_enough_to_refuse():
    action = WebhookValidator(resolver=RecordingResolver(PUBLIC, "10.0.0.7"))
    problem = refusal(action, URL)
    assert problem.problem.startswith("is refused")
    assert "10.0.0.7" in problem.problem


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/hook", "http://[::1]:8080/hook", "http://2130706433/", "http://10.0.0.1/"],
)
def test_forbidden_ip_literal_is_refused_without_a_lookup(url):
    resolver = RecordingResolver(PUBLIC)
    problem = refusal(WebhookValidator(resolver=resolver), url)
    assert problem.field == "payload.url"
    assert problem.problem.startswith("is refused")
    assert resolver.calls == []


def test_loopback_is_allowed_only_when_loopback_is_allowed():
    resolver = RecordingResolver("127.0.0.1")
    assert refusal(WebhookValidator(resolver=resolver), URL).problem.startswith("is refused")
    allowed = WebhookValidator(allow_loopback=True, resolver=resolver)
    assert allowed.validate({"url": URL}).url == URL
    assert allowed.validate({"url": "http://127.0.0.1:3000/hook"}).url


@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "::ffff:192.168.0.1"])
def test_allowing_loopback_does_not_allow_other_forbidden_addresses(address):
    action = WebhookValidator(allow_loopback=True, resolver=RecordingResolver(address))
    assert refusal(action, URL).problem.startswith("is refused")


def test_name_that_does_not_resolve_is_accepted_and_checked_again_when_sent():
    resolver = RecordingResolver(raises=NameNotResolved("no.such.example did not resolve"))
    action = WebhookValidator(resolver=resolver)
    request = action.validate({"url": "https://no.such.example/hook"})
    assert request.url == "https://no.such.example/hook"
    assert resolver.calls == [("no.such.example", 443)]


def test_target_is_not_looked_up_when_the_payload_is_invalid():
    resolver = RecordingResolver("127.0.0.1")
    with pytest.raises(InvalidRequest) as caught:
        WebhookValidator(resolver=resolver).validate({"url": URL, "method": "TRACE"})
    assert [p.field for p in caught.value.problems] == ["payload.method"]
    assert resolver.calls == []


def test_registry_passes_allow_loopback_and_the_resolver_to_the_webhook_action():
    resolver = RecordingResolver("127.0.0.1")
    strict = validators(allow_loopback=False, resolver=resolver).get("webhook")
    assert refusal(strict, URL).problem.startswith("is refused")
    local = validators(allow_loopback=True, resolver=resolver).get("webhook")
    assert local.validate({"url": URL}).url == URL
    assert resolver.calls == [("example.com", 443), ("example.com", 443)]


# --- quoting client input (contract section 2: at most 200 characters of it) -------------------


def test_long_unknown_field_name_is_quoted_at_most_200_characters():
    field, problem = single_problem({"url": URL, "u" * 100_000: 1})
    assert field == "payload." + "u" * (200 - len("payload.")) + "..."
    assert problem.startswith("is not a known field")


def test_long_header_name_is_quoted_at_most_200_characters():
    field, problem = single_problem({"url": URL, "headers": {"h" * 100_000: "v"}})
    assert field == "payload.headers." + "h" * (200 - len("payload.headers.")) + "..."
    assert problem == "is not a valid header name"


def test_refused_target_with_a_long_host_is_quoted_at_most_200_characters():
    host = "a" * 2000 + ".example"
    validator = validators(allow_loopback=False, resolver=RecordingResolver("127.0.0.1"))
    with pytest.raises(InvalidRequest) as caught:
        validator.get("webhook").validate({"url": f"https://{host}/"})
    [problem] = caught.value.problems
    assert problem.field == "payload.url"
    assert problem.problem.startswith("is refused: ")
    assert "a" * 201 not in problem.problem
