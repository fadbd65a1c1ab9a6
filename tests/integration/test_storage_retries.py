"""TaskStore when the SDK retries a write that succeeded but whose answer was lost: the retry
fails its condition, and the store must recognise its own earlier write (DynamoDB under moto)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from task_scheduler.errors import DependencyFailure
from task_scheduler.model import TaskStatus, TriggerKind, new_task
from task_scheduler.ports import Claim
from task_scheduler.storage import TaskStore
from tests.integration.conftest import TABLE_NAME, Aws
from tests.support.aws_fakes import AnswerLostClient

NOW = datetime(2030, 5, 19, 17, 0, tzinfo=UTC)
RUN_AT = datetime(2030, 5, 19, 17, 56, tzinfo=UTC)
TASK_ID = "123e4567-e89b-42d3-a456-426614174000"


def _task():
    return new_task(
        TASK_ID,
        "webhook",
        {"url": "https://example.com"},
        "2030-05-19T17:56:00Z",
        RUN_AT,
        recurring=False,
        now=NOW,
        trigger=TriggerKind.RULE,
    )


def test_create_survives_a_retried_write(aws: Aws) -> None:
    store = TaskStore(AnswerLostClient(aws.dynamodb, {"put_item"}), TABLE_NAME)
    store.create(_task())
    assert TaskStore(aws.dynamodb, TABLE_NAME).get(TASK_ID).status is TaskStatus.SCHEDULED


def test_a_claim_answers_with_the_task_it_won_or_the_task_as_it_is(aws: Aws) -> None:
    store = TaskStore(aws.dynamodb, TABLE_NAME)
    store.create(_task())

    won = store.claim(TASK_ID, "2030-05-19T17:56:00Z", RUN_AT)
    refused = store.claim(TASK_ID, "2030-05-19T17:56:00Z", RUN_AT)

    assert won.current is None
    assert won.claimed.status is TaskStatus.RUNNING
    assert won.claimed.payload == {"url": "https://example.com"}  # one write that also reads
    assert refused.claimed is None
    assert refused.current.status is TaskStatus.RUNNING
    assert store.claim("00000000-0000-4000-8000-000000000009", "2030-05-19T17:56:00Z", RUN_AT) == (
        Claim()
    )


def test_a_claim_whose_answer_was_lost_is_still_ours(aws: Aws) -> None:
    TaskStore(aws.dynamodb, TABLE_NAME).create(_task())
    store = TaskStore(AnswerLostClient(aws.dynamodb, {"update_item"}), TABLE_NAME)

    assert store.claim(TASK_ID, "2030-05-19T17:56:00Z", RUN_AT).claimed is not None
    # Another invocation's claim of the same occurrence is refused.
    other = TaskStore(aws.dynamodb, TABLE_NAME).claim(TASK_ID, "2030-05-19T17:56:00Z", RUN_AT)
    assert other.claimed is None


class AppliedButUnansweredClient(AnswerLostClient):
    """Applies each named write, then fails it as if every answer had been lost."""

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self._client, name)
        if name not in self._operations:
            return operation

        def applied_then_failed(**kwargs: Any) -> Any:
            operation(**kwargs)
            raise ClientError({"Error": {"Code": "InternalServerError"}}, name)

        return applied_then_failed


def test_a_claim_that_landed_without_any_answer_is_still_ours(aws: Aws) -> None:
    TaskStore(aws.dynamodb, TABLE_NAME).create(_task())
    store = TaskStore(AppliedButUnansweredClient(aws.dynamodb, {"update_item"}), TABLE_NAME)

    assert store.claim(TASK_ID, "2030-05-19T17:56:00Z", RUN_AT).claimed is not None
    assert TaskStore(aws.dynamodb, TABLE_NAME).get(TASK_ID).status is TaskStatus.RUNNING


def test_a_claim_that_did_not_land_still_fails_loudly(aws: Aws) -> None:
    TaskStore(aws.dynamodb, TABLE_NAME).create(_task())

    class Refusing(AnswerLostClient):
        def __getattr__(self, name: str) -> Any:
            if name == "update_item":

                def refused(**kwargs: Any) -> Any:
                    raise ClientError({"Error": {"Code": "InternalServerError"}}, name)

                return refused
            return getattr(self._client, name)

    store = TaskStore(Refusing(aws.dynamodb, set()), TABLE_NAME)
    with pytest.raises(DependencyFailure):
        store.claim(TASK_ID, "2030-05-19T17:56:00Z", RUN_AT)
    assert TaskStore(aws.dynamodb, TABLE_NAME).get(TASK_ID).status is TaskStatus.SCHEDULED


class RefusingClient:
    """Refuses every UpdateItem with DynamoDB's ValidationException, changing nothing."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name != "update_item":
            return getattr(self._client, name)

        def refuse(**_: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "test"}}, "UpdateItem"
            )

        return refuse


def test_a_validation_error_on_a_small_task_is_raised_and_never_ends_the_task(aws: Aws) -> None:
    # Only a task too large for DynamoDB is ended `failed` on a refused write; any other
    # ValidationException (a defect) leaves the task as it was and fails the invocation.
    TaskStore(aws.dynamodb, TABLE_NAME).create(_task())
    store = TaskStore(RefusingClient(aws.dynamodb), TABLE_NAME)

    with pytest.raises(DependencyFailure) as caught:
        store.claim(TASK_ID, "2030-05-19T17:56:00Z", RUN_AT)

    assert caught.value.code == "ValidationException"
    assert "larger than DynamoDB allows" not in caught.value.message
    assert TaskStore(aws.dynamodb, TABLE_NAME).get(TASK_ID).status is TaskStatus.SCHEDULED
