"""Scheduling and running tasks: the product's logic, free of Lambda and HTTP.

Collaborators (store, triggers, actions, clock, id source) are passed in, so tests need no patching.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aws_lambda_powertools import Logger

from task_scheduler.actions import ActionContext, ActionRegistry, ActionResult
from task_scheduler.clock import Clock
from task_scheduler.cron import parse_cron
from task_scheduler.errors import DependencyFailure, InvalidRequest, TaskNotFound
from task_scheduler.model import Attempt, Task, TaskStatus, new_task
from task_scheduler.schedule_request import ScheduleRequest
from task_scheduler.storage import TaskStore
from task_scheduler.timing import (
    MAX_EARLY_ARRIVAL,
    Schedule,
    format_utc,
    parse_run_at,
    parse_stored_utc,
    seconds_until,
)
from task_scheduler.triggers import Triggers

logger = Logger(child=True)

# How long the execute side waits for a `pending` task to become `scheduled` (see Executor).
PENDING_GRACE = timedelta(seconds=10)
PENDING_POLL_SECONDS = 0.2


def new_task_id() -> str:
    return str(uuid.uuid4())


class Scheduler:
    """The API side: validates and schedules tasks, and reads them back."""

    def __init__(
        self,
        store: TaskStore,
        triggers: Triggers,
        actions: ActionRegistry,
        clock: Clock,
        new_id: Callable[[], str] = new_task_id,
    ) -> None:
        self._store = store
        self._triggers = triggers
        self._actions = actions
        self._clock = clock
        self._new_id = new_id

    def schedule(self, request: ScheduleRequest) -> tuple[Task, Schedule]:
        """Validates and schedules; returns the task and its schedule.

        The writes are ordered so that a failure at any step leaves nothing a client can see:
        the row is written `pending` (it expires by itself), then the trigger is armed, then the
        row becomes `scheduled`. A failure undoes what came before and raises DependencyFailure.
        """
        now = self._clock.now()
        schedule = _validated_schedule(request, self._actions, now)
        task_id = self._new_id()
        task = new_task(
            task_id=task_id,
            action=request.action,
            payload=request.payload,
            run_at=schedule.run_at,
            first_run_at=schedule.first_run_at,
            recurring=schedule.recurring,
            now=now,
        )
        self._store.create_pending(task, now)
        try:
            trigger = self._triggers.arm(
                task_id,
                schedule.first_run_at,
                schedule.cron.expression if schedule.cron else None,
                schedule.recurring,
                self._clock.now(),
            )
        except DependencyFailure:
            self._undo(task_id, disarm=False)
            raise
        try:
            self._store.mark_scheduled(task_id, trigger, self._clock.now())
        except DependencyFailure:
            self._undo(task_id, disarm=True)
            raise
        logger.info(
            "task scheduled",
            extra={
                "task_id": task_id,
                "run_at": task.run_at,
                "next_run_at": task.next_run_at,
                "trigger": trigger.value,
            },
        )
        return task.with_changes(status=TaskStatus.SCHEDULED, trigger=trigger), schedule

    def get(self, task_id: str) -> Task:
        task = self._store.get(task_id) if _is_uuid(task_id) else None
        # A pending task was never acknowledged to a client, so it does not exist for them.
        if task is None or task.status is TaskStatus.PENDING:
            raise TaskNotFound(task_id)
        return task

    def _undo(self, task_id: str, disarm: bool) -> None:
        try:
            if disarm:
                self._triggers.disarm(task_id)
            self._store.delete_pending(task_id)
        except DependencyFailure:
            # What is left is a `pending` row (never shown, expires by TTL) and at most a trigger
            # whose execution finds the task not `scheduled` and does nothing.
            logger.exception("could not undo a failed scheduling", extra={"task_id": task_id})


def _validated_schedule(
    request: ScheduleRequest, actions: ActionRegistry, now: datetime
) -> Schedule:
    """Checks every field, so one answer names every problem."""
    problems = []
    try:
        request.validate(actions)
    except InvalidRequest as error:
        problems.extend(error.problems)
    try:
        schedule = parse_run_at(request.run_at, now)
    except InvalidRequest as error:
        problems.extend(error.problems)
    if problems:
        raise InvalidRequest(problems)
    return schedule


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


class RunOutcome(StrEnum):
    UNKNOWN_TASK = "unknown_task"
    NOT_SCHEDULED = "not_scheduled"  # cancelled, finished, running elsewhere, or never acknowledged
    NOT_DUE = "not_due"  # an event for an occurrence that is not this one
    LOST_CLAIM = "lost_claim"  # a concurrent invocation claimed it first
    COMPLETED = "completed"
    FAILED = "failed"
    RESCHEDULED = "rescheduled"  # a recurring task ran and waits for its next occurrence


@dataclass(frozen=True)
class RunReport:
    outcome: RunOutcome
    result: ActionResult | None = None
    lateness_ms: int | None = None


class Executor:
    """The execute side: runs a task once per occurrence, whatever the number of deliveries."""

    def __init__(
        self,
        store: TaskStore,
        triggers: Triggers,
        actions: ActionRegistry,
        clock: Clock,
        retention: timedelta,
    ) -> None:
        self._store = store
        self._triggers = triggers
        self._actions = actions
        self._clock = clock
        self._retention = retention

    def run(self, task_id: str) -> RunReport:
        task = self._store.get(task_id)
        if task is not None and task.status is TaskStatus.PENDING:
            task = self._await_acknowledgement(task)
        if task is None:
            logger.warning("execute event for an unknown task; ignoring it")
            return RunReport(RunOutcome.UNKNOWN_TASK)
        if task.status is not TaskStatus.SCHEDULED or task.next_run_at is None:
            logger.info(
                "task is not scheduled; nothing to run", extra={"status": task.status.value}
            )
            if task.status.finished:
                # A retried invocation after a crash between recording and disarming: finish it.
                self._triggers.disarm(task_id)
            return RunReport(RunOutcome.NOT_SCHEDULED)

        due = parse_stored_utc(task.next_run_at)
        now = self._clock.now()
        if due - now > MAX_EARLY_ARRIVAL:
            logger.warning(
                "execute event long before the task is due; ignoring it",
                extra={"next_run_at": task.next_run_at},
            )
            return RunReport(RunOutcome.NOT_DUE)
        # EventBridge fires at some second of the minute; never run before the time asked for.
        wait = seconds_until(due, now)
        if wait > 0:
            logger.debug("waiting until the task is due", extra={"wait_seconds": wait})
            self._clock.sleep(wait)
        while self._clock.now() < due:  # a clock that woke a hair early
            self._clock.sleep(seconds_until(due, self._clock.now()) or 0.001)

        if not self._store.claim(task_id, task.next_run_at, self._clock.now()):
            logger.info("another invocation claimed this occurrence; not running it again")
            return RunReport(RunOutcome.LOST_CLAIM)

        action = self._actions.get(task.action)
        started = self._clock.now()
        lateness_ms = int((started - due).total_seconds() * 1000)
        context = ActionContext(task_id=task_id, run_id=f"{task_id}:{task.runs + 1}", attempt=1)
        try:
            result = action.execute(task.payload, context)
        except Exception as error:
            logger.exception("the action crashed")
            result = ActionResult(False, 0, error=f"internal error: {type(error).__name__}")
        attempt = Attempt(
            attempt=len(task.attempts) + 1,
            started_at=format_utc(started),
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            response_excerpt=result.response_excerpt,
        )
        return self._record(task, result, attempt, lateness_ms)

    def _await_acknowledgement(self, task: Task) -> Task | None:
        """A direct dispatch is sent before the API marks the task `scheduled` (the trigger must
        exist first), so it can arrive while the task is still `pending`: give the API a moment."""
        deadline = self._clock.now() + PENDING_GRACE
        current: Task | None = task
        while current is not None and current.status is TaskStatus.PENDING:
            if self._clock.now() >= deadline:
                logger.info("task stayed pending: its scheduling failed or was undone")
                break
            self._clock.sleep(PENDING_POLL_SECONDS)
            current = self._store.get(task.task_id)
        return current

    def _record(
        self, task: Task, result: ActionResult, attempt: Attempt, lateness_ms: int
    ) -> RunReport:
        now = self._clock.now()
        next_run: datetime | None = None
        if task.recurring:
            next_run = parse_cron(task.run_at).next_after(now)
        if next_run is not None:
            status, outcome = TaskStatus.SCHEDULED, RunOutcome.RESCHEDULED
        elif result.succeeded:
            status, outcome = TaskStatus.COMPLETED, RunOutcome.COMPLETED
        else:
            status, outcome = TaskStatus.FAILED, RunOutcome.FAILED
        self._store.record_run(
            task,
            status,
            attempt,
            now,
            next_run_at=format_utc(next_run) if next_run else None,
            error=None if result.succeeded else result.error,
            retention=self._retention,
        )
        logger.info(
            "task ran",
            extra={
                "outcome": outcome.value,
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
                "lateness_ms": lateness_ms,
                "next_run_at": format_utc(next_run) if next_run else None,
            },
        )
        if status.finished:
            self._triggers.disarm(task.task_id)
        return RunReport(outcome, result, lateness_ms)
