"""Scheduling and running tasks: the product's logic, free of Lambda and HTTP.

Collaborators (store, triggers, actions, clock, id source) are passed in, so tests need no patching.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from random import Random
from typing import Protocol

from aws_lambda_powertools import Logger

from task_scheduler.actions import ActionContext, ActionRegistry, ActionResult
from task_scheduler.clock import Clock
from task_scheduler.cron import parse_cron
from task_scheduler.errors import (
    DependencyFailure,
    InvalidRequest,
    SchedulerError,
    TaskNotFound,
)
from task_scheduler.model import Attempt, Task, TaskStatus, new_task
from task_scheduler.schedule_request import ScheduleRequest
from task_scheduler.storage import TaskStore
from task_scheduler.timing import (
    MAX_EARLY_ARRIVAL,
    Schedule,
    ceil_to_second,
    format_utc,
    parse_run_at,
    parse_stored_utc,
    retry_delay,
    seconds_until,
)
from task_scheduler.triggers import Triggers

logger = Logger(child=True)

# How long the execute side waits for a `pending` task to become `scheduled` (see Executor).
PENDING_GRACE = timedelta(seconds=10)
PENDING_POLL_SECONDS = 0.2
# A queue message arriving earlier than this before its task is due is sent round again
# (SQS delays are whole seconds and rounded up, so an on-time one is at most a second early).
QUEUE_EARLY_TOLERANCE = timedelta(seconds=1)
# A task `running` longer than this was interrupted; above the execute function's timeout (120 s).
INTERRUPTED_AFTER = timedelta(seconds=150)


def is_interrupted(claimed_at: str, now: datetime) -> bool:
    """`running` since `claimed_at` for longer than any execution can last: the function was
    killed (timeout, crash) after claiming the task and before recording the outcome."""
    return now - parse_stored_utc(claimed_at) > INTERRUPTED_AFTER


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
        row becomes `scheduled`. A failure undoes what came before and is raised (503, or 400
        when EventBridge rejects the expression). Should an undo step fail too, what remains is
        harmless: a `pending` row nobody sees, which expires, and at most a trigger whose
        execution finds no `scheduled` task and removes itself.
        """
        now = self._clock.now()
        schedule, max_attempts = _validated_schedule(request, self._actions, now)
        task_id = self._new_id()
        task = new_task(
            task_id=task_id,
            action=request.action,
            payload=request.payload,
            run_at=schedule.run_at,
            first_run_at=schedule.first_run_at,
            recurring=schedule.recurring,
            now=now,
            max_attempts=max_attempts,
        )
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
        return task.with_changes(status=TaskStatus.SCHEDULED, trigger=trigger), schedule

    def get(self, task_id: str) -> Task:
        task = self._store.get(task_id) if _is_uuid(task_id) else None
        # A pending task was never acknowledged to a client, so it does not exist for them.
        if task is None or task.status is TaskStatus.PENDING:
            raise TaskNotFound(task_id)
        return task

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


def _validated_schedule(
    request: ScheduleRequest, actions: ActionRegistry, now: datetime
) -> tuple[Schedule, int]:
    """Checks every field, so one answer names every problem; returns the schedule and the
    attempts per run."""
    problems = []
    try:
        request.validate(actions)
    except InvalidRequest as error:
        problems.extend(error.problems)
    try:
        schedule = parse_run_at(request.run_at, now)
    except InvalidRequest as error:
        problems.extend(error.problems)
    try:
        max_attempts = request.max_attempts()
    except InvalidRequest as error:
        problems.extend(error.problems)
    if problems:
        raise InvalidRequest(problems)
    return schedule, max_attempts


def _next_attempt_number(task: Task) -> int:
    # From the last recorded attempt, not the count: the list keeps only the most recent ones.
    return task.attempts[-1].attempt + 1 if task.attempts else 1


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
    RETRYING = "retrying"  # an attempt failed; the next one is armed after a backoff


@dataclass(frozen=True)
class RunReport:
    outcome: RunOutcome
    result: ActionResult | None = None
    lateness_ms: int | None = None


class RetryArming(Protocol):
    def arm_at(self, task_id: str, at: datetime, now: datetime) -> None: ...


class DeadLetters(Protocol):
    def send(
        self, task_id: str, run_at: str, error: str | None, attempts: int, now: datetime
    ) -> None: ...


class Executor:
    """The execute side: runs a task once per occurrence, whatever the number of deliveries.

    Without `retries` a failed attempt ends the run; without `dead_letters` failures are only
    recorded on the task."""

    def __init__(
        self,
        store: TaskStore,
        triggers: Triggers,
        actions: ActionRegistry,
        clock: Clock,
        retention: timedelta,
        retries: RetryArming | None = None,
        dead_letters: DeadLetters | None = None,
        rng: Random | None = None,
    ) -> None:
        self._store = store
        self._triggers = triggers
        self._actions = actions
        self._clock = clock
        self._retention = retention
        self._retries = retries
        self._dead_letters = dead_letters
        self._rng = rng or Random()  # noqa: S311 - backoff jitter, not security

    def run(self, task_id: str, requeue_early: bool = False) -> RunReport:
        """Runs the task if its occurrence is due. `requeue_early`: the event came from the retry
        queue, whose delays are capped, so one arriving well before its time is sent on again."""
        task = self._store.get(task_id)
        if task is not None and task.status is TaskStatus.PENDING:
            task = self._await_acknowledgement(task)
        if task is None:
            logger.warning("execute event for an unknown task; removing its trigger if any")
            # A trigger left by a failed scheduling whose row is gone: it must not fire again.
            self._triggers.disarm(task_id)
            return RunReport(RunOutcome.UNKNOWN_TASK)
        if task.status is TaskStatus.RUNNING and self._interrupted(task):
            return self._record_interrupted(task)
        if task.status is not TaskStatus.SCHEDULED or task.next_run_at is None:
            logger.info(
                "task is not scheduled; nothing to run", extra={"status": task.status.value}
            )
            if task.status.finished or task.status is TaskStatus.PENDING:
                # Finished: a retry after a crash between recording and disarming. Pending: its
                # scheduling failed. Either way its trigger must go.
                self._triggers.disarm(task_id)
            return RunReport(RunOutcome.NOT_SCHEDULED)

        due = parse_stored_utc(task.next_run_at)
        now = self._clock.now()
        waiting_on_retry = task.run_attempts > 0 and due - now > MAX_EARLY_ARRIVAL
        if self._retries is not None and (
            (requeue_early and due - now > QUEUE_EARLY_TOLERANCE) or waiting_on_retry
        ):
            # A hop of a long wait (queue delays stop at 15 minutes): wait on in the queue,
            # never in a Lambda.
            self._retries.arm_at(task_id, due, now)
            logger.info("task not due yet; waiting on", extra={"next_run_at": task.next_run_at})
            return RunReport(RunOutcome.NOT_DUE)
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
        attempt_in_run = task.run_attempts + 1
        context = ActionContext(task_id=task_id, run_id=task.run_id, attempt=attempt_in_run)
        try:
            result = action.execute(task.payload, context)
        except Exception as error:
            logger.exception("the action crashed")
            result = ActionResult(False, 0, error=f"internal error: {type(error).__name__}")
        attempt = Attempt(
            attempt=_next_attempt_number(task),
            started_at=format_utc(started),
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            response_excerpt=result.response_excerpt,
        )
        if (
            not result.succeeded
            and result.retryable
            and attempt_in_run < task.max_attempts
            and self._retries is not None
        ):
            return self._retry(task, result, attempt, attempt_in_run, lateness_ms)
        return self._record(task, result, attempt, lateness_ms)

    def _retry(
        self,
        task: Task,
        result: ActionResult,
        attempt: Attempt,
        attempt_in_run: int,
        lateness_ms: int | None,
    ) -> RunReport:
        """Records the failed attempt and arms the next one after a backoff, durably."""
        now = self._clock.now()
        delay = retry_delay(attempt_in_run, result.retry_after_seconds, self._rng)
        retry_at = ceil_to_second(now + timedelta(seconds=delay))
        if not self._store.record_retry(task, attempt, format_utc(retry_at), now, result.error):
            logger.warning("the task changed while it ran; not retrying it")
            return RunReport(RunOutcome.LOST_CLAIM, result, lateness_ms)
        assert self._retries is not None
        # If this fails the invocation fails and is retried; the task waits `scheduled` for
        # `retry_at`, which the retried invocation (or the reconciler) picks up.
        self._retries.arm_at(task.task_id, retry_at, now)
        logger.info(
            "attempt failed; retrying",
            extra={
                "attempt": attempt_in_run,
                "max_attempts": task.max_attempts,
                "error": result.error,
                "retry_at": format_utc(retry_at),
            },
        )
        return RunReport(RunOutcome.RETRYING, result, lateness_ms)

    def _interrupted(self, task: Task) -> bool:
        return is_interrupted(task.updated_at, self._clock.now())

    def _record_interrupted(self, task: Task) -> RunReport:
        claimed_at = parse_stored_utc(task.updated_at)
        error = "interrupted: the execute function stopped before recording the outcome"
        result = ActionResult(False, 0, error=error)
        attempt = Attempt(
            attempt=_next_attempt_number(task),
            started_at=task.updated_at,
            duration_ms=int((self._clock.now() - claimed_at).total_seconds() * 1000),
            error=error,
        )
        # Not retried: the interrupted attempt may have reached the receiver, and a webhook is
        # never called twice.
        logger.warning("task was left running by an interrupted execution; recording it failed")
        return self._record(task, result, attempt, lateness_ms=None)

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
        self, task: Task, result: ActionResult, attempt: Attempt, lateness_ms: int | None
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
            if self._dead_letters is not None:
                # Before recording: should recording fail, a retried invocation sends it again
                # (a duplicate dead letter), never none.
                self._dead_letters.send(
                    task.task_id, task.run_at, result.error, attempt.attempt, now
                )
        recorded = self._store.record_run(
            task,
            status,
            attempt,
            now,
            next_run_at=format_utc(next_run) if next_run else None,
            error=None if result.succeeded else result.error,
            retention=self._retention,
        )
        if not recorded:
            logger.warning("the task changed while it ran; this run's outcome was not recorded")
            return RunReport(RunOutcome.LOST_CLAIM, result, lateness_ms)
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
