"""Tasks as DynamoDB items, through boto3's own TypeSerializer / TypeDeserializer. The payload is
stored as JSON text, so any JSON value (floats included) round-trips as the client sent it.

Also the stored-size rule: DynamoDB refuses an item over 400 KB, so a task is only accepted when
its item, grown to the most its runs can make it, still fits (`largest_stored_size`)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from task_scheduler.model import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_RECORDED_ATTEMPTS,
    MAX_RECORDED_ERROR_BYTES,
    MAX_RECORDED_EXCERPT_BYTES,
    Attempt,
    Task,
    TaskStatus,
    TriggerKind,
    recorded_error,
)
from task_scheduler.timing import format_utc
from task_scheduler.zoned_cron import DEFAULT_TIMEZONE

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

# DynamoDB's item limit is 400 KB (409,600 bytes). A task may take at most this many bytes as
# `item_size` counts them, which is more than DynamoDB does: the difference is a safety margin.
MAX_STORED_TASK_BYTES = 400_000


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


# The listing indexes (task_listing) key each task by its status and this shard, fixed when the
# task is written, so that no one status takes every write in one partition. Only ever raise it:
# tasks keep the shard they were written with, and listing reads shards 0 to LISTING_SHARDS - 1.
LISTING_SHARDS = 4


def shard_of(task_id: str, shards: int) -> str:
    """A task's shard among `shards` for a sharded index key, from its (random) UUID."""
    try:
        return str(int(task_id[:8], 16) % shards)
    except ValueError:  # not a UUID: only tests write such ids
        return "0"


def listing_shard(task_id: str) -> str:
    return shard_of(task_id, LISTING_SHARDS)


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
        "timezone": task.timezone if task.is_cron else None,
        "listing_shard": listing_shard(task.task_id),
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
        timezone=fields.get("timezone", DEFAULT_TIMEZONE),
    )


# -- the stored-size rule -------------------------------------------------------------------------

_LARGEST_NUMBER = 10**38 - 1  # DynamoDB keeps 38 significant digits
_LATEST_TIME = "2199-12-31T23:59:59Z"  # every stored time has this length
_LARGEST_ATTEMPT = Attempt(
    attempt=_LARGEST_NUMBER,
    started_at=_LATEST_TIME,
    duration_ms=_LARGEST_NUMBER,
    status_code=_LARGEST_NUMBER,
    error="x" * MAX_RECORDED_ERROR_BYTES,
    response_excerpt="x" * MAX_RECORDED_EXCERPT_BYTES,
)
# What storage writes besides `to_item`'s attributes (storage.py), each at its largest: the
# claim token (a UUID), the `by_due` shard number, and the expiry time.
_LARGEST_BOOKKEEPING = {
    "claim_token": str(uuid.UUID(int=0)),
    "due_shard": str(_LARGEST_NUMBER),
    "expires_at": _LARGEST_NUMBER,
}


def largest_stored_item(task: Task) -> dict[str, Any]:
    """`task`'s item grown to the most its runs can make it: what the client sent as it is, and
    everything a run adds or changes at its largest (a full history of the largest attempts, the
    longest status and trigger, the largest counters, a full last error, storage's bookkeeping)."""
    largest = task.with_changes(
        status=max(TaskStatus, key=lambda status: len(status.value)),
        trigger=max(TriggerKind, key=lambda kind: len(kind.value)),
        updated_at=_LATEST_TIME,
        next_run_at=_LATEST_TIME,
        attempts=(_LARGEST_ATTEMPT,) * MAX_RECORDED_ATTEMPTS,
        runs=_LARGEST_NUMBER,
        run_attempts=_LARGEST_NUMBER,
        last_error="x" * MAX_RECORDED_ERROR_BYTES,
    )
    return {**to_item(largest), **attributes(_LARGEST_BOOKKEEPING)}


def largest_stored_size(task: Task) -> int:
    """The most bytes `task` can ever take in DynamoDB, as `item_size` counts them."""
    return item_size(largest_stored_item(task))


def item_size(item: dict[str, Any]) -> int:
    """An item's size (typed form) by DynamoDB's rules (AWS "Item sizes"), erring on the large
    side: each attribute's name plus its value; strings and binaries by their bytes; a number
    by its characters plus one (DynamoDB takes about one byte per two digits, plus one);
    booleans and nulls one byte; a list or map 3 bytes, plus one per element and, in a map,
    each key's bytes."""
    return sum(_utf8_size(name) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return _utf8_size(content)
    if kind == "N":
        return len(content) + 1
    if kind == "B":
        return len(bytes(content))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(entry) for entry in content)
    if kind == "M":
        return 3 + sum(1 + _utf8_size(name) + _value_size(entry) for name, entry in content.items())
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: member}) for member in content)
    raise ValueError(f"{kind} is not a DynamoDB attribute type")


def _utf8_size(text: str) -> int:
    # surrogatepass: counts a lone surrogate (3 bytes) instead of failing on it.
    return len(text.encode("utf-8", errors="surrogatepass"))


def recorded_attempts(task: Task, attempt: Attempt) -> list[dict[str, Any]]:
    """The task's attempt history with `attempt` added, keeping the most recent ones."""
    return attempts_value([*task.attempts, attempt][-MAX_RECORDED_ATTEMPTS:])


def run_record_update(
    task: Task,
    status: TaskStatus,
    attempt: Attempt,
    now: datetime,
    *,
    next_run_at: str | None,
    error: str | None,
    retention: timedelta,
    trigger: TriggerKind | None = None,
) -> tuple[str, dict[str, Any]]:
    """The update expression and values that record a finished run (see TaskStore.record_run)."""
    values: dict[str, Any] = {
        ":status": status.value,
        ":running": TaskStatus.RUNNING.value,
        ":now": format_utc(now),
        ":attempts": recorded_attempts(task, attempt),
        ":zero": 0,
        ":one": 1,
    }
    sets = [
        "#status = :status",
        "updated_at = :now",
        "attempts = :attempts",
        "run_attempts = :zero",
        "runs = if_not_exists(runs, :zero) + :one",
    ]
    removes = []
    for name, value, placeholder in (
        ("last_error", recorded_error(error), ":error"),
        ("next_run_at", next_run_at, ":next"),
    ):
        if value is None:
            removes.append(name)
        else:
            sets.append(f"{name} = {placeholder}")
            values[placeholder] = value
    if trigger is not None:
        sets.append("#trigger = :trigger")
        values[":trigger"] = trigger.value
    if status.finished:
        sets.append("expires_at = :expires")
        values[":expires"] = epoch(now + retention)
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression, values
