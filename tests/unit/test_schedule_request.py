"""Unit tests for task_scheduler.schedule_request: the raw body of POST /schedule-task.

Contract sections 1 (body limits, fields) and 2 (400 / 413 / 415).
"""

import base64
import json
import re
from datetime import UTC, datetime

import pytest

from task_scheduler.actions import ActionRegistry, validators
from task_scheduler.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from task_scheduler.model import DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS
from task_scheduler.schedule_request import (
    MAX_BODY_BYTES,
    MAX_NESTING,
    ScheduleRequest,
    decode_event_body,
    is_json_media_type,
    parse_schedule_body,
)

pytestmark = pytest.mark.usefixtures("no_dns")

VALID = {
    "action": "webhook",
    "payload": {"url": "https://example.com/hooks/report", "data": {"msg": "Hello"}},
    "run_at": "2030-05-19T17:56:00Z",
}
# Before VALID's run_at, so that run_at is in the future when a request is checked.
NOW = datetime(2030, 5, 19, 17, 0, 0, tzinfo=UTC)


def public_resolver(host, port):
    """Stands in for DNS: every name is one public address (example.com is never looked up)."""
    return ["93.184.215.14"]


def registry():
    return validators(allow_loopback=False, resolver=public_resolver)


def longest_run(text: str, char: str) -> int:
    """The longest stretch of `char` in `text`: how much of a repeated input a problem quotes."""
    return max((len(run) for run in re.findall(re.escape(char) + "+", text)), default=0)


def encode(document) -> bytes:
    return json.dumps(document).encode("utf-8")


def problems_of(body, content_type="application/json"):
    with pytest.raises(InvalidRequest) as caught:
        parse_schedule_body(body, content_type)
    return [(p.field, p.problem) for p in caught.value.problems]


# --- a valid body -----------------------------------------------------------------------------


def test_valid_body_is_parsed_into_a_request():
    request = parse_schedule_body(encode(VALID), "application/json")
    assert request == ScheduleRequest(
        action="webhook",
        payload={"url": "https://example.com/hooks/report", "data": {"msg": "Hello"}},
        run_at="2030-05-19T17:56:00Z",
    )


def test_missing_fields_are_left_for_validation():
    request = parse_schedule_body(b"{}", "application/json")
    assert request == ScheduleRequest(action=None, payload=None, run_at=None)
    assert request.retry is None


def test_retry_is_a_known_field_and_is_kept_as_sent():
    document = {**VALID, "retry": {"max_attempts": 3}}
    request = parse_schedule_body(encode(document), "application/json")
    assert request.retry == {"max_attempts": 3}
    assert request.to_command(registry(), NOW).retry.max_attempts == 3


# --- Content-Type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "  application/json  ",
        "application/merge-patch+json",
        None,  # a missing Content-Type is accepted
    ],
)
def test_json_or_missing_content_type_is_accepted(content_type):
    assert parse_schedule_body(encode(VALID), content_type).action == "webhook"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
        "application/xml",
        "application/jsonp",
    ],
)
def test_non_json_content_type_is_unsupported(content_type):
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_schedule_body(encode(VALID), content_type)
    media_type = content_type.split(";")[0].strip()
    assert caught.value.message == f"Content-Type must be application/json, not '{media_type}'."


def test_long_content_type_is_quoted_at_most_200_characters():
    with pytest.raises(UnsupportedMediaType) as caught:
        parse_schedule_body(encode(VALID), "text/" + "p" * 100_000)
    assert longest_run(caught.value.message, "p") == 200 - len("text/")


def test_is_json_media_type():
    assert is_json_media_type("application/json;charset=UTF-8") is True
    assert is_json_media_type("application/vnd.api+json") is True
    assert is_json_media_type("application/json-seq") is False
    assert is_json_media_type("text/plain") is False


# --- size -------------------------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    """A valid JSON object of exactly `size` bytes."""
    base = encode({**VALID, "payload": {**VALID["payload"], "data": ""}})
    filler = size - len(base)
    assert filler >= 0
    body = encode({**VALID, "payload": {**VALID["payload"], "data": "x" * filler}})
    assert len(body) == size
    return body


def test_body_of_exactly_256_kib_is_accepted():
    assert MAX_BODY_BYTES == 256 * 1024
    request = parse_schedule_body(padded_body(MAX_BODY_BYTES), "application/json")
    assert len(request.payload["data"]) > 250_000


def test_body_one_byte_over_256_kib_is_too_large():
    with pytest.raises(PayloadTooLarge) as caught:
        parse_schedule_body(padded_body(MAX_BODY_BYTES + 1), "application/json")
    assert "262144" in caught.value.message


def test_too_large_body_is_rejected_before_parsing():
    # Not JSON at all, but the size is what is reported.
    with pytest.raises(PayloadTooLarge):
        parse_schedule_body(b"x" * (MAX_BODY_BYTES + 1), None)


# --- not JSON, not an object ------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, b"", b"   \n"])
def test_empty_body_is_invalid(body):
    assert problems_of(body) == [("body", "is empty: send a JSON object")]


@pytest.mark.parametrize("body", [b"{", b"{'action': 'webhook'}", b"action=webhook", b'{"a":1,}'])
def test_invalid_json_is_invalid_request(body):
    with pytest.raises(InvalidRequest) as caught:
        parse_schedule_body(body, "application/json")
    assert caught.value.message == "The request body is not valid JSON."
    [problem] = caught.value.problems
    assert problem.field == "body"
    assert problem.problem.startswith("is not valid JSON (")
    assert "line 1 column" in problem.problem


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "\xff\xfe"}',
        b'{"action": "\xed\xa0\x80"}',  # a surrogate encoded as if it were a character
        '{"action": "webhook"}'.encode("utf-16"),  # JSON, but not UTF-8
        '{"action": "webhook"}'.encode("utf-32"),
    ],
    ids=["invalid-bytes", "encoded-surrogate", "utf-16", "utf-32"],
)
def test_non_utf8_body_is_invalid_json(body):
    [(field, problem)] = problems_of(body)
    assert field == "body"
    assert problem == "is not valid JSON (it is not UTF-8 text)"


def test_utf8_byte_order_mark_is_ignored():
    assert parse_schedule_body(b"\xef\xbb\xbf" + encode(VALID), None).action == "webhook"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"], ids=["nan", "inf", "-inf"])
def test_non_standard_json_numbers_are_invalid_json(literal):
    # NaN and Infinity are not JSON (RFC 8259); contract section 2: a body that is not valid
    # JSON is a 400. Accepting them would later send `NaN` as a webhook body.
    body = (
        b'{"action": "webhook", "payload": {"url": "https://example.com", "data": '
        + literal
        + b'}, "run_at": "2030-05-19T17:56:00Z"}'
    )
    with pytest.raises(InvalidRequest) as caught:
        parse_schedule_body(body, "application/json")
    assert [p.field for p in caught.value.problems] == ["body"]


@pytest.mark.parametrize("body", [b"[]", b'"webhook"', b"42", b"null", b"true"])
def test_non_object_json_is_invalid(body):
    assert problems_of(body) == [("body", "must be a JSON object")]


def test_long_unknown_field_name_is_quoted_at_most_200_characters():
    [(field, problem)] = problems_of(encode({**VALID, "k" * 100_000: 1}))
    assert field == "k" * 200 + "..."
    assert problem == "is not a known field (action, payload, run_at, retry, timezone)"


def test_unknown_top_level_fields_are_each_named():
    document = {**VALID, "timezone_typo": "UTC", "extra": 1}
    assert problems_of(encode(document)) == [
        ("timezone_typo", "is not a known field (action, payload, run_at, retry, timezone)"),
        ("extra", "is not a known field (action, payload, run_at, retry, timezone)"),
    ]


def test_invalid_request_message_counts_several_problems():
    with pytest.raises(InvalidRequest) as caught:
        parse_schedule_body(encode({**VALID, "a": 1, "b": 2}), None)
    assert caught.value.message == "Invalid request: 2 fields are invalid."


def test_invalid_request_message_names_a_single_problem():
    with pytest.raises(InvalidRequest) as caught:
        parse_schedule_body(b"[]", None)
    assert caught.value.message == "Invalid request: body must be a JSON object."


# --- ScheduleRequest.to_command and the registry ----------------------------------------------


def validation_problems(request: ScheduleRequest):
    with pytest.raises(InvalidRequest) as caught:
        request.to_command(registry(), NOW)
    return [(p.field, p.problem) for p in caught.value.problems]


def test_valid_request_validates():
    parse_schedule_body(encode(VALID), None).to_command(registry(), NOW)


def test_missing_action_is_required_and_names_the_supported_ones():
    request = ScheduleRequest(action=None, payload=VALID["payload"], run_at=VALID["run_at"])
    assert validation_problems(request) == [("action", 'is required (supported: "webhook")')]


@pytest.mark.parametrize(
    ("action", "shown"),
    [
        ("email", '"email"'),
        ("Webhook", '"Webhook"'),
        (5, "5"),
        (["webhook"], '["webhook"]'),  # shown as the client wrote it: JSON, not Python
        (True, "true"),
    ],
)
def test_unknown_action_names_the_supported_ones(action, shown):
    request = ScheduleRequest(action=action, payload=VALID["payload"], run_at=VALID["run_at"])
    assert validation_problems(request) == [
        ("action", f'{shown} is not supported (supported: "webhook")')
    ]


def test_registry_lists_every_supported_action_sorted():
    class Fake:
        def __init__(self, name):
            self.name = name

    registry = ActionRegistry([Fake("webhook"), Fake("email"), Fake("sqs")])
    assert registry.names == ["email", "sqs", "webhook"]
    with pytest.raises(InvalidRequest) as caught:
        registry.get("sms")
    [problem] = caught.value.problems
    assert problem.field == "action"
    assert problem.problem == '"sms" is not supported (supported: "email", "sqs", "webhook")'
    assert registry.get("sqs").name == "sqs"


@pytest.mark.parametrize(
    ("action", "opening"),
    [("x" * 100_000, '"'), (["x" * 100_000], '["')],
    ids=["string", "list"],
)
def test_long_unknown_action_is_quoted_at_most_200_characters(action, opening):
    request = ScheduleRequest(action=action, payload=VALID["payload"], run_at=VALID["run_at"])
    [(field, problem)] = validation_problems(request)
    assert field == "action"
    assert problem.startswith(opening + "x" * (200 - len(opening)) + "... is not supported")


def test_missing_payload_is_required():
    request = ScheduleRequest(action="webhook", payload=None, run_at=VALID["run_at"])
    assert validation_problems(request) == [("payload", "is required")]


def test_refused_target_is_reported_by_the_registry_built_with_the_resolver():
    loopback = validators(allow_loopback=False, resolver=lambda host, port: ["127.0.0.1"])
    request = parse_schedule_body(encode(VALID), None)
    with pytest.raises(InvalidRequest) as caught:
        request.to_command(loopback, NOW)
    [problem] = caught.value.problems
    assert problem.field == "payload.url"
    assert problem.problem.startswith("is refused")
    # Local mode: loopback targets are allowed through the same registry.
    request.to_command(
        validators(allow_loopback=True, resolver=lambda host, port: ["127.0.0.1"]), NOW
    )


def test_payload_problems_come_from_the_action():
    request = ScheduleRequest(action="webhook", payload={"url": "ftp://x"}, run_at=VALID["run_at"])
    assert validation_problems(request) == [
        ("payload.url", "must be an absolute http:// or https:// URL")
    ]


# --- nesting and number limits ----------------------------------------------------------------


def with_data(data_json: bytes) -> bytes:
    """VALID with `payload.data` replaced by raw JSON text."""
    return (
        b'{"action": "webhook", "payload": {"url": "https://example.com", "data": '
        + data_json
        + b'}, "run_at": "2030-05-19T17:56:00Z"}'
    )


def nested_lists(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def test_body_nested_exactly_64_levels_is_accepted():
    # The body object is level 1, `payload` level 2, so `data` may hold 62 more levels.
    assert MAX_NESTING == 64
    request = parse_schedule_body(with_data(nested_lists(62)), "application/json")
    depth, value = 0, request.payload["data"]
    while isinstance(value, list):
        depth, value = depth + 1, (value[0] if value else None)
    assert depth == 62


@pytest.mark.parametrize(
    "data",
    [
        nested_lists(63),
        b'{"a":' * 63 + b"1" + b"}" * 63,
        nested_lists(900),
        nested_lists(5000),
    ],
    ids=["lists-65", "objects-65", "lists-902", "lists-5002"],
)
def test_body_nested_deeper_than_64_levels_is_invalid(data):
    assert problems_of(with_data(data)) == [("body", "nests deeper than 64 levels")]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        nested_lists(100_000),
        b'{"a":' * 50_000,  # 250,000 bytes: within the size limit
        b'{"action": "webhook", "payload": ' + b"[" * 100_000,
    ],
    ids=["unclosed-lists", "closed-lists", "unclosed-objects", "inside-a-valid-start"],
)
def test_absurdly_deep_body_is_invalid_not_a_recursion_error(body):
    with pytest.raises(InvalidRequest) as caught:
        parse_schedule_body(body, "application/json")
    assert [(p.field, p.problem) for p in caught.value.problems] == [
        ("body", "nests deeper than 64 levels")
    ]


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1E+309", b"[2.5e308]"])
def test_numbers_overflowing_to_infinity_are_invalid(number):
    [(field, problem)] = problems_of(with_data(number))
    assert field == "body"
    assert problem.startswith("is not valid JSON (")
    assert "too large" in problem


@pytest.mark.parametrize(
    ("number", "value"),
    [(b"1e308", 1e308), (b"-1.7976931348623157e308", -1.7976931348623157e308), (b"1e-400", 0.0)],
)
def test_large_but_finite_numbers_are_kept(number, value):
    assert parse_schedule_body(with_data(number), None).payload["data"] == value


def test_nan_is_still_refused_inside_nested_data():
    assert [field for field, _ in problems_of(with_data(b'{"x": [NaN]}'))] == ["body"]


@pytest.mark.parametrize("digits", [4301, 5000, 200_000])
def test_integer_too_long_to_convert_is_invalid_json_without_python_hints(digits):
    # Python refuses to read integers of more than 4300 digits; its error text names
    # sys.set_int_max_str_digits(), which is not for clients.
    [(field, problem)] = problems_of(with_data(b"-" + b"7" * digits))
    assert field == "body"
    assert problem == "is not valid JSON (a number has more than 4300 digits)"


def test_integer_of_4300_digits_is_kept():
    assert parse_schedule_body(with_data(b"7" * 4300), None).payload["data"] == int("7" * 4300)


# --- lone UTF-16 surrogates (contract section 1: a 400, never a 5xx) ---------------------------

SURROGATE_PROBLEM = (
    "holds a lone UTF-16 surrogate (\\ud800-\\udfff without its pair), which is not text"
)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({**VALID, "run_at": "2030-05-19T17:56:00Z\ud800"}, "run_at"),
        ({**VALID, "action": "\udfff"}, "action"),
        ({**VALID, "payload": {**VALID["payload"], "data": "\ud800"}}, "payload.data"),
        ({**VALID, "payload": {**VALID["payload"], "url": "https://x.org/\udc00"}}, "payload.url"),
        (
            {**VALID, "payload": {**VALID["payload"], "headers": {"X-A": "a\ud800"}}},
            "payload.headers.X-A",
        ),
        (
            {**VALID, "payload": {**VALID["payload"], "data": [1, {"m": ["", "\ud800"]}]}},
            "payload.data[1].m[1]",
        ),
        (
            {**VALID, "payload": {**VALID["payload"], "data": {"a\ud800": 1}}},
            "payload.data.a\\ud800",
        ),
        ({**VALID, "\ud800": 1}, "\\ud800"),
        ({**VALID, "retry": {"max_attempts": "\ud800"}}, "retry.max_attempts"),
    ],
    ids=["run_at", "action", "data", "url", "header", "list-item", "data-key", "top-key", "retry"],
)
def test_lone_surrogate_anywhere_is_invalid_naming_its_path(document, field):
    assert problems_of(encode(document)) == [(field, SURROGATE_PROBLEM)]


def test_every_lone_surrogate_is_named_in_document_order():
    data = {"b": "\ud800", "a": ["\udc00", "ok", "\ud800"]}
    document = {**VALID, "payload": {**VALID["payload"], "data": data}}
    assert [field for field, _ in problems_of(encode(document))] == [
        "payload.data.b",
        "payload.data.a[0]",
        "payload.data.a[2]",
    ]


def test_deep_path_to_a_lone_surrogate_is_quoted_at_most_200_characters():
    data = "\ud800"
    for _ in range(60):
        data = {"k" * 30: data}
    [(field, _)] = problems_of(encode({**VALID, "payload": {**VALID["payload"], "data": data}}))
    assert field.startswith("payload.data.kkk")
    assert len(field) == 200 + len("...")


def test_surrogate_pairs_are_text():
    # "\ud83d\ude00" is how JSON escapes one emoji: a pair, not lone surrogates.
    body = encode(VALID).replace(b'"Hello"', b'"\\ud83d\\ude00"')
    assert parse_schedule_body(body, None).payload["data"] == {"msg": "\U0001f600"}


def test_deep_document_is_refused_for_its_depth_before_its_surrogates():
    data = b"[" * 63 + b'"\\ud800"' + b"]" * 63
    assert problems_of(with_data(data)) == [("body", "nests deeper than 64 levels")]


# --- the API Gateway event's body ---------------------------------------------------------------


def test_event_body_as_text_is_its_utf8_bytes():
    assert decode_event_body('{"a": "é"}', False) == '{"a": "é"}'.encode()


@pytest.mark.parametrize("body", [None, ""])
def test_missing_event_body_is_empty(body):
    assert decode_event_body(body, True) == b""
    assert decode_event_body(body, False) == b""


def test_base64_event_body_is_decoded():
    assert decode_event_body(base64.b64encode(encode(VALID)).decode(), True) == encode(VALID)


@pytest.mark.parametrize("body", ["abc", "abcde", "ab!c", "YWJj\nZA==", "é"])
def test_base64_event_body_that_does_not_decode_is_invalid(body):
    with pytest.raises(InvalidRequest) as caught:
        decode_event_body(body, True)
    assert [p.field for p in caught.value.problems] == ["body"]


def test_text_event_body_with_a_lone_surrogate_is_invalid():
    with pytest.raises(InvalidRequest) as caught:
        decode_event_body('{"a": "\ud800"}', False)
    assert [(p.field, p.problem) for p in caught.value.problems] == [("body", "is not UTF-8 text")]


# --- retry.max_attempts -----------------------------------------------------------------------


def with_retry(retry) -> ScheduleRequest:
    return ScheduleRequest(
        action="webhook", payload=VALID["payload"], run_at=VALID["run_at"], retry=retry
    )


def retry_problems(retry):
    with pytest.raises(InvalidRequest) as caught:
        with_retry(retry).to_command(registry(), NOW)
    return [(p.field, p.problem) for p in caught.value.problems]


def test_max_attempts_defaults_to_5_without_retry():
    assert DEFAULT_MAX_ATTEMPTS == 5
    assert with_retry(None).to_command(registry(), NOW).retry.max_attempts == 5
    request = ScheduleRequest(action="webhook", payload=VALID["payload"], run_at=VALID["run_at"])
    assert request.to_command(registry(), NOW).retry.max_attempts == 5


def test_max_attempts_defaults_to_5_in_an_empty_retry_object():
    assert with_retry({}).to_command(registry(), NOW).retry.max_attempts == 5


@pytest.mark.parametrize("value", [1, 2, 5, 19, 20])
def test_max_attempts_from_1_to_20_is_accepted(value):
    assert MAX_MAX_ATTEMPTS == 20
    command = with_retry({"max_attempts": value}).to_command(registry(), NOW)
    assert command.retry.max_attempts == value


@pytest.mark.parametrize("value", [0, -1, 21, 100, "3", True, False, 3.5, 3.0, None, [3], {"n": 3}])
def test_max_attempts_outside_1_to_20_or_not_an_integer_is_rejected(value):
    assert retry_problems({"max_attempts": value}) == [
        ("retry.max_attempts", "must be a whole number from 1 to 20")
    ]


@pytest.mark.parametrize("retry", [5, "5", [5], True, 0, ""])
def test_retry_that_is_not_an_object_is_rejected(retry):
    assert retry_problems(retry) == [("retry", 'must be an object like {"max_attempts": 5}')]


def test_unknown_key_in_retry_is_rejected_and_named():
    assert retry_problems({"max_attempts": 3, "foo": 1}) == [
        ("retry.foo", "is not a known field (max_attempts)")
    ]


def test_long_unknown_key_in_retry_is_quoted_at_most_200_characters():
    [(field, _)] = retry_problems({"r" * 100_000: 1})
    assert field == "retry." + "r" * (200 - len("retry.")) + "..."


def test_every_unknown_key_in_retry_is_named():
    problems = retry_problems({"foo": 1, "backoff": "linear"})
    assert [field for field, _ in problems] == ["retry.foo", "retry.backoff"]


def test_retry_in_a_parsed_body_is_checked_by_to_command():
    body = encode({**VALID, "retry": {"max_attempts": 21}})
    request = parse_schedule_body(body, "application/json")  # the shape is checked later
    with pytest.raises(InvalidRequest) as caught:
        request.to_command(registry(), NOW)
    assert [p.field for p in caught.value.problems] == ["retry.max_attempts"]
