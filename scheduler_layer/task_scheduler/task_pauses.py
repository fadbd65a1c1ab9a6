"""Pausing and resuming recurring tasks in DynamoDB (contract section 3): `scheduled` ⇄ `paused`,
each a conditional write, so it and the execute function's claim (conditional on `scheduled`)
cannot both win."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from task_scheduler import aws
from task_scheduler.due_index import due_shard
from task_scheduler.model import Task, TaskStatus, TriggerKind
from task_scheduler.task_items import attributes, from_item, key
from task_scheduler.timing import format_utc

_STATUS = {"#status": "status", "#trigger": "trigger"}


class TaskPausing(Protocol):
    def pause(self, task_id: str, now: datetime) -> Task | None:
        """A recurring `scheduled` task → `paused`, out of the `by_due` index: the task as
        paused (with the trigger it has), or None when it is not a recurring task waiting (a
        claim or a cancel came first)."""
        ...

    def resume(self, task_id: str, next_run_at: str, trigger: TriggerKind, now: datetime) -> bool:
        """`paused` → `scheduled` for `next_run_at`, whose trigger is armed; False when it is not
        `paused` (a cancel or another resume came first)."""
        ...


class TaskPauses:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def pause(self, task_id: str, now: datetime) -> Task | None:
        # `next_run_at` stays, only to keep the task's place in listings (task_listing); the
        # claim needs `scheduled`, so nothing runs it.
        answer = self._write(
            "pause the task",
            Key=key(task_id),
            UpdateExpression="SET #status = :paused, updated_at = :now REMOVE due_shard",
            ConditionExpression="#status = :scheduled AND recurring = :true",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=attributes(
                {
                    ":paused": TaskStatus.PAUSED.value,
                    ":scheduled": TaskStatus.SCHEDULED.value,
                    ":true": True,
                    ":now": format_utc(now),
                }
            ),
            ReturnValues="ALL_NEW",
        )
        return from_item(answer["Attributes"]) if answer is not None else None

    def resume(self, task_id: str, next_run_at: str, trigger: TriggerKind, now: datetime) -> bool:
        # A new occurrence: the attempts of one interrupted by the pause are not carried over.
        answer = self._write(
            "resume the task",
            Key=key(task_id),
            UpdateExpression="SET #status = :scheduled, next_run_at = :next, due_shard = :shard, "
            "#trigger = :trigger, run_attempts = :zero, updated_at = :now",
            ConditionExpression="#status = :paused",
            ExpressionAttributeNames=_STATUS,
            ExpressionAttributeValues=attributes(
                {
                    ":scheduled": TaskStatus.SCHEDULED.value,
                    ":paused": TaskStatus.PAUSED.value,
                    ":next": next_run_at,
                    ":shard": due_shard(task_id),
                    ":trigger": trigger.value,
                    ":zero": 0,
                    ":now": format_utc(now),
                }
            ),
        )
        return answer is not None

    def _write(self, what: str, **kwargs: Any) -> dict[str, Any] | None:
        """The update's answer; None when its condition was not met."""
        return aws.conditional_write(
            what, self._client.update_item, TableName=self._table, **kwargs
        )
