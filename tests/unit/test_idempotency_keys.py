"""The edge of `Idempotency-Key` (contract section 1): which keys are valid, and what "the same
body" means."""

from __future__ import annotations

import pytest

from task_scheduler.errors import InvalidRequest
from task_scheduler.idempotency import fingerprint, parse_key


def test_no_header_is_no_key() -> None:
    assert parse_key(None) is None


@pytest.mark.parametrize(
    "key", ["a", "!", "~" * 255, "8e03978e-40d5-43e8-bc93-6894a57f9324", '"q"']
)
def test_visible_ascii_keys_of_1_to_255_characters_are_accepted(key: str) -> None:
    assert parse_key(key) == key


@pytest.mark.parametrize("key", ["", "a" * 256, " a", "a b", "\u00e9", "\x00", "\x7f", "\ud800"])
def test_other_keys_are_refused_naming_the_header(key: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_key(key)
    assert [problem.field for problem in refused.value.problems] == ["Idempotency-Key"]


def test_bodies_equal_as_json_have_one_fingerprint() -> None:
    assert fingerprint(b'{"a": 1, "b": [1.0, {"c": "x"}]}') == fingerprint(
        b'{"b":[1,{"c":"x"}],"a":1.0}'
    )
    assert fingerprint(b'{"a": "\\u00e9"}') == fingerprint('{"a": "\u00e9"}'.encode())


def test_bodies_that_differ_as_json_do_not() -> None:
    assert fingerprint(b'{"a": 1}') != fingerprint(b'{"a": 2}')
    assert fingerprint(b'{"a": 1}') != fingerprint(b'{"a": "1"}')
    assert fingerprint(b'{"a": 1.5}') != fingerprint(b'{"a": 1}')


def test_a_body_that_is_not_json_is_compared_byte_for_byte_without_failing() -> None:
    deep = b"[" * 100_000
    assert fingerprint(deep) == fingerprint(deep)
    assert fingerprint(b"not json") != fingerprint(b"not  json")
    assert fingerprint(None) == fingerprint(b"")
    assert fingerprint(b"\xff\xfe") != fingerprint(b"")
