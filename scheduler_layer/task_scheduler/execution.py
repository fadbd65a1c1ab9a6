"""The execute side: runs a task once per occurrence, whatever the number of deliveries. Free of
Lambda; its collaborators (repository, triggers, actions, retry queue, dead letters, clock,
random source) are passed in.

One run reads top to bottom: hop (an event for an occurrence more than a second away is sent on
through the queue), wait (at most a second, never starting early), claim (one conditional write
that also reads the task), attempt (perform the action once), settle (record it, retry it, or
dead-letter it). A refused claim says why: a duplicate, a stale event, a cancelled task, a run
that was interrupted, or a row not written yet.
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
from task_scheduler.execute_events import ExecuteEvent
from task_scheduler.model import Attempt, Task, TaskStatus, TriggerKind
from task_scheduler.ports import DeadLetters, OccurrenceTriggers, RetryArming, TaskRepository
from task_scheduler.timing import (
    MAX_IN_PLACE_WAIT,
    ceil_to_second,
    format_utc,
    parse_stored_utc,
    retry_delay,
    seconds_until,
)
from task_scheduler.zoned_cron import occurrence_after

logger = Logger(child=True)

# An event may come before its task's row is written (the API arms an occurrence, then stores
# the task) or while the previous occurrence is being recorded: it is looked at again, every
# LOOK_AGAIN_SECONDS, until this long after it was due.
LOOK_AGAIN_SECONDS = 1
LOOK_AGAIN_UNTIL = timedelta(seconds=12)


class RunOutcome(StrEnum):
    UNKNOWN_TASK = "unknown_task"
    NOT_SCHEDULED = "not_scheduled"  # cancelled, finished, or paused
    NOT_DUE = "not_due"  # an event for an occurrence that is not this one
    WAITING = "waiting"  # not due yet: sent on through the queue to its second
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
        triggers: OccurrenceTriggers,
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

    def run(self, event: ExecuteEvent) -> RunReport:
        """Runs the event's occurrence if it is the task's, within a second after it is due."""
        task_id, due = event.task_id, event.due
        if due is None:  # an event without its occurrence: the task's next one
            task = self._store.get(task_id)
            if task is None or task.status is not TaskStatus.SCHEDULED or not task.next_run_at:
                return self._refused(task_id, None, task)
            due = parse_stored_utc(task.next_run_at)
        now = self._clock.now()
        if due - now > MAX_IN_PLACE_WAIT:
            # Armed early on purpose (`timing`): the queue carries it to its second.
            self._retries.arm_at(task_id, due, now)
            logger.info("not due yet; queued until it is", extra={"due": format_utc(due)})
            return RunReport(RunOutcome.WAITING)
        self._wait_until(due)
        claim = self._store.claim(task_id, format_utc(due), self._clock.now())
        if claim.claimed is None:
            return self._refused(task_id, due, claim.current)
        return self._settle(claim.claimed, self._attempt(claim.claimed, due))

    def _wait_until(self, due: datetime) -> None:
        """Never start before `due`: a queued message lands up to a second early."""
        while self._clock.now() < due:
            self._clock.sleep(seconds_until(due, self._clock.now()) or 0.001)

    # -- a refused claim -------------------------------------------------------------------------

    def _refused(self, task_id: str, due: datetime | None, current: Task | None) -> RunReport:
        """Why the occurrence `due` is not this invocation's to run, and what follows from it."""
        now = self._clock.now()
        if current is None:
            if due is not None and now < due + LOOK_AGAIN_UNTIL:
                return self._look_again(task_id, due, "its row is not written yet")
            logger.warning("execute event for an unknown task; removing its trigger if any")
            # A trigger left by a failed scheduling whose row is gone: it must not fire again.
            self._triggers.disarm(task_id, None)
            return RunReport(RunOutcome.UNKNOWN_TASK)
        if current.is_interrupted(now):
            return self._settle_interrupted(current)
        occurrence = format_utc(due) if due else None
        if current.status is TaskStatus.RUNNING:
            if current.next_run_at == occurrence or due is None:
                logger.info("another invocation claimed this occurrence; not running it again")
                return RunReport(RunOutcome.LOST_CLAIM)
            if now < due + LOOK_AGAIN_UNTIL:  # the previous occurrence is being recorded
                return self._look_again(task_id, due, "its previous occurrence is running")
        if current.status is TaskStatus.SCHEDULED:
            logger.info(
                "event for another occurrence than the task's; ignoring it",
                extra={"due": occurrence, "next_run_at": current.next_run_at},
            )
            if (
                current.run_attempts
                and current.next_run_at
                and current.next_run_at > (occurrence or "")
            ):
                # An attempt's retry, recorded by an invocation that failed before queueing it
                # (this is that invocation's event again): queue it. A duplicate is refused.
                self._retries.arm_at(task_id, parse_stored_utc(current.next_run_at), now)
            return RunReport(RunOutcome.NOT_DUE)
        logger.info("task is not scheduled; nothing to run", extra={"status": current.status.value})
        if current.status.finished:
            # A late duplicate, or a retry after a crash between recording and releasing.
            self._triggers.release(task_id, current.trigger)
        elif current.status is TaskStatus.PENDING:
            # A row an older version left when its scheduling failed: its trigger must go.
            self._triggers.disarm(task_id, current.trigger)
        return RunReport(RunOutcome.NOT_SCHEDULED)

    def _look_again(self, task_id: str, due: datetime, why: str) -> RunReport:
        logger.info(f"cannot claim the occurrence yet: {why}; looking again shortly")
        self._retries.redeliver(task_id, due, LOOK_AGAIN_SECONDS)
        return RunReport(RunOutcome.WAITING)

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
        trigger = None
        if next_run is not None:
            status, outcome = TaskStatus.SCHEDULED, RunOutcome.RESCHEDULED
            trigger = self._arm_next(task, next_run, now)
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
            trigger=trigger,
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
            self._triggers.release(task.task_id, task.trigger)
        return RunReport(outcome, result, attempted.lateness_ms)

    def _arm_next(self, task: Task, next_run: datetime, now: datetime) -> TriggerKind:
        """Arms `next_run` before the run is recorded, so that a task is never `scheduled` with
        nothing to fire it: should the trigger and the queue both fail, the invocation fails with
        the task `running`, found interrupted later. (Armed for nothing, a trigger does nothing.)"""
        try:
            return self._triggers.arm(task.task_id, next_run, now, task.trigger)
        except DependencyFailure:  # the queue can carry it, 15 minutes at a time
            logger.warning("could not arm the next occurrence's trigger; the queue carries it")
            self._retries.arm_at(task.task_id, next_run, now)
            return self._triggers.kind_after_failed_arm(task.trigger)
