"""The task: what a client scheduled, where it stands, and what happened each time it ran."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from task_scheduler.timing import format_utc, parse_stored_utc
from task_scheduler.zoned_cron import DEFAULT_TIMEZONE

# How many attempts a task keeps; a recurring task keeps the most recent ones.
MAX_RECORDED_ATTEMPTS = 50
# The most an attempt keeps of the response and of its error, and a task of its last error, in
# UTF-8 bytes. With MAX_RECORDED_ATTEMPTS they bound the attempt history, so the largest a task
# can grow to is known when it is scheduled (task_items.largest_stored_item).
MAX_RECORDED_EXCERPT_BYTES = 1024
MAX_RECORDED_ERROR_BYTES = 512
DEFAULT_MAX_ATTEMPTS = 5
MAX_MAX_ATTEMPTS = 20
# A task `running` longer than this was interrupted; above the execute function's timeout (60 s).
INTERRUPTED_AFTER = timedelta(seconds=90)


def clipped(text: str | None, max_bytes: int) -> str | None:
    """`text` cut to at most `max_bytes` of UTF-8, never inside a character. A lone surrogate,
    which DynamoDB could not store, becomes "?"."""
    if text is None:
        return None
    return text.encode("utf-8", errors="replace")[:max_bytes].decode("utf-8", errors="ignore")


def recorded_error(text: str | None) -> str | None:
    """An error as it is stored: on an attempt, or as the task's last error."""
    return clipped(text, MAX_RECORDED_ERROR_BYTES)


def running_too_long(claimed_at: str, now: datetime) -> bool:
    """`running` since `claimed_at` for longer than any execution can last: the function was
    killed (timeout, crash) after claiming the task and before recording the outcome."""
    return now - parse_stored_utc(claimed_at) > INTERRUPTED_AFTER


class TaskStatus(StrEnum):
    # Written by older versions before the trigger was armed (they expire by TTL). Never returned
    # to a client, never run: a task is written `scheduled`, once its trigger is armed.
    PENDING = "pending"
    SCHEDULED = "scheduled"
    PAUSED = "paused"  # a recurring task its client paused: no occurrence fires until resumed
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TriggerKind(StrEnum):
    RULE = "rule"  # an EventBridge rule on the default bus, one per task
    SCHEDULE = "schedule"  # an EventBridge Scheduler schedule in the stack's group, one per task
    QUEUE = "queue"  # a delayed message of the queue, for occurrences within its 15 minutes
    DIRECT = "direct"  # written by older versions (a Lambda invocation); nothing to remove


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as recorded on the task."""

    attempt: int
    started_at: str
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None

    def __post_init__(self) -> None:
        # Whoever builds an attempt, what is recorded stays within the stored-size budget.
        object.__setattr__(self, "error", recorded_error(self.error))
        excerpt = clipped(self.response_excerpt, MAX_RECORDED_EXCERPT_BYTES)
        object.__setattr__(self, "response_excerpt", excerpt)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attempt": self.attempt,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
        }
        if self.status_code is not None:
            out["status_code"] = self.status_code
        if self.error is not None:
            out["error"] = self.error
        if self.response_excerpt is not None:
            out["response_excerpt"] = self.response_excerpt
        return out


@dataclass(frozen=True)
class Task:
    task_id: str
    action: str
    payload: Any  # the validated payload, as the client sent it (JSON value)
    run_at: str  # normalised UTC time, or the cron expression as given
    status: TaskStatus
    created_at: str
    updated_at: str
    recurring: bool = False
    next_run_at: str | None = None  # the occurrence the trigger is armed for
    trigger: TriggerKind | None = None
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
    runs: int = 0
    last_error: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # delivery attempts per run, the first included
    run_attempts: int = 0  # attempts of the current run that failed and are being retried
    timezone: str = DEFAULT_TIMEZONE  # the IANA zone a cron is read in

    @property
    def run_id(self) -> str:
        """Identifies one run across its retries (a webhook's `webhook-id`)."""
        return f"{self.task_id}:{self.runs + 1}"

    @property
    def is_cron(self) -> bool:
        return self.run_at.startswith("cron(")

    def with_changes(self, **changes: Any) -> Task:
        return replace(self, **changes)

    def is_interrupted(self, now: datetime) -> bool:
        """Left `running` by an execution that died (see `running_too_long`)."""
        return self.status is TaskStatus.RUNNING and running_too_long(self.updated_at, now)

    @property
    def next_attempt_number(self) -> int:
        # From the last recorded attempt, not the count: the list keeps only the most recent ones.
        return self.attempts[-1].attempt + 1 if self.attempts else 1


def new_task(
    task_id: str,
    action: str,
    payload: Any,
    run_at: str,
    first_run_at: datetime,
    recurring: bool,
    now: datetime,
    trigger: TriggerKind | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timezone: str = DEFAULT_TIMEZONE,
) -> Task:
    """A task as it is first stored: `scheduled`, its first occurrence armed by `trigger` (None
    until it is armed)."""
    stamp = format_utc(now)
    return Task(
        task_id=task_id,
        action=action,
        payload=payload,
        run_at=run_at,
        status=TaskStatus.SCHEDULED,
        created_at=stamp,
        updated_at=stamp,
        recurring=recurring,
        next_run_at=format_utc(first_run_at),
        trigger=trigger,
        max_attempts=max_attempts,
        timezone=timezone,
    )
