"""The stored-size rule (contract section 1): a task that could not be stored with its attempt
history is refused with 413 at scheduling, leaving nothing behind; one that fits runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from task_scheduler.due_index import DueIndex
from task_scheduler.errors import DependencyFailure
from task_scheduler.model import (
    MAX_RECORDED_ATTEMPTS,
    MAX_RECORDED_ERROR_BYTES,
    MAX_RECORDED_EXCERPT_BYTES,
    Attempt,
    Task,
    TaskStatus,
    TriggerKind,
    new_task,
)
from task_scheduler.storage import TaskStore
from task_scheduler.task_items import (
    MAX_STORED_TASK_BYTES,
    attributes,
    from_item,
    item_size,
    largest_stored_item,
    largest_stored_size,
    to_item,
)
from task_scheduler.timing import format_utc, parse_stored_utc
from tests.integration.conftest import TABLE_NAME, Aws, Handlers, body_of, on_both_backends
from tests.support.receiver import Answer, Receiver
from tests.support.timing import seconds_from_now

pytestmark = on_both_backends

URL = "https://example.com/hooks/report"


def _numbers_body(count: int, url: str = URL, run_at: str = "2099-05-19T17:56:00Z") -> str:
    """A body whose `data` is `count` times 1e15: 5 bytes each as sent, 19 once re-serialised
    ("1000000000000000.0"), so the stored task is almost four times the body."""
    numbers = ",".join(["1e15"] * count)
    return (
        f'{{"action":"webhook","payload":{{"url":"{url}","data":[{numbers}]}},"run_at":"{run_at}"}}'
    )


def _assert_refused_as_too_large(response: dict, aws: Aws) -> None:
    assert response["statusCode"] == 413, response["body"]
    body = body_of(response)
    assert set(body) == {"message"}
    assert "400,000 bytes" in body["message"]
    assert aws.table_is_empty()
    assert aws.triggers() == []


def test_a_small_body_that_would_not_fit_once_stored_is_refused(
    aws: Aws, handlers: Handlers
) -> None:
    raw = _numbers_body(21_299)
    assert len(raw.encode()) < 110_000  # well under the 256 KiB body limit
    response = handlers.api("POST", "/schedule-task", raw_body=raw)
    _assert_refused_as_too_large(response, aws)


def test_a_body_at_the_body_limit_that_would_not_fit_is_a_413_not_a_503(
    aws: Aws, handlers: Handlers
) -> None:
    raw = _numbers_body(52_000)
    assert 250 * 1024 < len(raw.encode()) <= 256 * 1024
    response = handlers.api("POST", "/schedule-task", raw_body=raw)
    _assert_refused_as_too_large(response, aws)


def _largest_accepted_count(url: str, run_at: str) -> int:
    """The most 1e15s a task's `data` can hold and still be accepted."""

    def fits(count: int) -> bool:
        task = new_task(
            TASK_ID,
            "webhook",
            {"url": url, "data": [1e15] * count},
            run_at,
            parse_stored_utc(run_at),
            recurring=False,
            now=datetime.now(UTC),
        )
        return largest_stored_size(task) <= MAX_STORED_TASK_BYTES

    low, high = 0, 21_299  # fits, does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def test_the_largest_accepted_task_runs_and_records_its_attempt(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    url = f"{receiver.url}/hooks/report"
    # The search takes seconds under load: it runs for a run_at of the same width a day away,
    # and the two requests below show the bound holds for the run_at the task gets.
    count = _largest_accepted_count(url, seconds_from_now(86_400))
    run_at = seconds_from_now(3)

    one_more = handlers.api(
        "POST", "/schedule-task", raw_body=_numbers_body(count + 1, url, run_at)
    )
    _assert_refused_as_too_large(one_more, aws)

    response = handlers.api("POST", "/schedule-task", raw_body=_numbers_body(count, url, run_at))
    assert response["statusCode"] == 201, response["body"]
    task_id = body_of(response)["task_id"]
    receiver.default = Answer(body=("é" * 4000).encode())  # more than an excerpt keeps

    assert handlers.run(task_id)["outcome"] == "completed"

    assert len(receiver.requests) == 1
    task = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert task["status"] == "completed"
    (attempt,) = task["attempts"]
    assert attempt["status_code"] == 200
    assert 0 < len(attempt["response_excerpt"].encode()) <= MAX_RECORDED_EXCERPT_BYTES


# --- the attempt history at its largest, under moto ---------------------------------------------

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
NOW = datetime(2030, 5, 19, 17, 0, tzinfo=UTC)
FIRST_RUN = datetime(2030, 5, 19, 17, 56, tzinfo=UTC)


def _recurring_task_of_largest_size(size: int) -> Task:
    def with_data(data: str) -> Task:
        return new_task(
            TASK_ID,
            "webhook",
            {"url": URL, "data": data},
            "cron(* * * * ? *)",
            FIRST_RUN,
            recurring=True,
            now=NOW,
        )

    return with_data("x" * (size - largest_stored_size(with_data(""))))


def test_a_task_at_the_limit_records_a_full_history_of_the_largest_attempts(aws: Aws) -> None:
    task = _recurring_task_of_largest_size(MAX_STORED_TASK_BYTES)
    assert largest_stored_size(task) == MAX_STORED_TASK_BYTES
    store = TaskStore(aws.dynamodb, TABLE_NAME)
    store.create(task.with_changes(trigger=TriggerKind.QUEUE))
    error, excerpt = "connection failed: " + "é" * 5000, "😀" * 5000
    due = FIRST_RUN

    for number in range(1, MAX_RECORDED_ATTEMPTS + 6):
        current = store.claim(TASK_ID, format_utc(due), due).claimed
        attempt = Attempt(number, format_utc(due), 120_000, 503, error, excerpt)
        due += timedelta(minutes=1)
        assert store.record_retry(current, attempt, format_utc(due), due, error)
    claimed = store.claim(TASK_ID, format_utc(due), due).claimed
    last = Attempt(10**6, format_utc(due), 120_000, 410, error, excerpt)
    assert store.record_run(
        claimed,
        TaskStatus.FAILED,
        last,
        due,
        next_run_at=None,
        error=error,
        retention=timedelta(days=3650),
    )

    item = aws.item(TASK_ID)
    stored = from_item(item)
    assert stored.status is TaskStatus.FAILED
    assert len(stored.attempts) == MAX_RECORDED_ATTEMPTS
    assert len(stored.last_error.encode()) <= MAX_RECORDED_ERROR_BYTES
    # What was really stored stays within what scheduling counted on, attribute by attribute.
    assert item_size(item) <= MAX_STORED_TASK_BYTES
    assert set(item) <= set(largest_stored_item(task))


# --- a task stored before the rule is ended, never wedged -----------------------------------------


def _legacy_item_at_moto_limit(aws: Aws, **changes: Any) -> dict[str, Any]:
    """Writes a task as large as moto lets an item be (a row stored before the stored-size rule),
    by finding the largest `data` PutItem accepts."""

    def item_with(length: int) -> dict[str, Any]:
        task = new_task(
            TASK_ID,
            "webhook",
            {"url": URL, "data": "x" * length},
            "2030-05-19T17:56:00Z",
            FIRST_RUN,
            recurring=False,
            now=NOW,
        ).with_changes(trigger=TriggerKind.DIRECT, **changes)
        return {**to_item(task), **attributes({"due_shard": "0"})}

    low, high = 300_000, 420_000  # fits, does not
    while high - low > 1:
        middle = (low + high) // 2
        try:
            aws.dynamodb.put_item(TableName=TABLE_NAME, Item=item_with(middle))
            low = middle
        except ClientError:
            high = middle
    aws.dynamodb.put_item(TableName=TABLE_NAME, Item=item_with(low))
    return item_with(low)


def _assert_ended_failed(aws: Aws) -> None:
    item = aws.item(TASK_ID)
    task = from_item(item)
    assert task.status is TaskStatus.FAILED
    assert task.last_error == "too large to store"
    assert task.next_run_at is None  # out of the by_due index: the reconciler lets it be
    assert "due_shard" not in item
    assert "claim_token" not in item
    assert list(DueIndex(aws.dynamodb, TABLE_NAME).overdue("2999-01-01T00:00:00Z")) == []


def test_a_stored_task_too_large_to_claim_is_ended_failed_not_left_scheduled(
    aws: Aws, handlers: Handlers
) -> None:
    _legacy_item_at_moto_limit(
        aws, status=TaskStatus.SCHEDULED, next_run_at=format_utc(datetime.now(UTC))
    )

    with pytest.raises(DependencyFailure):
        handlers.run(TASK_ID)  # the claim cannot be written; the invocation fails

    _assert_ended_failed(aws)
    # Lambda's retry of the failed invocation finds it finished and does nothing.
    assert handlers.run(TASK_ID)["outcome"] == "not_scheduled"


def test_a_stored_task_too_large_to_record_its_run_is_ended_failed(aws: Aws) -> None:
    _legacy_item_at_moto_limit(
        aws,
        status=TaskStatus.RUNNING,
        next_run_at="2030-05-19T17:56:00Z",
        updated_at="2030-05-19T17:56:00Z",
    )
    store = TaskStore(aws.dynamodb, TABLE_NAME)
    running = store.get(TASK_ID)
    attempt = Attempt(1, "2030-05-19T17:56:00Z", 80, 200, response_excerpt="r" * 1000)

    with pytest.raises(DependencyFailure):
        store.record_run(
            running,
            TaskStatus.COMPLETED,
            attempt,
            FIRST_RUN,
            next_run_at=None,
            error=None,
            retention=timedelta(days=30),
        )

    _assert_ended_failed(aws)
