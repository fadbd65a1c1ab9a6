"""Tasks in DynamoDB. Every state change is a conditional write, so concurrent or repeated
invocations cannot run a task twice or move it backwards."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from task_scheduler.aws import dependency_failure, error_code
from task_scheduler.errors import DependencyFailure
from task_scheduler.model import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_RECORDED_ATTEMPTS,
    Attempt,
    Task,
    TaskStatus,
    TriggerKind,
)
from task_scheduler.timing import format_utc

# A `pending` row whose trigger never got armed disappears by itself after this long.
PENDING_ROW_TTL = timedelta(days=1)
# The `by_due` index: a task is in it from `scheduled` until it finishes (when `next_run_at` goes),
# spread over a few partitions so that no single one is hot.
DUE_INDEX = "by_due"
DUE_SHARDS = 4


def due_shard(task_id: str) -> str:
    try:
        return str(int(task_id[:8], 16) % DUE_SHARDS)
    except ValueError:  # not a UUID: only tests write such ids
        return "0"


@dataclass(frozen=True)
class DueEntry:
    """What the `by_due` index holds of a task: enough to decide whether it needs help."""

    task_id: str
    status: TaskStatus
    next_run_at: str
    updated_at: str


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))


class TaskStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # -- reads -----------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        item = self._read_item(task_id)
        return _from_item(item) if item else None

    def _read_item(self, task_id: str) -> dict[str, Any] | None:
        return self._call(
            "read the task",
            self._client.get_item,
            TableName=self._table,
            Key={"task_id": {"S": task_id}},
            ConsistentRead=True,
        ).get("Item")

    # -- scheduling ------------------------------------------------------------------------------

    def create_pending(self, task: Task, now: datetime) -> None:
        """Writes a new task as `pending`; it expires unless `mark_scheduled` follows."""
        item = _to_item(task)
        item["expires_at"] = {"N": _epoch(now + PENDING_ROW_TTL)}
        try:
            self._call(
                "store the task",
                self._client.put_item,
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(task_id)",
            )
        except _ConditionFailed:
            # The client retried a write that had succeeded but whose answer was lost.
            if not self._has_status(task.task_id, TaskStatus.PENDING):
                raise DependencyFailure("Could not store the task: its id is taken.") from None

    def mark_scheduled(self, task_id: str, trigger: TriggerKind, now: datetime) -> None:
        """`pending` → `scheduled` once its trigger is armed; the row no longer expires."""
        try:
            self._mark_scheduled(task_id, trigger, now)
        except _ConditionFailed:
            # A retried write whose first attempt succeeded (its answer lost) finds `scheduled`,
            # or a direct dispatch already claimed it. Anything else is a failure to undo.
            current = self.get(task_id)
            if current is None or current.status is TaskStatus.PENDING:
                raise DependencyFailure("Could not mark the task scheduled.") from None

    def _has_status(self, task_id: str, status: TaskStatus) -> bool:
        current = self.get(task_id)
        return current is not None and current.status is status

    def _mark_scheduled(self, task_id: str, trigger: TriggerKind, now: datetime) -> None:
        self._call(
            "mark the task scheduled",
            self._client.update_item,
            TableName=self._table,
            Key={"task_id": {"S": task_id}},
            UpdateExpression="SET #status = :scheduled, #trigger = :trigger, updated_at = :now, "
            "due_shard = :shard REMOVE expires_at",
            ConditionExpression="#status = :pending",
            ExpressionAttributeNames={"#status": "status", "#trigger": "trigger"},
            ExpressionAttributeValues={
                ":scheduled": {"S": TaskStatus.SCHEDULED.value},
                ":pending": {"S": TaskStatus.PENDING.value},
                ":trigger": {"S": trigger.value},
                ":now": {"S": format_utc(now)},
                ":shard": {"S": due_shard(task_id)},
            },
        )

    def delete_unacknowledged(self, task_id: str) -> None:
        """Removes a task whose scheduling failed, so the client never got its 201. It may be
        `scheduled` already (a write that succeeded but reported an error); not once it runs."""
        with contextlib.suppress(_ConditionFailed):
            self._call(
                "remove the unscheduled task",
                self._client.delete_item,
                TableName=self._table,
                Key={"task_id": {"S": task_id}},
                ConditionExpression="#status IN (:pending, :scheduled)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": TaskStatus.PENDING.value},
                    ":scheduled": {"S": TaskStatus.SCHEDULED.value},
                },
            )

    # -- running ---------------------------------------------------------------------------------

    def claim(self, task_id: str, due: str, now: datetime) -> bool:
        """`scheduled` → `running` for the occurrence `due`. False when another invocation has it,
        the task was cancelled, or that occurrence already ran."""
        token = str(uuid.uuid4())
        try:
            self._call(
                "claim the task",
                self._client.update_item,
                TableName=self._table,
                Key={"task_id": {"S": task_id}},
                UpdateExpression="SET #status = :running, updated_at = :now, claim_token = :token",
                ConditionExpression="#status = :scheduled AND next_run_at = :due",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":running": {"S": TaskStatus.RUNNING.value},
                    ":scheduled": {"S": TaskStatus.SCHEDULED.value},
                    ":due": {"S": due},
                    ":now": {"S": format_utc(now)},
                    ":token": {"S": token},
                },
            )
        except _ConditionFailed:
            # Lost to another invocation, unless it is our own earlier try whose answer was lost.
            return self._claim_token(task_id) == token
        except DependencyFailure:
            # Every answer lost: the claim may have landed. If it did and this is not known,
            # nobody would ever run the task; read it back once.
            if self._claim_token(task_id) == token:
                return True
            raise
        return True

    def _claim_token(self, task_id: str) -> str | None:
        item = self._read_item(task_id) or {}
        return item.get("claim_token", {}).get("S")

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
    ) -> bool:
        """Records a finished run of a `running` task: its attempt, its outcome, and either the
        next occurrence (back to `scheduled`) or the end state (which then expires by TTL).
        False when the task is no longer `running` (another invocation recorded it)."""
        attempts = [*task.attempts, attempt][-MAX_RECORDED_ATTEMPTS:]
        names = {"#status": "status"}
        values: dict[str, Any] = {
            ":status": {"S": status.value},
            ":running": {"S": TaskStatus.RUNNING.value},
            ":now": {"S": format_utc(now)},
            ":attempts": {"L": [_attempt_item(a) for a in attempts]},
            ":one": {"N": "1"},
        }
        sets = [
            "#status = :status",
            "updated_at = :now",
            "attempts = :attempts",
            "run_attempts = :zero",
        ]
        removes = []
        sets.append("runs = if_not_exists(runs, :zero) + :one")
        values[":zero"] = {"N": "0"}
        if error is None:
            removes.append("last_error")
        else:
            sets.append("last_error = :error")
            values[":error"] = {"S": error}
        if next_run_at is None:
            removes.append("next_run_at")
        else:
            sets.append("next_run_at = :next")
            values[":next"] = {"S": next_run_at}
        if status.finished:
            sets.append("expires_at = :expires")
            values[":expires"] = {"N": _epoch(now + retention)}
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        try:
            self._call(
                "record the run",
                self._client.update_item,
                TableName=self._table,
                Key={"task_id": {"S": task.task_id}},
                UpdateExpression=expression,
                ConditionExpression="#status = :running",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except _ConditionFailed:
            return False
        return True

    def overdue(self, shard: str, before: str, page_size: int = 100) -> Iterator[DueEntry]:
        """Tasks of one shard whose `next_run_at` is earlier than `before`, oldest first."""
        start_key = None
        while True:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "due_shard = :shard AND next_run_at < :before",
                "ExpressionAttributeValues": {":shard": {"S": shard}, ":before": {"S": before}},
                "Limit": page_size,
            }
            if start_key:
                arguments["ExclusiveStartKey"] = start_key
            page = self._call("list overdue tasks", self._client.query, **arguments)
            for item in page.get("Items", []):
                yield DueEntry(
                    task_id=item["task_id"]["S"],
                    status=TaskStatus(item["status"]["S"]),
                    next_run_at=item["next_run_at"]["S"],
                    updated_at=item["updated_at"]["S"],
                )
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return

    def record_retry(
        self, task: Task, attempt: Attempt, retry_at: str, now: datetime, error: str | None
    ) -> bool:
        """A `running` task's attempt failed and will be retried: back to `scheduled` for
        `retry_at`, in the same run. False when the task is no longer `running`."""
        attempts = [*task.attempts, attempt][-MAX_RECORDED_ATTEMPTS:]
        try:
            self._call(
                "record the attempt",
                self._client.update_item,
                TableName=self._table,
                Key={"task_id": {"S": task.task_id}},
                UpdateExpression="SET #status = :scheduled, updated_at = :now, "
                "attempts = :attempts, run_attempts = :run_attempts, next_run_at = :retry_at, "
                "last_error = :error",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":scheduled": {"S": TaskStatus.SCHEDULED.value},
                    ":running": {"S": TaskStatus.RUNNING.value},
                    ":now": {"S": format_utc(now)},
                    ":attempts": {"L": [_attempt_item(a) for a in attempts]},
                    ":run_attempts": {"N": str(task.run_attempts + 1)},
                    ":retry_at": {"S": retry_at},
                    ":error": {"S": error or "failed"},
                },
            )
        except _ConditionFailed:
            return False
        return True

    # -- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _call(what: str, operation: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return operation(**kwargs)
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise _ConditionFailed() from error
            raise dependency_failure(what, error, "DynamoDB") from error
        except BotoCoreError as error:
            raise dependency_failure(what, error, "DynamoDB") from error


class _ConditionFailed(Exception):
    """A conditional write found the task in another state."""


# -- item mapping (the payload is stored as JSON text: any JSON value, floats included) -----------


def _to_item(task: Task) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": {"S": task.task_id},
        "action": {"S": task.action},
        "payload": {"S": json.dumps(task.payload, separators=(",", ":"), ensure_ascii=False)},
        "run_at": {"S": task.run_at},
        "status": {"S": task.status.value},
        "created_at": {"S": task.created_at},
        "updated_at": {"S": task.updated_at},
        "recurring": {"BOOL": task.recurring},
        "runs": {"N": str(task.runs)},
        "attempts": {"L": [_attempt_item(a) for a in task.attempts]},
        "max_attempts": {"N": str(task.max_attempts)},
        "run_attempts": {"N": str(task.run_attempts)},
    }
    if task.next_run_at is not None:
        item["next_run_at"] = {"S": task.next_run_at}
    if task.trigger is not None:
        item["trigger"] = {"S": task.trigger.value}
    if task.last_error is not None:
        item["last_error"] = {"S": task.last_error}
    return item


def _attempt_item(attempt: Attempt) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "attempt": {"N": str(attempt.attempt)},
        "started_at": {"S": attempt.started_at},
        "duration_ms": {"N": str(attempt.duration_ms)},
    }
    if attempt.status_code is not None:
        fields["status_code"] = {"N": str(attempt.status_code)}
    if attempt.error is not None:
        fields["error"] = {"S": attempt.error}
    if attempt.response_excerpt is not None:
        fields["response_excerpt"] = {"S": attempt.response_excerpt}
    return {"M": fields}


def _from_item(item: dict[str, Any]) -> Task:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    attempts = []
    for entry in item.get("attempts", {}).get("L", []):
        fields = entry["M"]
        attempts.append(
            Attempt(
                attempt=int(fields["attempt"]["N"]),
                started_at=fields["started_at"]["S"],
                duration_ms=int(fields["duration_ms"]["N"]),
                status_code=int(fields["status_code"]["N"]) if "status_code" in fields else None,
                error=fields["error"]["S"] if "error" in fields else None,
                response_excerpt=fields["response_excerpt"]["S"]
                if "response_excerpt" in fields
                else None,
            )
        )
    trigger = text("trigger")
    return Task(
        task_id=item["task_id"]["S"],
        action=item["action"]["S"],
        payload=json.loads(item["payload"]["S"]),
        run_at=item["run_at"]["S"],
        status=TaskStatus(item["status"]["S"]),
        created_at=item["created_at"]["S"],
        updated_at=item["updated_at"]["S"],
        recurring=item.get("recurring", {}).get("BOOL", False),
        next_run_at=text("next_run_at"),
        trigger=TriggerKind(trigger) if trigger else None,
        attempts=tuple(attempts),
        runs=int(item.get("runs", {}).get("N", "0")),
        last_error=text("last_error"),
        max_attempts=int(item.get("max_attempts", {}).get("N", str(DEFAULT_MAX_ATTEMPTS))),
        run_attempts=int(item.get("run_attempts", {}).get("N", "0")),
    )
