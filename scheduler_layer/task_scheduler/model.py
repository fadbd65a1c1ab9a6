"""The task: what a client scheduled, where it stands, and what happened each time it ran."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from task_scheduler.timing import format_utc

# How many attempts a task keeps; a recurring task keeps the most recent ones.
MAX_RECORDED_ATTEMPTS = 50
DEFAULT_MAX_ATTEMPTS = 5
MAX_MAX_ATTEMPTS = 20


class TaskStatus(StrEnum):
    # Internal: the row is written but its trigger is not armed yet. Never returned to a client:
    # a task only becomes visible (201) once it is `scheduled`, and leftovers expire by TTL.
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TriggerKind(StrEnum):
    RULE = "rule"  # an EventBridge rule on the default bus, one per task
    DIRECT = "direct"  # an asynchronous invocation of the execute function, for imminent tasks


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as recorded on the task."""

    attempt: int
    started_at: str
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None

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

    @property
    def run_id(self) -> str:
        """Identifies one run across its retries (a webhook's `webhook-id`)."""
        return f"{self.task_id}:{self.runs + 1}"

    @property
    def is_cron(self) -> bool:
        return self.run_at.startswith("cron(")

    def with_changes(self, **changes: Any) -> Task:
        return replace(self, **changes)

    def to_api(self) -> dict[str, Any]:
        """The representation `GET /tasks/{task_id}` returns (contract section 3)."""
        out: dict[str, Any] = {
            "task_id": self.task_id,
            "action": self.action,
            "payload": self.payload,
            "run_at": self.run_at,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.is_cron:
            out["next_run_at"] = self.next_run_at
            out["recurring"] = self.recurring
            out["runs"] = self.runs
        out["retry"] = {"max_attempts": self.max_attempts}
        out["attempts"] = [attempt.as_dict() for attempt in self.attempts]
        if self.last_error is not None:
            out["last_error"] = self.last_error
        return out


def new_task(
    task_id: str,
    action: str,
    payload: Any,
    run_at: str,
    first_run_at: datetime,
    recurring: bool,
    now: datetime,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Task:
    stamp = format_utc(now)
    return Task(
        task_id=task_id,
        action=action,
        payload=payload,
        run_at=run_at,
        status=TaskStatus.PENDING,
        created_at=stamp,
        updated_at=stamp,
        recurring=recurring,
        next_run_at=format_utc(first_run_at),
        max_attempts=max_attempts,
    )
