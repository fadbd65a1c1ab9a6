"""The ports: what the scheduling, execution and reconciling services need from the outside world.
AWS implements them (`storage`, `triggers`, `queues`); tests pass in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from task_scheduler.model import Attempt, Task, TaskStatus, TriggerKind, running_too_long


@dataclass(frozen=True)
class DueEntry:
    """What the `by_due` index holds of a task: enough to decide whether it needs help."""

    task_id: str
    status: TaskStatus
    next_run_at: str
    updated_at: str

    def is_interrupted(self, now: datetime) -> bool:
        return self.status is TaskStatus.RUNNING and running_too_long(self.updated_at, now)


@dataclass(frozen=True)
class Claim:
    """What a claim found: the task it won (now `running`), or, refused, the task as it is
    (None: there is no such task)."""

    claimed: Task | None = None
    current: Task | None = None


class TaskRepository(Protocol):
    """Tasks, changed only by conditional writes: a write whose condition fails returns False
    (or, for the scheduling writes, raises DependencyFailure) and changes nothing."""

    def get(self, task_id: str) -> Task | None: ...

    def create(self, task: Task) -> None:
        """Writes a new task, `scheduled` (its first occurrence is armed already)."""
        ...

    def delete_unacknowledged(self, task_id: str) -> None:
        """Removes a task whose scheduling failed (its client never got a 201)."""
        ...

    def cancel(self, task_id: str, now: datetime, retention: timedelta) -> bool:
        """`scheduled` → `cancelled` (out of the due index, expiring after `retention`); False
        when it is not `scheduled`."""
        ...

    def claim(self, task_id: str, due: str, now: datetime) -> Claim:
        """`scheduled` → `running` for the occurrence `due`; refused when it is not there to
        take, with the task as it is."""
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
        trigger: TriggerKind | None = None,
    ) -> bool:
        """A `running` task's run ended: its outcome, or its next occurrence (armed by
        `trigger`)."""
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


class OccurrenceTriggers(Protocol):
    """What both functions do with triggers (`arming.OccurrenceArming`)."""

    def arm(
        self, task_id: str, due: datetime, now: datetime, current: TriggerKind | None = None
    ) -> TriggerKind:
        """Makes the execute function run the task's occurrence `due` (within a second after
        it); returns the kind of trigger the task now has. Raises DependencyFailure."""
        ...

    def disarm(self, task_id: str, kind: TriggerKind | None) -> None:
        """Removes the task's trigger so that it never fires; one already gone is no error."""
        ...

    def release(self, task_id: str, kind: TriggerKind | None) -> None:
        """Removes what a finished task's last trigger leaves behind, if anything."""
        ...

    def kind_after_failed_arm(self, current: TriggerKind | None) -> TriggerKind:
        """The trigger a task may have after `arm` failed (the queue carries its occurrence)."""
        ...


class RetryArming(Protocol):
    def arm_at(self, task_id: str, at: datetime, now: datetime) -> None:
        """Hands the occurrence `at` to the execute function at most a second before it (or in
        15 minutes, if sooner: it is sent on again then)."""
        ...

    def redeliver(self, task_id: str, due: datetime, delay_seconds: int) -> None:
        """Hands the occurrence `due` to the execute function again in `delay_seconds`."""
        ...


class DeadLetters(Protocol):
    def send(
        self, task_id: str, run_at: str, error: str | None, attempts: int, now: datetime
    ) -> None: ...
