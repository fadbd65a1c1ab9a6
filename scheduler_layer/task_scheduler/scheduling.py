"""The API side: schedules valid commands, reads tasks back and cancels them. Free of Lambda and
HTTP; its collaborators (repository, triggers, clock, id source) are passed in."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from aws_lambda_powertools import Logger

from task_scheduler.clock import Clock
from task_scheduler.errors import (
    DependencyFailure,
    PayloadTooLarge,
    SchedulerError,
    TaskConflict,
    TaskNotFound,
    quote,
)
from task_scheduler.model import Task, TaskStatus, new_task
from task_scheduler.ports import TaskRepository, TriggerArming
from task_scheduler.schedule_request import ScheduleCommand
from task_scheduler.task_items import MAX_STORED_TASK_BYTES, largest_stored_size
from task_scheduler.timing import format_utc

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
        triggers: TriggerArming,
        clock: Clock,
        new_id: Callable[[], str] = new_task_id,
        *,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self._store = store
        self._triggers = triggers
        self._clock = clock
        self._new_id = new_id
        self._retention = retention

    def schedule(self, command: ScheduleCommand) -> Task:
        """Stores the task and arms its trigger; returns it `scheduled`.

        The writes are ordered so that a failure at any step leaves nothing a client can see:
        the row is written `pending` (it expires by itself), then the trigger is armed, then the
        row becomes `scheduled`. A failure undoes what came before and is raised (503, or 400
        when EventBridge rejects the expression). Should an undo step fail too, what remains is
        harmless: a `pending` row nobody sees, which expires, and at most a trigger whose
        execution finds no `scheduled` task and removes itself.
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
            max_attempts=command.retry.max_attempts,
            timezone=schedule.timezone,
        )
        _refuse_if_it_could_outgrow_storage(task)
        task_id = task.task_id
        try:
            self._store.create_pending(task, now)
        except DependencyFailure:
            # The write may have been applied with every answer lost: remove what may be there.
            self._remove_row(task_id)
            raise
        try:
            trigger = self._triggers.arm(
                task_id,
                schedule.first_run_at,
                schedule.cron.expression if schedule.cron else None,
                schedule.recurring,
                self._clock.now(),
                timezone=schedule.timezone,
            )
        except SchedulerError:
            self._undo(task_id)
            raise
        try:
            self._store.mark_scheduled(task_id, trigger, self._clock.now())
        except DependencyFailure:
            if not self._is_scheduled(task_id):
                self._undo(task_id)
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
        return task.with_changes(status=TaskStatus.SCHEDULED, trigger=trigger)

    def get(self, task_id: str) -> Task:
        task = self._store.get(task_id) if _is_uuid(task_id) else None
        # A pending task was never acknowledged to a client, so it does not exist for them.
        if task is None or task.status is TaskStatus.PENDING:
            raise TaskNotFound(task_id)
        return task

    def cancel(self, task_id: str) -> Task:
        """`scheduled` → `cancelled`, then its trigger removed; returns the task `cancelled`.
        Cancelling a cancelled task answers the same. A running or finished one is a conflict.

        The write is conditional on `scheduled`, so it and the execute function's claim cannot
        both win: a trigger already on its way finds the task cancelled and does nothing, and a
        cancel that lost to a claim answers by what the task has become."""
        task = self.get(task_id)
        if task.status is TaskStatus.SCHEDULED:
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
        # A repeat removes the trigger again too, in case the first removal failed.
        self._disarm_cancelled(task_id)
        logger.info("task cancelled", extra={"task_id": task_id})
        return task

    def _disarm_cancelled(self, task_id: str) -> None:
        try:
            self._triggers.disarm(task_id)
        except DependencyFailure:
            # The task is cancelled all the same: should its trigger fire, the execute function
            # finds it cancelled, runs nothing and removes the trigger itself. So the answer is 200.
            logger.exception("cancel: could not remove the trigger", extra={"task_id": task_id})

    def _is_scheduled(self, task_id: str) -> bool:
        """Reads back a write whose outcome is unknown; False when it cannot even be read."""
        try:
            current = self._store.get(task_id)
        except DependencyFailure:
            return False
        return current is not None and current.status in (TaskStatus.SCHEDULED, TaskStatus.RUNNING)

    def _remove_row(self, task_id: str) -> None:
        try:
            self._store.delete_unacknowledged(task_id)
        except DependencyFailure:
            logger.exception("undo: could not remove the row", extra={"task_id": task_id})

    def _undo(self, task_id: str) -> None:
        """Removes the trigger (a failed or ambiguous arm may have left one) and the row, each
        step on its own so one failing does not skip the other."""
        for what, step in (
            ("remove the trigger", self._triggers.disarm),
            ("remove the row", self._store.delete_unacknowledged),
        ):
            try:
                step(task_id)
            except DependencyFailure:
                logger.exception(f"undo: could not {what}", extra={"task_id": task_id})


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
