"""Tasks as DynamoDB items, through boto3's own TypeSerializer / TypeDeserializer. The payload is
stored as JSON text, so any JSON value (floats included) round-trips as the client sent it."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from task_scheduler.model import DEFAULT_MAX_ATTEMPTS, Attempt, Task, TaskStatus, TriggerKind

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def attribute(value: Any) -> dict[str, Any]:
    """One value in DynamoDB's typed form (`{"S": ...}`, `{"N": ...}`, `{"L": [...]}`, ...)."""
    return _SERIALIZER.serialize(value)


def attributes(values: dict[str, Any]) -> dict[str, Any]:
    """Several values by name: an item, a key or an expression's values."""
    return {name: attribute(value) for name, value in values.items()}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """An item back to Python values (numbers become int: the scheduler stores only whole ones)."""
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [_plain(entry) for entry in value]
    if isinstance(value, dict):
        return {name: _plain(entry) for name, entry in value.items()}
    return value


def epoch(moment: datetime) -> int:
    """A time as DynamoDB's TTL reads it: whole Unix seconds."""
    return int(moment.timestamp())


def key(task_id: str) -> dict[str, Any]:
    return attributes({"task_id": task_id})


def to_item(task: Task) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "task_id": task.task_id,
        "action": task.action,
        "payload": json.dumps(task.payload, separators=(",", ":"), ensure_ascii=False),
        "run_at": task.run_at,
        "status": task.status.value,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "recurring": task.recurring,
        "runs": task.runs,
        "attempts": attempts_value(task.attempts),
        "max_attempts": task.max_attempts,
        "run_attempts": task.run_attempts,
        "next_run_at": task.next_run_at,
        "trigger": task.trigger.value if task.trigger else None,
        "last_error": task.last_error,
    }
    return attributes({name: value for name, value in fields.items() if value is not None})


def attempts_value(attempts: tuple[Attempt, ...] | list[Attempt]) -> list[dict[str, Any]]:
    return [attempt.as_dict() for attempt in attempts]


def from_item(item: dict[str, Any]) -> Task:
    fields = plain(item)
    trigger = fields.get("trigger")
    return Task(
        task_id=fields["task_id"],
        action=fields["action"],
        payload=json.loads(fields["payload"]),
        run_at=fields["run_at"],
        status=TaskStatus(fields["status"]),
        created_at=fields["created_at"],
        updated_at=fields["updated_at"],
        recurring=fields.get("recurring", False),
        next_run_at=fields.get("next_run_at"),
        trigger=TriggerKind(trigger) if trigger else None,
        attempts=tuple(Attempt(**entry) for entry in fields.get("attempts", [])),
        runs=fields.get("runs", 0),
        last_error=fields.get("last_error"),
        max_attempts=fields.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
        run_attempts=fields.get("run_attempts", 0),
    )
