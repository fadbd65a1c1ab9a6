"""The ports: what the scheduling, execution and reconciling services need from the outside world.
AWS implements them (`storage`, `triggers`, `queues`); tests pass in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from task_scheduler.model import Attempt, Task, TaskStatus, TriggerKind, running_too_long
from task_scheduler.zoned_cron import DEFAULT_TIMEZONE


@dataclass(frozen=True)
class DueEntry:
    """What the `by_due` index holds of a task: enough to decide whether it needs help."""

    task_id: str
    status: TaskStatus
    next_run_at: str
    updated_at: str

    def is_interrupted(self, now: datetime) -> bool:
        return self.status is TaskStatus.RUNNING and running_too_long(self.updated_at, now)


class TaskRepository(Protocol):
    """Tasks, changed only by conditional writes: a write whose condition fails returns False
    (or, for the scheduling writes, raises DependencyFailure) and changes nothing."""

    def get(self, task_id: str) -> Task | None: ...

    def create_pending(self, task: Task, now: datetime) -> None:
        """Writes a new task as `pending`; it expires unless `mark_scheduled` follows."""
        ...

    def mark_scheduled(self, task_id: str, trigger: TriggerKind, now: datetime) -> None:
        """`pending` → `scheduled` once its trigger is armed."""
        ...

    def delete_unacknowledged(self, task_id: str) -> None:
        """Removes a task whose scheduling failed (its client never got a 201)."""
        ...

    def cancel(self, task_id: str, now: datetime, retention: timedelta) -> bool:
        """`scheduled` → `cancelled` (out of the due index, expiring after `retention`); False
        when it is not `scheduled`."""
        ...

    def claim(self, task_id: str, due: str, now: datetime) -> bool:
        """`scheduled` → `running` for the occurrence `due`; False when it is not there to take."""
        ...

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
        """A `running` task's run ended: its outcome, or its next occurrence."""
        ...

    def record_retry(
        self, task: Task, attempt: Attempt, retry_at: str, now: datetime, error: str | None
    ) -> bool:
        """A `running` task's attempt failed and is retried at `retry_at`."""
        ...


class OverdueTasks(Protocol):
    def overdue(self, before: str) -> Iterator[DueEntry]:
        """Tasks still waiting, or left running, whose `next_run_at` is earlier than `before`."""
        ...


class TriggerRemoval(Protocol):
    """What both functions do with triggers: remove one that must not fire (again)."""

    def disarm(self, task_id: str) -> None:
        """Removes the task's trigger; a trigger already gone is not an error."""
        ...


class TriggerRearming(TriggerRemoval, Protocol):
    """What the execute function does with triggers: keeps a recurring task's trigger on its
    next occurrence, and removes the one a finished task leaves."""

    def rearm(self, task_id: str, timezone: str, next_run_at: datetime, now: datetime) -> bool:
        """Makes the task's trigger fire at `next_run_at`, the next occurrence of its cron read in
        `timezone` (a trigger that fires on every occurrence by itself needs nothing). True when
        the trigger may fire too late for it (armed moments before), so the occurrence must be
        handed on another way too. Raises DependencyFailure."""
        ...


class TriggerArming(TriggerRemoval, Protocol):
    """What the API function does with triggers: arms them, and removes them when undoing."""

    def arm(
        self,
        task_id: str,
        fire_at: datetime,
        cron: str | None,
        recurring: bool,
        now: datetime,
        *,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> TriggerKind:
        """Makes the execute function run for `task_id` at `fire_at` (and, when `recurring`, on
        every occurrence of `cron` read in `timezone`, an IANA zone name: the execute side may
        have to re-arm the trigger after each run, see TriggerRearming). Raises
        DependencyFailure having left nothing armed."""
        ...


class RetryArming(Protocol):
    def arm_at(self, task_id: str, at: datetime, now: datetime) -> None:
        """Hands the task to the execute function again at `at` (or in 15 minutes, if sooner)."""
        ...


class DeadLetters(Protocol):
    def send(
        self, task_id: str, run_at: str, error: str | None, attempts: int, now: datetime
    ) -> None: ...
