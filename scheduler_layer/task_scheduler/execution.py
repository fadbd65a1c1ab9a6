"""The execute side: runs a task once per occurrence, whatever the number of deliveries. Free of
Lambda; its collaborators (repository, triggers, actions, retry queue, dead letters, clock,
random source) are passed in.

One run reads top to bottom: admit (is there an occurrence to run?), wait (until it is due, never
before), claim, attempt (perform the action once), settle (record it, retry it, or dead-letter it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from random import Random

from aws_lambda_powertools import Logger

from task_scheduler.actions import ActionContext, ActionPerformer, ActionRegistry, ActionResult
from task_scheduler.clock import Clock
from task_scheduler.errors import DependencyFailure
from task_scheduler.model import Attempt, Task, TaskStatus
from task_scheduler.ports import DeadLetters, RetryArming, TaskRepository, TriggerRearming
from task_scheduler.timing import (
    MAX_EARLY_ARRIVAL,
    ceil_to_second,
    format_utc,
    parse_stored_utc,
    retry_delay,
    seconds_until,
)
from task_scheduler.zoned_cron import occurrence_after

logger = Logger(child=True)

# How long the execute side waits for a `pending` task to become `scheduled` (see _admit).
PENDING_GRACE = timedelta(seconds=10)
PENDING_POLL_SECONDS = 0.2
# A queue message arriving earlier than this before its task is due is sent round again
# (SQS delays are whole seconds and rounded up, so an on-time one is at most a second early).
QUEUE_EARLY_TOLERANCE = timedelta(seconds=1)


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


@dataclass(frozen=True)
class _Attempted:
    """One attempt of a run: what the action answered and how it is recorded."""

    result: ActionResult
    attempt: Attempt
    attempt_in_run: int  # 1 for the first attempt of this run
    lateness_ms: int | None


class Executor:
    def __init__(
        self,
        store: TaskRepository,
        triggers: TriggerRearming,
        actions: ActionRegistry[ActionPerformer],
        clock: Clock,
        retention: timedelta,
        retries: RetryArming,
        dead_letters: DeadLetters,
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
        admitted = self._admit(task_id)
        if isinstance(admitted, RunReport):
            return admitted
        task = admitted
        assert task.next_run_at is not None  # _admit lets only a `scheduled` occurrence through
        due = parse_stored_utc(task.next_run_at)
        not_due = self._wait(task, due, requeue_early)
        if not_due is not None:
            return not_due
        if not self._store.claim(task_id, task.next_run_at, self._clock.now()):
            logger.info("another invocation claimed this occurrence; not running it again")
            return RunReport(RunOutcome.LOST_CLAIM)
        return self._settle(task, self._attempt(task, due))

    # -- admit -----------------------------------------------------------------------------------

    def _admit(self, task_id: str) -> Task | RunReport:
        """The task when it has an occurrence to run; otherwise the report of why not."""
        task = self._store.get(task_id)
        if task is not None and task.status is TaskStatus.PENDING:
            task = self._await_acknowledgement(task)
        if task is None:
            logger.warning("execute event for an unknown task; removing its trigger if any")
            # A trigger left by a failed scheduling whose row is gone: it must not fire again.
            self._triggers.disarm(task_id)
            return RunReport(RunOutcome.UNKNOWN_TASK)
        if task.is_interrupted(self._clock.now()):
            return self._settle_interrupted(task)
        if task.status is not TaskStatus.SCHEDULED or task.next_run_at is None:
            logger.info(
                "task is not scheduled; nothing to run", extra={"status": task.status.value}
            )
            if task.status.finished or task.status is TaskStatus.PENDING:
                # Finished: a retry after a crash between recording and disarming. Pending: its
                # scheduling failed. Either way its trigger must go.
                self._triggers.disarm(task_id)
            return RunReport(RunOutcome.NOT_SCHEDULED)
        return task

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

    # -- wait ------------------------------------------------------------------------------------

    def _wait(self, task: Task, due: datetime, requeue_early: bool) -> RunReport | None:
        """Returns once `due` has come (None), or the report of an event too early to wait for."""
        now = self._clock.now()
        waiting_on_retry = task.run_attempts > 0 and due - now > MAX_EARLY_ARRIVAL
        if (requeue_early and due - now > QUEUE_EARLY_TOLERANCE) or waiting_on_retry:
            # A hop of a long wait (queue delays stop at 15 min): wait in the queue, not a Lambda.
            self._retries.arm_at(task.task_id, due, now)
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
        return None

    # -- attempt ---------------------------------------------------------------------------------

    def _attempt(self, task: Task, due: datetime) -> _Attempted:
        """Performs the claimed occurrence's action once; a crash is a failed attempt."""
        action = self._actions.get(task.action)
        started = self._clock.now()
        attempt_in_run = task.run_attempts + 1
        context = ActionContext(task_id=task.task_id, run_id=task.run_id, attempt=attempt_in_run)
        try:
            result = action.execute(task.payload, context)
        except Exception as error:
            logger.exception("the action crashed")
            result = ActionResult(False, 0, error=f"internal error: {type(error).__name__}")
        attempt = Attempt(
            attempt=task.next_attempt_number,
            started_at=format_utc(started),
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            response_excerpt=result.response_excerpt,
        )
        lateness_ms = int((started - due).total_seconds() * 1000)
        return _Attempted(result, attempt, attempt_in_run, lateness_ms)

    # -- settle ----------------------------------------------------------------------------------

    def _settle(self, task: Task, attempted: _Attempted) -> RunReport:
        result = attempted.result
        attempts_left = attempted.attempt_in_run < task.max_attempts
        if not result.succeeded and result.retryable and attempts_left:
            return self._retry(task, attempted)
        return self._record(task, attempted)

    def _retry(self, task: Task, attempted: _Attempted) -> RunReport:
        """Records the failed attempt and arms the next one after a backoff, durably."""
        result = attempted.result
        now = self._clock.now()
        delay = retry_delay(attempted.attempt_in_run, result.retry_after_seconds, self._rng)
        retry_at = ceil_to_second(now + timedelta(seconds=delay))
        if not self._store.record_retry(
            task, attempted.attempt, format_utc(retry_at), now, result.error
        ):
            logger.warning("the task changed while it ran; not retrying it")
            return RunReport(RunOutcome.LOST_CLAIM, result, attempted.lateness_ms)
        # If this fails the invocation fails and is retried; the task waits `scheduled` for
        # `retry_at`, which the retried invocation (or the reconciler) picks up.
        self._retries.arm_at(task.task_id, retry_at, now)
        logger.info(
            "attempt failed; retrying",
            extra={
                "attempt": attempted.attempt_in_run,
                "max_attempts": task.max_attempts,
                "error": result.error,
                "retry_at": format_utc(retry_at),
            },
        )
        return RunReport(RunOutcome.RETRYING, result, attempted.lateness_ms)

    def _settle_interrupted(self, task: Task) -> RunReport:
        """A run left `running` by an execution that died is recorded as a failed attempt. Not
        retried: the interrupted attempt may have reached the receiver, and a webhook is never
        called twice."""
        claimed_at = parse_stored_utc(task.updated_at)
        error = "interrupted: the execute function stopped before recording the outcome"
        attempt = Attempt(
            attempt=task.next_attempt_number,
            started_at=task.updated_at,
            duration_ms=int((self._clock.now() - claimed_at).total_seconds() * 1000),
            error=error,
        )
        logger.warning("task was left running by an interrupted execution; recording it failed")
        result = ActionResult(False, 0, error=error)
        return self._record(task, _Attempted(result, attempt, task.run_attempts + 1, None))

    def _record(self, task: Task, attempted: _Attempted) -> RunReport:
        """Records the run's outcome: the next occurrence of a recurring task, or its end."""
        result, attempt = attempted.result, attempted.attempt
        now = self._clock.now()
        next_run = occurrence_after(task.run_at, task.timezone, now) if task.recurring else None
        next_run_at = format_utc(next_run) if next_run else None
        if next_run is not None:
            status, outcome = TaskStatus.SCHEDULED, RunOutcome.RESCHEDULED
            self._arm_next(task, next_run, now)
        elif result.succeeded:
            status, outcome = TaskStatus.COMPLETED, RunOutcome.COMPLETED
        else:
            status, outcome = TaskStatus.FAILED, RunOutcome.FAILED
            # Sent before recording: a retried invocation may send it twice, never not at all.
            self._dead_letters.send(task.task_id, task.run_at, result.error, attempt.attempt, now)
        recorded = self._store.record_run(
            task,
            status,
            attempt,
            now,
            next_run_at=next_run_at,
            error=None if result.succeeded else result.error,
            retention=self._retention,
        )
        if not recorded:
            logger.warning("the task changed while it ran; this run's outcome was not recorded")
            return RunReport(RunOutcome.LOST_CLAIM, result, attempted.lateness_ms)
        logger.info(
            "task ran",
            extra={
                "outcome": outcome.value,
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
                "lateness_ms": attempted.lateness_ms,
                "next_run_at": next_run_at,
            },
        )
        if status.finished:
            self._triggers.disarm(task.task_id)
        return RunReport(outcome, result, attempted.lateness_ms)

    def _arm_next(self, task: Task, next_run: datetime, now: datetime) -> None:
        """Arms `next_run` before the run is recorded, so that a task is never `scheduled` with
        nothing to fire it: should the trigger and the queue both fail, the invocation fails with
        the task `running`, found interrupted later. (Armed for nothing, a trigger does nothing.)"""
        try:
            too_late = self._triggers.rearm(task.task_id, task.timezone, next_run, now)
        except DependencyFailure:  # the retry queue can carry the next run (which re-arms)
            logger.warning("could not re-arm the trigger; the retry queue carries the next run")
            too_late = True
        if too_late:
            self._retries.arm_at(task.task_id, next_run, now)
