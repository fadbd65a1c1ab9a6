"""Tasks stored before the stored-size rule (task_items.largest_stored_size) was enforced: one may
come so close to DynamoDB's item limit that a claim or a run record is refused. Such a task is
ended `failed` rather than left to fail the same way on every execution."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from task_scheduler import aws
from task_scheduler.errors import DependencyFailure
from task_scheduler.model import TaskStatus
from task_scheduler.task_items import MAX_STORED_TASK_BYTES, attributes, item_size, key
from task_scheduler.timing import format_utc

logger = Logger(child=True)

# The last error of a task ended because DynamoDB refused to let its item grow. Short: the write
# ending it must shrink the item (it removes at least next_run_at and due_shard, 41 bytes).
TOO_LARGE = "too large to store"
# The most one claim or record adds to an item (a claim token; an attempt and an error).
LARGEST_GROWTH = 4096


def outgrew_the_item_limit(item: dict[str, Any] | None) -> bool:
    """Whether a write DynamoDB refused (ValidationException) was refused for the item's size:
    only a task stored before the stored-size rule comes that close to the limit. Any other
    ValidationException is a defect, raised as it is, never a reason to end a task."""
    return item is not None and item_size(item) > MAX_STORED_TASK_BYTES - LARGEST_GROWTH


def end_oversized(
    write: Callable[..., bool],
    update_item: Any,
    task_id: str,
    what: str,
    condition: str,
    values: dict[str, Any],
    now: datetime,
) -> DependencyFailure:
    """DynamoDB refused to let the item grow. Were the task left as it is, every execution would
    fail the same way and the reconciler would hand it back forever; it is ended `failed`
    instead, out of the `by_due` index, its history dropped so that this write shrinks the item.
    `write` is the store's conditional write, `update_item` DynamoDB's UpdateItem. Returns the
    failure for the caller to raise: the invocation fails, and the one retried removes the
    finished task's trigger."""
    logger.error(
        "the task is too large for DynamoDB; ending it failed",
        extra={"task_id": task_id, "refused": what},
    )
    try:
        write(
            "end the oversized task",
            update_item,
            Key=key(task_id),
            UpdateExpression="SET #status = :failed, updated_at = :now, last_error = :error "
            "REMOVE attempts, next_run_at, due_shard, claim_token",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=attributes(
                {
                    **values,
                    ":failed": TaskStatus.FAILED.value,
                    ":now": format_utc(now),
                    ":error": TOO_LARGE,
                }
            ),
        )
    except DependencyFailure:
        logger.exception("could not end the oversized task", extra={"task_id": task_id})
    return DependencyFailure(
        f"Could not {what}: the task is larger than DynamoDB allows.", aws.VALIDATION
    )
