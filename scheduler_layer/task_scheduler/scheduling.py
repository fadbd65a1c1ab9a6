"""The API side: schedules valid commands, reads tasks back, cancels, pauses and resumes them.
Free of Lambda and HTTP; its collaborators (repository, triggers, clock, id source, pauses) are
passed in."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from task_scheduler.clock import Clock
from task_scheduler.errors import (
    DependencyFailure,
    PayloadTooLarge,
    TaskConflict,
    TaskNotFound,
    quote,
)
from task_scheduler.model import Task, TaskStatus, TriggerKind, new_task
from task_scheduler.ports import OccurrenceTriggers, TaskRepository
from task_scheduler.schedule_request import ScheduleCommand
from task_scheduler.task_items import MAX_STORED_TASK_BYTES, largest_stored_size
from task_scheduler.timing import format_utc
from task_scheduler.zoned_cron import occurrence_after

if TYPE_CHECKING:
    from task_scheduler.task_pauses import TaskPausing

logger = Logger(child=True)

# How long a cancelled task stays readable when none is given: the default of the settings'
# finished_task_retention_days, which the execute function applies to the tasks it ends.
DEFAULT_RETENTION = timedelta(days=30)


def new_task_id() -> str:
    return str(uuid.uuid4())


class Scheduler:
    def __init__(
        self,
        store: TaskRepository,
        triggers: OccurrenceTriggers,
        clock: Clock,
        new_id: Callable[[], str] = new_task_id,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        pauses: TaskPausing | None = None,
    ) -> None:
        self._store = store
        self._triggers = triggers
        self._clock = clock
        self._new_id = new_id
        self._retention = retention
        self._pauses = pauses

    def schedule(self, command: ScheduleCommand) -> Task:
        """Arms the task's first occurrence, then stores it `scheduled`; returns it.

        In that order a failure at any step leaves nothing that runs: a trigger whose row was
        never written finds no task and does nothing (and removes itself). A failed write
        undoes the trigger (a queued message cannot be taken back: it finds no task) and is
        raised (503). Should the undo fail too, what remains is that harmless trigger.
        """
        schedule = command.schedule
        now = self._clock.now()
        task = new_task(
            task_id=self._new_id(),
            action=command.action,
            payload=command.payload,
            run_at=schedule.run_at,
            first_run_at=schedule.first_run_at,
            recurring=schedule.recurring,
            now=now,
            trigger=None,
            max_attempts=command.retry.max_attempts,
            timezone=schedule.timezone,
        )
        _refuse_if_it_could_outgrow_storage(task)
        task_id = task.task_id
        try:
            trigger = self._triggers.arm(task_id, schedule.first_run_at, self._clock.now())
        except DependencyFailure:
            # Half-done or answered too late (a rule created, its answer lost): remove it.
            self._disarm_quietly(task_id, None, "undo")
            raise
        task = task.with_changes(trigger=trigger)
        try:
            self._store.create(task)
        except DependencyFailure:
            stored = self._is_stored(task_id)
            if stored is not True:
                self._undo(task_id, trigger, row_may_exist=stored is None)
                raise
            # The write was applied and only its answers were lost: the task is scheduled.
        logger.info(
            "task scheduled",
            extra={
                "task_id": task_id,
                "run_at": task.run_at,
                "next_run_at": task.next_run_at,
                "trigger": trigger.value,
            },
        )
        return task

    def get(self, task_id: str) -> Task:
        task = self._store.get(task_id) if _is_uuid(task_id) else None
        # A pending task was never acknowledged to a client, so it does not exist for them.
        if task is None or task.status is TaskStatus.PENDING:
            raise TaskNotFound(task_id)
        return task

    def cancel(self, task_id: str) -> Task:
        """`scheduled` (or `paused`) → `cancelled`, then its trigger removed; returns the task
        `cancelled`. Cancelling a cancelled task answers the same. A running or finished one is
        a conflict.

        The write is conditional on `scheduled` or `paused`, so it and the execute function's
        claim cannot both win: a trigger already on its way finds the task cancelled and does
        nothing, and a cancel that lost to a claim answers by what the task has become."""
        task = self.get(task_id)
        if task.status in (TaskStatus.SCHEDULED, TaskStatus.PAUSED):
            now = self._clock.now()
            if self._store.cancel(task_id, now, self._retention):
                task = task.with_changes(
                    status=TaskStatus.CANCELLED, updated_at=format_utc(now), next_run_at=None
                )
            else:
                # A claim came first, or a retry of this very write found its first try applied.
                task = self.get(task_id)
        if task.status is not TaskStatus.CANCELLED:
            why = "it has finished" if task.status.finished else f"it is {task.status.value}"
            raise TaskConflict(f"Task {quote(task_id)} cannot be cancelled: {why}.")
        # A repeat removes the trigger again too, in case the first removal failed. Should it
        # fail, the task is cancelled all the same: its trigger finds it cancelled, runs nothing
        # and removes itself. So the answer is 200.
        self._disarm_quietly(task_id, task.trigger, "cancel")
        logger.info("task cancelled", extra={"task_id": task_id})
        return task

    def pause(self, task_id: str) -> Task:
        """A recurring `scheduled` task → `paused`, then its trigger removed; returns it `paused`.
        Pausing a paused task answers the same. An occurrence already on its way (a queued
        message cannot be taken back) finds the task not `scheduled`: its claim is refused."""
        assert self._pauses is not None  # wiring gives the API's scheduler its pauses
        task = self._recurring(self.get(task_id), "paused")
        if task.status is TaskStatus.SCHEDULED:
            paused = self._pauses.pause(task_id, self._clock.now())
            if paused is not None:
                # The trigger the row had when paused (a run may have re-armed it since the
                # read). No disarm on a repeat: it could remove the trigger of a resume in
                # progress. One left by a failed removal finds the task paused, runs nothing.
                self._disarm_quietly(task_id, paused.trigger, "pause")
                task = paused
            else:  # a claim or a cancel came first (or a retry of this very write landed)
                task = self.get(task_id)
        if task.status is not TaskStatus.PAUSED:
            raise TaskConflict(f"Task {quote(task_id)} cannot be paused: {_why_not(task)}.")
        logger.info("task paused", extra={"task_id": task_id})
        return task

    def resume(self, task_id: str) -> Task:
        """A `paused` task → `scheduled` for its next occurrence after now (those missed while
        paused are skipped): that occurrence is armed first, then the conditional write stores
        it with its trigger, the arm undone if the write fails. Resuming a scheduled task
        answers the same."""
        assert self._pauses is not None
        task = self._recurring(self.get(task_id), "resumed")
        if task.status is TaskStatus.SCHEDULED:
            return task
        if task.status is not TaskStatus.PAUSED:
            raise TaskConflict(f"Task {quote(task_id)} cannot be resumed: {_why_not(task)}.")
        now = self._clock.now()
        next_run = occurrence_after(task.run_at, task.timezone, now)
        if next_run is None:
            raise TaskConflict(
                f"Task {quote(task_id)} cannot be resumed: its run_at has no occurrence after "
                "now. Cancel it instead."
            )
        next_run_at = format_utc(next_run)
        try:
            # `current`: a rule a failed pause left stays known to the row, so cancel removes it.
            trigger = self._triggers.arm(task_id, next_run, now, task.trigger)
        except DependencyFailure:
            # Half-done (created, its answer lost): remove it. Anything left finds it paused.
            self._disarm_quietly(task_id, None, "undo the resume")
            raise
        now = self._clock.now()
        try:
            resumed = self._pauses.resume(task_id, next_run_at, trigger, now)
        except DependencyFailure:
            applied = self._is_resumed_for(task_id, next_run_at)
            if applied is not True:
                # Unknown (the read failed too): the trigger stays, so that a task the write
                # left `scheduled` is not left without one; paused, it finds it so.
                if applied is False:
                    self._disarm_quietly(task_id, trigger, "undo the resume")
                raise
            resumed = True  # applied; only its answer was lost
        if not resumed:
            current = self.get(task_id)
            if current.status is TaskStatus.SCHEDULED:
                return current  # another resume came first: the trigger armed is its too
            self._disarm_quietly(task_id, trigger, "undo the resume")  # a cancel came first
            raise TaskConflict(f"Task {quote(task_id)} cannot be resumed: {_why_not(current)}.")
        logger.info("task resumed", extra={"task_id": task_id, "next_run_at": next_run_at})
        return task.with_changes(
            status=TaskStatus.SCHEDULED,
            next_run_at=next_run_at,
            trigger=trigger,
            updated_at=format_utc(now),
            run_attempts=0,
        )

    def _is_resumed_for(self, task_id: str, next_run_at: str) -> bool | None:
        """Reads back a resume whose outcome is unknown; None when it cannot even be read."""
        try:
            current = self._store.get(task_id)
        except DependencyFailure:
            return None
        return (
            current is not None
            and current.status is TaskStatus.SCHEDULED
            and current.next_run_at == next_run_at
        )

    @staticmethod
    def _recurring(task: Task, done: str) -> Task:
        if not task.recurring:
            raise TaskConflict(
                f"Task {quote(task.task_id)} cannot be {done}: only recurring (cron) tasks can "
                "be paused and resumed; cancel a one-shot task instead."
            )
        return task

    def _is_stored(self, task_id: str) -> bool | None:
        """Reads back a write whose outcome is unknown; None when it cannot even be read."""
        try:
            return self._store.get(task_id) is not None
        except DependencyFailure:
            return None

    def _undo(self, task_id: str, trigger: TriggerKind, *, row_may_exist: bool) -> None:
        """Removes the row (a write reported failed may have landed), then the trigger. Should a
        row that may exist stay, so does its trigger: a task left `scheduled` is never left
        without one (it runs, although its client was answered 503)."""
        try:
            self._store.delete_unacknowledged(task_id)
        except DependencyFailure:
            logger.exception("undo: could not remove the row", extra={"task_id": task_id})
            if row_may_exist:
                return
        self._disarm_quietly(task_id, trigger, "undo")

    def _disarm_quietly(self, task_id: str, trigger: TriggerKind | None, why: str) -> None:
        try:
            self._triggers.disarm(task_id, trigger)
        except DependencyFailure:
            # Left behind, it finds no task when it fires, does nothing and removes itself.
            logger.exception(f"{why}: could not remove the trigger", extra={"task_id": task_id})


def _why_not(task: Task) -> str:
    if task.status is TaskStatus.RUNNING:
        return "it is running an occurrence; try again once that has run"
    return f"it is {task.status.value}"


def _refuse_if_it_could_outgrow_storage(task: Task) -> None:
    size = largest_stored_size(task)
    if size > MAX_STORED_TASK_BYTES:
        raise PayloadTooLarge(
            f"The task would take up to {size:,} bytes once stored with its attempt history, "
            f"more than the {MAX_STORED_TASK_BYTES:,} bytes a task may take: make payload "
            "smaller (numbers are stored written out in full, 1e15 as 1000000000000000.0)."
        )


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False
