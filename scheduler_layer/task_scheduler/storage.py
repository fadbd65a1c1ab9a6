"""Tasks in DynamoDB (the TaskRepository). Every state change is a conditional write, so
concurrent or repeated invocations cannot run a task twice or move it backwards."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from task_scheduler import aws, oversized_tasks
from task_scheduler.due_index import due_shard
from task_scheduler.errors import DependencyFailure
from task_scheduler.model import (
    Attempt,
    Task,
    TaskStatus,
    TriggerKind,
    recorded_error,
)
from task_scheduler.ports import Claim
from task_scheduler.task_items import (
    attributes,
    epoch,
    from_item,
    key,
    plain,
    recorded_attempts,
    run_record_update,
    to_item,
)
from task_scheduler.timing import format_utc

logger = Logger(child=True)

_STATUS = {"#status": "status"}
_TRIGGER = {"#trigger": "trigger"}  # a reserved word


def _names(update: str) -> dict[str, str]:
    return {**_STATUS, **_TRIGGER} if "#trigger" in update else _STATUS


def _claim_token(item: dict[str, Any]) -> str | None:
    """The token of the last claim or write while running (each stamps a fresh one)."""
    return plain(item).get("claim_token")


class TaskStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- reads -----------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        item = self._read_item(task_id)
        return from_item(item) if item else None

    def _read_item(self, task_id: str) -> dict[str, Any] | None:
        return self._call(
            "read the task",
            self._client.get_item,
            TableName=self._table,
            Key=key(task_id),
            ConsistentRead=True,
        ).get("Item")

    # -- scheduling ------------------------------------------------------------------------------

    def create(self, task: Task) -> None:
        """Writes a new task, `scheduled`, once its first occurrence is armed (the row is the
        acknowledgement: a trigger whose row never came finds no task and does nothing)."""
        item = {**to_item(task), **attributes({"due_shard": due_shard(task.task_id)})}
        written = self._write(
            "store the task",
            self._client.put_item,
            Item=item,
            ConditionExpression="attribute_not_exists(task_id)",
        )
        # Refused: a retry of this very write (a fresh UUID is never taken) whose answer was lost.
        if not written and self.get(task.task_id) is None:
            raise DependencyFailure("Could not store the task.")

    def delete_unacknowledged(self, task_id: str) -> None:
        """Removes a task whose scheduling failed, so the client never got its 201 (a write that
        succeeded but reported an error); not once it runs. (`pending`: rows of older versions.)
        No table (a deployment being torn down, say) means no row: nothing to remove."""
        try:
            self._write(
                "remove the unscheduled task",
                self._client.delete_item,
                Key=key(task_id),
                ConditionExpression="#status IN (:pending, :scheduled)",
                ExpressionAttributeNames=_STATUS,
                ExpressionAttributeValues=attributes(
                    {":pending": TaskStatus.PENDING.value, ":scheduled": TaskStatus.SCHEDULED.value}
                ),
            )
        except DependencyFailure as failure:
            if failure.code != aws.NOT_FOUND:
                raise

    # -- cancelling ------------------------------------------------------------------------------

    def cancel(self, task_id: str, now: datetime, retention: timedelta) -> bool:
        """`scheduled` or `paused` → `cancelled`: out of the `by_due` index, and expiring after
        `retention` like any finished task. False when the task is neither (a claim came
        first)."""
        return self._write(
            "cancel the task",
            self._client.update_item,
            Key=key(task_id),
            UpdateExpression="SET #status = :cancelled, updated_at = :now, expires_at = :expires "
            "REMOVE next_run_at, due_shard",
            ConditionExpression="#status IN (:scheduled, :paused)",
            ExpressionAttributeNames=_STATUS,
            ExpressionAttributeValues=attributes(
                {
                    ":cancelled": TaskStatus.CANCELLED.value,
                    ":scheduled": TaskStatus.SCHEDULED.value,
                    ":paused": TaskStatus.PAUSED.value,
                    ":now": format_utc(now),
                    ":expires": epoch(now + retention),
                }
            ),
        )

    # -- running ---------------------------------------------------------------------------------

    def claim(self, task_id: str, due: str, now: datetime) -> Claim:
        """`scheduled` → `running` for the occurrence `due`, in one write that also reads: the
        task claimed, or, refused, the task as it is (another invocation has it, it was
        cancelled or changed, that occurrence already ran, or there is no such task)."""
        token = str(uuid.uuid4())
        condition = "#status = :scheduled AND next_run_at = :due"
        try:
            answer = self._call(
                "claim the task",
                self._client.update_item,
                TableName=self._table,
                Key=key(task_id),
                UpdateExpression="SET #status = :running, updated_at = :now, claim_token = :token",
                ConditionExpression=condition,
                ExpressionAttributeNames=_STATUS,
                ExpressionAttributeValues=attributes(
                    {
                        ":running": TaskStatus.RUNNING.value,
                        ":scheduled": TaskStatus.SCHEDULED.value,
                        ":due": due,
                        ":now": format_utc(now),
                        ":token": token,
                    }
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except DependencyFailure as failure:
            if failure.code == aws.CONDITION_FAILED:
                current = from_item(failure.item) if failure.item else None
                # Our own earlier try, retried by the client after its answer was lost?
                if current is not None and _claim_token(failure.item) == token:
                    return Claim(claimed=current)
                return Claim(current=current)
            if failure.code == aws.VALIDATION and self._outgrew_the_item_limit(task_id):
                # Refused outright, never applied: the item is too large to take the claim.
                raise self._end_oversized(
                    task_id,
                    "claim the task",
                    condition,
                    {":scheduled": TaskStatus.SCHEDULED.value, ":due": due},
                    now,
                ) from failure
            # Every answer lost: the claim may have landed. If it did and this is not known,
            # nobody would ever run the task; read it back once.
            item = self._read_item(task_id)
            if item and _claim_token(item) == token:
                return Claim(claimed=from_item(item))
            raise
        return Claim(claimed=from_item(answer["Attributes"]))

    def record_run(
        self,
        task: Task,
        status: TaskStatus,
        attempt: Attempt,
        now: datetime,
        *,
        next_run_at: str | None,
        error: str | None,
        retention: timedelta,
        trigger: TriggerKind | None = None,
    ) -> bool:
        """Records a finished run of a `running` task: its attempt, its outcome, and either the
        next occurrence (back to `scheduled`, armed by `trigger`) or the end state (which then
        expires by TTL). False when the task is no longer `running` (another invocation
        recorded it)."""
        expression, values = run_record_update(
            task,
            status,
            attempt,
            now,
            next_run_at=next_run_at,
            error=error,
            retention=retention,
            trigger=trigger,
        )
        return self._write_while_running(task.task_id, "record the run", expression, values, now)

    def record_retry(
        self, task: Task, attempt: Attempt, retry_at: str, now: datetime, error: str | None
    ) -> bool:
        """A `running` task's attempt failed and will be retried: back to `scheduled` for
        `retry_at`, in the same run. False when the task is no longer `running`."""
        return self._write_while_running(
            task.task_id,
            "record the attempt",
            "SET #status = :scheduled, updated_at = :now, attempts = :attempts, "
            "run_attempts = :run_attempts, next_run_at = :retry_at, last_error = :error",
            {
                ":scheduled": TaskStatus.SCHEDULED.value,
                ":running": TaskStatus.RUNNING.value,
                ":now": format_utc(now),
                ":attempts": recorded_attempts(task, attempt),
                ":run_attempts": task.run_attempts + 1,
                ":retry_at": retry_at,
                ":error": recorded_error(error) or "failed",
            },
            now,
        )

    def _write_while_running(
        self, task_id: str, what: str, update: str, values: dict[str, Any], now: datetime
    ) -> bool:
        """A write conditional on `running` (`update` begins with SET). It also stamps a fresh
        token, so that an SDK retry refused because the first try had landed (its answer lost) is
        known for ours."""
        assert update.startswith("SET ")
        token = str(uuid.uuid4())
        try:
            self._call(
                what,
                self._client.update_item,
                TableName=self._table,
                Key=key(task_id),
                UpdateExpression=update.replace("SET ", "SET claim_token = :token, ", 1),
                ConditionExpression="#status = :running",
                ExpressionAttributeNames=_names(update),
                ExpressionAttributeValues=attributes({**values, ":token": token}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except DependencyFailure as failure:
            if failure.code == aws.CONDITION_FAILED:
                return failure.item is not None and _claim_token(failure.item) == token
            if failure.code != aws.VALIDATION or not self._outgrew_the_item_limit(task_id):
                raise
            raise self._end_oversized(
                task_id, what, "#status = :running", {":running": values[":running"]}, now
            ) from failure
        return True

    def _outgrew_the_item_limit(self, task_id: str) -> bool:
        return oversized_tasks.outgrew_the_item_limit(self._read_item(task_id))

    def _end_oversized(
        self, task_id: str, what: str, condition: str, values: dict[str, Any], now: datetime
    ) -> DependencyFailure:
        return oversized_tasks.end_oversized(
            self._write, self._client.update_item, task_id, what, condition, values, now
        )

    # -- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _call(what: str, operation: Any, **kwargs: Any) -> dict[str, Any]:
        return aws.call("DynamoDB", what, operation, **kwargs)

    def _write(self, what: str, operation: Any, **kwargs: Any) -> bool:
        """A conditional write: False when its condition failed (nothing was changed)."""
        answer = aws.conditional_write(what, operation, TableName=self._table, **kwargs)
        return answer is not None
