"""The stored-size rule's parts: DynamoDB's item-size count (task_items.item_size), the largest a
task's item can grow (largest_stored_item), and the bounds on what an attempt records."""

from datetime import UTC, datetime

import pytest

from task_scheduler.model import (
    MAX_RECORDED_ATTEMPTS,
    MAX_RECORDED_ERROR_BYTES,
    MAX_RECORDED_EXCERPT_BYTES,
    Attempt,
    TaskStatus,
    TriggerKind,
    new_task,
    recorded_error,
)
from task_scheduler.task_items import (
    MAX_STORED_TASK_BYTES,
    attributes,
    from_item,
    item_size,
    largest_stored_item,
    largest_stored_size,
    to_item,
)

NOW = datetime(2030, 5, 19, 17, 0, tzinfo=UTC)
TASK_ID = "123e4567-e89b-42d3-a456-426614174000"


def task(data="", recurring=False):
    return new_task(
        TASK_ID,
        "webhook",
        {"url": "https://example.com/hook", "data": data},
        "cron(0 9 * * ? *)" if recurring else "2030-05-19T17:56:00Z",
        datetime(2030, 5, 19, 17, 56, tzinfo=UTC),
        recurring=recurring,
        now=NOW,
    )


# --- item_size: DynamoDB's rules, erring large -------------------------------------------------


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"a": {"S": "hello"}}, 1 + 5),
        ({"name": {"S": "é€😀"}}, 4 + 2 + 3 + 4),  # strings and names by their UTF-8 bytes
        ({"n": {"N": "1000000000000000.0"}}, 1 + 18 + 1),  # a byte a character, plus one
        ({"flag": {"BOOL": True}, "nothing": {"NULL": True}}, 4 + 1 + 7 + 1),
        ({"b": {"B": b"\x00\x01\x02"}}, 1 + 3),
        ({"l": {"L": []}}, 1 + 3),
        ({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}, 1 + 3 + (1 + 2) + (1 + 2)),
        ({"m": {"M": {"k": {"S": "v"}, "kk": {"L": []}}}}, 1 + 3 + (1 + 1 + 1) + (1 + 2 + 3)),
        ({"ss": {"SS": ["a", "bc"]}}, 2 + 1 + 2),
        ({"a": {"S": "x"}, "bb": {"S": "yy"}}, (1 + 1) + (2 + 2)),
    ],
)
def test_item_size_follows_dynamodb_rules_on_the_large_side(item, size):
    assert item_size(item) == size


def test_item_size_counts_a_lone_surrogate_instead_of_failing():
    assert item_size({"s": {"S": "\ud800"}}) == 1 + 3


def test_item_size_counts_what_the_serializer_writes():
    item = attributes({"attempts": [{"attempt": 12, "error": "boom"}]})
    # 8 + list (3 + 1 + map (3 + (1 + 7 + 3) + (1 + 5 + 4)))
    assert item_size(item) == 8 + 3 + 1 + 3 + 11 + 10


# --- largest_stored_item: the most a task can take ----------------------------------------------


def test_the_largest_item_has_a_full_history_of_the_largest_attempts():
    largest = from_item(largest_stored_item(task()))
    assert len(largest.attempts) == MAX_RECORDED_ATTEMPTS
    for attempt in largest.attempts:
        assert len(attempt.error.encode()) == MAX_RECORDED_ERROR_BYTES
        assert len(attempt.response_excerpt.encode()) == MAX_RECORDED_EXCERPT_BYTES
        assert attempt.status_code is not None
    assert len(largest.last_error.encode()) == MAX_RECORDED_ERROR_BYTES
    assert largest.status.value in ("scheduled", "completed", "cancelled")  # the longest ones


def test_the_largest_item_keeps_what_the_client_sent():
    sent = task(data={"msg": "é" * 100})
    largest = from_item(largest_stored_item(sent))
    assert (largest.payload, largest.run_at, largest.action) == (
        sent.payload,
        sent.run_at,
        sent.action,
    )
    assert set(largest_stored_item(sent)) >= set(to_item(sent)) | {
        "claim_token",
        "due_shard",
        "expires_at",
    }


def test_a_task_grown_by_its_runs_never_exceeds_its_largest_size():
    sent = task(data="d" * 1000, recurring=True)
    error = "connection failed: " + "é" * 5000
    excerpt = "😀" * 5000
    grown = sent.with_changes(
        status=TaskStatus.SCHEDULED,
        trigger=TriggerKind.DIRECT,
        attempts=tuple(
            Attempt(n, "2030-05-19T17:56:00Z", 120_000, 503, error, excerpt)
            for n in range(10_000, 10_000 + MAX_RECORDED_ATTEMPTS)
        ),
        runs=10**9,
        run_attempts=19,
        last_error=recorded_error(error),
    )
    item = {
        **to_item(grown),
        **attributes(
            {"claim_token": TASK_ID, "due_shard": "3", "expires_at": 4_102_444_800},
        ),
    }
    assert item_size(item) <= largest_stored_size(sent)


def test_an_ordinary_256_kib_payload_always_fits():
    # Only what grows when re-serialised (numbers in exponent form) can be refused: a body at
    # the 256 KiB request limit, if it is all text, fits with its history.
    assert largest_stored_size(task(data="x" * 256 * 1024)) <= MAX_STORED_TASK_BYTES


def test_numbers_in_exponent_form_can_outgrow_the_limit():
    # 21,299 times "1e15" is a 106 KB request; each is stored as "1000000000000000.0".
    assert largest_stored_size(task(data=[1e15] * 21_299)) > MAX_STORED_TASK_BYTES


# --- what an attempt records ----------------------------------------------------------------------


def test_an_attempt_records_at_most_its_bounds_of_error_and_excerpt():
    attempt = Attempt(1, "2030-05-19T17:56:00Z", 5, 500, "e" * 10_000, "r" * 10_000)
    assert attempt.error == "e" * MAX_RECORDED_ERROR_BYTES
    assert attempt.response_excerpt == "r" * MAX_RECORDED_EXCERPT_BYTES


def test_clipping_never_cuts_a_character_in_two():
    # "€" is 3 bytes: as many whole ones as fit, none cut.
    attempt = Attempt(1, "2030-05-19T17:56:00Z", 5, response_excerpt="€" * 1000)
    assert attempt.response_excerpt == "€" * (MAX_RECORDED_EXCERPT_BYTES // 3)
    assert recorded_error("😀" * 1000) == "😀" * (MAX_RECORDED_ERROR_BYTES // 4)


def test_short_texts_and_none_are_kept_as_they_are():
    attempt = Attempt(1, "2030-05-19T17:56:00Z", 5, 200, None, "ok")
    assert (attempt.error, attempt.response_excerpt) == (None, "ok")
    assert recorded_error("timed out after 10 s") == "timed out after 10 s"


def test_a_lone_surrogate_is_recorded_as_a_replacement():
    assert recorded_error("bad \ud800 text") == "bad ? text"
