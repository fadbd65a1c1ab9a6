"""Unit tests for execution.Executor with a fake clock, store, triggers, retry queue, dead letters
and action (no AWS, no sleep).

Contract sections 3 and 4: a task never fires before its run time, runs once per occurrence,
records what happened, and a recurring task returns to `scheduled` for its next occurrence.
"""

from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from task_scheduler import execution
from task_scheduler.actions import ActionRegistry, ActionResult
from task_scheduler.errors import DependencyFailure
from task_scheduler.execution import (
    PENDING_GRACE,
    PENDING_POLL_SECONDS,
    QUEUE_EARLY_TOLERANCE,
    Executor,
    RunOutcome,
)
from task_scheduler.model import (
    INTERRUPTED_AFTER,
    MAX_RECORDED_ATTEMPTS,
    MAX_RECORDED_ERROR_BYTES,
    MAX_RECORDED_EXCERPT_BYTES,
    Attempt,
    Task,
    TaskStatus,
    TriggerKind,
)
from task_scheduler.timing import (
    MAX_EARLY_ARRIVAL,
    ceil_to_second,
    format_utc,
    parse_stored_utc,
    retry_delay,
)
from tests.support.fakes import (
    FakeClock,
    FakeDeadLetters,
    FakeRetryQueue,
    FakeStore,
    FakeTriggerRearming,
    RecordingLogger,
)

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
DUE = datetime(2030, 5, 19, 17, 56, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)
PAYLOAD = {"url": "https://example.com/hook", "data": {"n": 1}}


class FakeAction:
    """Records the clock time and arguments of every call; returns or raises what it is given."""

    name = "webhook"

    def __init__(self, clock, result=None, raises=None, results=None, elapse=None):
        self.clock = clock
        self.result = result or ActionResult(True, 120, status_code=200, response_excerpt="ok")
        self.raises = raises
        self.results = list(results or [])  # returned in turn before `result`
        self.elapse = elapse  # how long each call takes on the fake clock
        self.calls = []

    def validate(self, payload):
        return payload

    def execute(self, payload, context):
        self.calls.append((self.clock.now(), payload, context))
        if self.elapse is not None:
            self.clock.current += self.elapse
        if self.raises is not None:
            raise self.raises
        return self.results.pop(0) if self.results else self.result


def make_task(**changes):
    task = Task(
        task_id=TASK_ID,
        action="webhook",
        payload=PAYLOAD,
        run_at="2030-05-19T17:56:00Z",
        status=TaskStatus.SCHEDULED,
        created_at="2030-05-19T17:00:00Z",
        updated_at="2030-05-19T17:00:00Z",
        next_run_at="2030-05-19T17:56:00Z",
        trigger=TriggerKind.RULE,
    )
    return task.with_changes(**changes)


class World:
    def __init__(self, task=None, now=DUE, *, seed=None, **action_options):
        """With a fake retry queue and fake dead letters, as deployed."""
        self.clock = FakeClock(now)
        self.store = FakeStore(*([task] if task else []))
        self.triggers = FakeTriggerRearming()
        self.action = FakeAction(self.clock, **action_options)
        self.retry_queue = FakeRetryQueue(self.store.events)
        self.dead_letters = FakeDeadLetters(self.store.events)
        self.seed = seed
        self.rebuild()

    def rebuild(self):
        """(Re)builds the executor from the world's parts, after a test swapped one of them."""
        self.executor = Executor(
            self.store,
            self.triggers,
            ActionRegistry([self.action]),
            self.clock,
            RETENTION,
            retries=self.retry_queue,
            dead_letters=self.dead_letters,
            rng=Random(self.seed) if self.seed is not None else None,
        )

    def run(self, task_id=TASK_ID, requeue_early=False):
        return self.executor.run(task_id, requeue_early=requeue_early)


# --- nothing to run ---------------------------------------------------------------------------


def test_unknown_task_is_not_run_and_a_leftover_trigger_is_removed():
    # A trigger left by a failed scheduling whose row is gone must not fire again.
    world = World(task=None)
    report = world.run()
    assert report.outcome is RunOutcome.UNKNOWN_TASK
    assert report.result is None
    assert world.action.calls == []
    assert world.store.claims == []
    assert world.store.records == []
    assert world.triggers.disarmed == [TASK_ID]


@pytest.mark.parametrize("status", [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_finished_task_is_not_run_and_its_trigger_is_removed(status):
    world = World(make_task(status=status, next_run_at=None))
    report = world.run()
    assert report.outcome is RunOutcome.NOT_SCHEDULED
    assert world.action.calls == []
    assert world.store.claims == []
    assert world.triggers.disarmed == [TASK_ID]


def test_task_running_elsewhere_recently_is_left_alone():
    claimed_at = DUE - INTERRUPTED_AFTER  # exactly at the limit: not yet interrupted
    world = World(make_task(status=TaskStatus.RUNNING, updated_at=format_utc(claimed_at)))
    report = world.run()
    assert report.outcome is RunOutcome.NOT_SCHEDULED
    assert world.action.calls == []
    assert world.store.claims == []
    assert world.store.records == []
    assert world.triggers.disarmed == []
    assert world.store.tasks[TASK_ID].status is TaskStatus.RUNNING


def test_arrival_more_than_max_early_arrival_before_due_is_not_due():
    world = World(make_task(), now=DUE - MAX_EARLY_ARRIVAL - timedelta(seconds=1))
    report = world.run()
    assert report.outcome is RunOutcome.NOT_DUE
    assert world.action.calls == []
    assert world.clock.sleeps == []
    assert world.store.claims == []
    assert world.store.tasks[TASK_ID].status is TaskStatus.SCHEDULED


def test_arrival_exactly_max_early_arrival_before_due_waits_and_runs():
    world = World(make_task(), now=DUE - MAX_EARLY_ARRIVAL)
    report = world.run()
    assert report.outcome is RunOutcome.COMPLETED
    assert world.clock.sleeps == [MAX_EARLY_ARRIVAL.total_seconds()]
    assert world.action.calls[0][0] == DUE


# --- never before due -------------------------------------------------------------------------


def test_early_arrival_waits_exactly_until_due():
    world = World(make_task(), now=DUE - timedelta(seconds=37))
    report = world.run()
    assert world.clock.sleeps == [37.0]
    assert len(world.action.calls) == 1
    called_at = world.action.calls[0][0]
    assert called_at >= DUE
    assert called_at == DUE
    assert report.outcome is RunOutcome.COMPLETED
    assert report.lateness_ms == 0
    assert world.store.claims == [(TASK_ID, "2030-05-19T17:56:00Z", DUE)]


def test_fractional_wait_is_rounded_up_so_the_action_never_runs_early():
    world = World(make_task(), now=DUE - timedelta(seconds=12, microseconds=345_600))
    world.run()
    assert world.clock.sleeps == [pytest.approx(12.346)]
    assert world.action.calls[0][0] >= DUE


def test_clock_waking_early_is_slept_again_until_due():
    class EarlyWaker(FakeClock):
        """Its first sleep ends two seconds early."""

        def sleep(self, seconds):
            super().sleep(seconds)
            if len(self.sleeps) == 1:
                self.current -= timedelta(seconds=2)

    world = World(make_task(), now=DUE - timedelta(seconds=30))
    world.clock = EarlyWaker(DUE - timedelta(seconds=30))
    world.action.clock = world.clock
    world.rebuild()
    world.run()
    assert world.clock.sleeps == [30.0, 2.0]
    assert world.action.calls[0][0] >= DUE


def test_late_arrival_runs_at_once_and_reports_lateness():
    world = World(make_task(), now=DUE + timedelta(seconds=4, milliseconds=250))
    report = world.run()
    assert world.clock.sleeps == []
    assert report.outcome is RunOutcome.COMPLETED
    assert report.lateness_ms == 4250


# --- one run per occurrence -------------------------------------------------------------------


def test_successful_one_shot_is_completed_and_its_trigger_removed():
    world = World(make_task())
    report = world.run()
    assert report.outcome is RunOutcome.COMPLETED
    assert report.result.status_code == 200
    [record] = world.store.records
    assert record["status"] is TaskStatus.COMPLETED
    assert record["next_run_at"] is None
    assert record["error"] is None
    assert record["retention"] == RETENTION
    assert record["attempt"] == Attempt(
        attempt=1,
        started_at="2030-05-19T17:56:00Z",
        duration_ms=120,
        status_code=200,
        response_excerpt="ok",
    )
    assert world.store.tasks[TASK_ID].status is TaskStatus.COMPLETED
    assert world.triggers.disarmed == [TASK_ID]


def test_action_gets_the_payload_and_a_run_context():
    world = World(make_task(runs=2))
    world.run()
    [(_, payload, context)] = world.action.calls
    assert payload == PAYLOAD
    assert context.task_id == TASK_ID
    assert context.run_id == f"{TASK_ID}:3"
    assert context.attempt == 1


def test_second_run_after_completion_does_nothing():
    world = World(make_task())
    assert world.run().outcome is RunOutcome.COMPLETED
    second = world.run()
    assert second.outcome is RunOutcome.NOT_SCHEDULED
    assert len(world.action.calls) == 1
    assert len(world.store.records) == 1


def test_lost_claim_does_not_run_the_action():
    world = World(make_task())
    world.store.lose_claims = True
    report = world.run()
    assert report.outcome is RunOutcome.LOST_CLAIM
    assert world.action.calls == []
    assert world.store.records == []
    assert world.triggers.disarmed == []


def test_claim_for_an_occurrence_that_already_moved_on_is_lost():
    # Read as due at 17:56; by the time of the claim the row says the next occurrence.
    world = World(make_task())

    def get_then_move_on(task_id):
        task = world.store.tasks[task_id]
        world.store.tasks[task_id] = task.with_changes(next_run_at="2030-05-19T18:11:00Z")
        return task

    world.store.get = get_then_move_on
    assert world.run().outcome is RunOutcome.LOST_CLAIM
    assert world.action.calls == []


# --- failures ---------------------------------------------------------------------------------


def test_failing_action_is_recorded_as_failed_with_its_error():
    result = ActionResult(False, 80, status_code=404, error="HTTP 404", response_excerpt="nope")
    world = World(make_task(), result=result)
    report = world.run()
    assert report.outcome is RunOutcome.FAILED
    assert report.result is result
    [record] = world.store.records
    assert record["status"] is TaskStatus.FAILED
    assert record["error"] == "HTTP 404"
    assert record["attempt"].status_code == 404
    assert record["attempt"].error == "HTTP 404"
    assert record["attempt"].duration_ms == 80
    assert world.store.tasks[TASK_ID].status is TaskStatus.FAILED
    assert world.store.tasks[TASK_ID].last_error == "HTTP 404"
    assert world.triggers.disarmed == [TASK_ID]


def test_action_that_raises_is_recorded_as_failed_not_propagated():
    world = World(make_task(), raises=RuntimeError("boom"))
    report = world.run()
    assert report.outcome is RunOutcome.FAILED
    assert report.result.succeeded is False
    [record] = world.store.records
    assert record["status"] is TaskStatus.FAILED
    assert record["error"] == "internal error: RuntimeError"
    assert record["attempt"].error == "internal error: RuntimeError"
    assert world.store.tasks[TASK_ID].status is TaskStatus.FAILED
    assert world.triggers.disarmed == [TASK_ID]


def test_a_long_error_and_response_are_recorded_within_their_bounds():
    # The stored-size rule counts on every recorded attempt being bounded.
    long = ActionResult(False, 80, status_code=500, error="é" * 5000, response_excerpt="😀" * 5000)
    world = World(make_task(max_attempts=1), result=long)
    world.run()
    [record] = world.store.records
    assert record["attempt"].error == "é" * (MAX_RECORDED_ERROR_BYTES // 2)
    assert record["attempt"].response_excerpt == "😀" * (MAX_RECORDED_EXCERPT_BYTES // 4)


def test_attempts_are_numbered_after_the_recorded_ones():
    earlier = Attempt(attempt=1, started_at="2030-05-19T17:41:00Z", duration_ms=5, status_code=200)
    world = World(make_task(attempts=(earlier,)))
    world.run()
    assert world.store.records[0]["attempt"].attempt == 2


# --- recurring tasks --------------------------------------------------------------------------


def cron_task(expression, next_run_at):
    return make_task(run_at=expression, recurring=True, next_run_at=next_run_at)


def test_recurring_task_is_rescheduled_for_the_next_occurrence():
    world = World(cron_task("cron(0/15 * * * ? *)", "2030-05-19T17:45:00Z"))
    world.clock.current = datetime(2030, 5, 19, 17, 45, 0, tzinfo=UTC)
    report = world.run()
    assert report.outcome is RunOutcome.RESCHEDULED
    [record] = world.store.records
    assert record["status"] is TaskStatus.SCHEDULED
    assert record["next_run_at"] == "2030-05-19T18:00:00Z"
    assert world.store.tasks[TASK_ID].status is TaskStatus.SCHEDULED
    assert world.store.tasks[TASK_ID].next_run_at == "2030-05-19T18:00:00Z"
    assert world.triggers.disarmed == []


def test_recurring_next_occurrence_is_after_the_time_the_run_ended():
    class SlowAction(FakeAction):
        def execute(self, payload, context):
            result = super().execute(payload, context)
            self.clock.current += timedelta(minutes=20)  # the run took 20 minutes
            return result

    world = World(cron_task("cron(0/15 * * * ? *)", "2030-05-19T17:45:00Z"))
    world.clock.current = datetime(2030, 5, 19, 17, 45, 0, tzinfo=UTC)
    world.action = SlowAction(world.clock)
    world.rebuild()
    world.run()
    assert world.store.records[0]["next_run_at"] == "2030-05-19T18:15:00Z"


def test_failed_run_of_a_recurring_task_is_recorded_and_rescheduled():
    # One attempt allowed: the retryable failure ends the run (with attempts left it would be
    # retried, now that the executor always has a retry queue).
    result = ActionResult(False, 10, status_code=500, error="HTTP 500", retryable=True)
    task = cron_task("cron(0 18 * * ? *)", "2030-05-19T18:00:00Z").with_changes(max_attempts=1)
    world = World(task, result=result)
    world.clock.current = datetime(2030, 5, 19, 18, 0, 0, tzinfo=UTC)
    report = world.run()
    assert report.outcome is RunOutcome.RESCHEDULED
    [record] = world.store.records
    assert record["status"] is TaskStatus.SCHEDULED
    assert record["next_run_at"] == "2030-05-20T18:00:00Z"
    assert record["error"] == "HTTP 500"
    assert world.triggers.disarmed == []


def test_recurring_task_after_its_last_occurrence_completes_and_is_disarmed():
    # Every day at 18:00 in May 2030 only: the 31st is the last occurrence.
    world = World(cron_task("cron(0 18 * 5 ? 2030)", "2030-05-31T18:00:00Z"))
    world.clock.current = datetime(2030, 5, 31, 18, 0, 0, tzinfo=UTC)
    report = world.run()
    assert report.outcome is RunOutcome.COMPLETED
    assert world.store.records[0]["next_run_at"] is None
    assert world.store.tasks[TASK_ID].status is TaskStatus.COMPLETED
    assert world.triggers.disarmed == [TASK_ID]


def test_rescheduled_task_runs_again_at_its_next_occurrence_only():
    world = World(cron_task("cron(0/15 * * * ? *)", "2030-05-19T17:45:00Z"))
    world.clock.current = datetime(2030, 5, 19, 17, 45, 0, tzinfo=UTC)
    assert world.run().outcome is RunOutcome.RESCHEDULED
    # The rule fires again early in the minute of the next occurrence.
    world.clock.current = datetime(2030, 5, 19, 17, 59, 58, tzinfo=UTC)
    assert world.run().outcome is RunOutcome.RESCHEDULED
    assert [call[0] for call in world.action.calls] == [
        datetime(2030, 5, 19, 17, 45, tzinfo=UTC),
        datetime(2030, 5, 19, 18, 0, tzinfo=UTC),
    ]
    assert [call[2].run_id for call in world.action.calls] == [f"{TASK_ID}:1", f"{TASK_ID}:2"]
    assert world.store.tasks[TASK_ID].next_run_at == "2030-05-19T18:15:00Z"


# --- interrupted executions -------------------------------------------------------------------

INTERRUPTED_ERROR = "interrupted: the execute function stopped before recording the outcome"


def interrupted_task(claimed_at, **changes):
    return make_task(status=TaskStatus.RUNNING, updated_at=format_utc(claimed_at), **changes)


def test_one_shot_left_running_is_recorded_as_an_interrupted_failure():
    claimed_at = DUE + timedelta(seconds=1)
    now = claimed_at + INTERRUPTED_AFTER + timedelta(seconds=1)
    world = World(interrupted_task(claimed_at), now=now)
    report = world.run()
    assert report.outcome is RunOutcome.FAILED
    assert report.result.succeeded is False
    assert report.lateness_ms is None
    assert world.action.calls == []  # never run twice: the first run may have delivered
    assert world.store.claims == []
    [record] = world.store.records
    assert record["status"] is TaskStatus.FAILED
    assert record["next_run_at"] is None
    assert record["error"] == INTERRUPTED_ERROR
    assert record["error"].startswith("interrupted")
    assert record["attempt"] == Attempt(
        attempt=1,
        started_at=format_utc(claimed_at),
        duration_ms=151_000,
        error=INTERRUPTED_ERROR,
    )
    assert world.store.tasks[TASK_ID].status is TaskStatus.FAILED
    assert world.store.tasks[TASK_ID].last_error == INTERRUPTED_ERROR
    assert world.triggers.disarmed == [TASK_ID]


def test_recurring_task_left_running_is_recorded_and_rescheduled():
    claimed_at = datetime(2030, 5, 19, 17, 45, 0, tzinfo=UTC)
    now = datetime(2030, 5, 19, 17, 50, 0, tzinfo=UTC)
    task = interrupted_task(
        claimed_at,
        run_at="cron(0/15 * * * ? *)",
        recurring=True,
        next_run_at="2030-05-19T17:45:00Z",
    )
    world = World(task, now=now)
    report = world.run()
    assert report.outcome is RunOutcome.RESCHEDULED
    assert world.action.calls == []
    [record] = world.store.records
    assert record["status"] is TaskStatus.SCHEDULED
    assert record["next_run_at"] == "2030-05-19T18:00:00Z"
    assert record["error"].startswith("interrupted")
    assert record["attempt"].duration_ms == 300_000
    assert world.store.tasks[TASK_ID].status is TaskStatus.SCHEDULED
    assert world.triggers.disarmed == []


def test_interrupted_attempt_is_numbered_after_the_last_recorded_one():
    earlier = Attempt(attempt=7, started_at="2030-05-19T17:41:00Z", duration_ms=5)
    world = World(
        interrupted_task(DUE, attempts=(earlier,)),
        now=DUE + timedelta(minutes=10),
    )
    world.run()
    assert world.store.records[0]["attempt"].attempt == 8


def test_interrupted_run_recorded_by_another_invocation_first_is_a_lost_claim():
    world = World(interrupted_task(DUE), now=DUE + timedelta(minutes=10))
    world.store.lose_records = True
    report = world.run()
    assert report.outcome is RunOutcome.LOST_CLAIM
    assert world.triggers.disarmed == []


# --- the run's outcome could not be recorded --------------------------------------------------


def test_record_refused_because_the_task_changed_is_a_lost_claim(monkeypatch):
    recorder = RecordingLogger()
    monkeypatch.setattr(execution, "logger", recorder)
    world = World(make_task())
    world.store.lose_records = True
    report = world.run()
    assert report.outcome is RunOutcome.LOST_CLAIM
    assert report.result is world.action.result  # it did run; only the record was refused
    assert len(world.action.calls) == 1
    assert len(world.store.records) == 1
    assert world.triggers.disarmed == []
    assert (
        "warning",
        "the task changed while it ran; this run's outcome was not recorded",
    ) in recorder.lines


def test_record_refused_for_a_failed_run_is_a_lost_claim_too():
    result = ActionResult(False, 80, status_code=500, error="HTTP 500")
    world = World(make_task(), result=result)
    world.store.lose_records = True
    assert world.run().outcome is RunOutcome.LOST_CLAIM
    assert world.triggers.disarmed == []


# --- attempt numbers past the recorded cap ----------------------------------------------------


def numbered_attempts(first, last):
    return tuple(
        Attempt(attempt=n, started_at="2030-05-01T00:00:00Z", duration_ms=1)
        for n in range(first, last + 1)
    )


def test_attempt_number_follows_the_last_recorded_attempt_not_the_count():
    # The stored list is capped, so its length says nothing about how many attempts ran.
    assert MAX_RECORDED_ATTEMPTS == 50
    world = World(make_task(attempts=numbered_attempts(71, 120)))
    world.run()
    assert world.store.records[0]["attempt"].attempt == 121


def test_attempt_numbers_keep_increasing_once_the_list_is_capped():
    task = cron_task("cron(0/15 * * * ? *)", "2030-05-19T17:45:00Z")
    world = World(task.with_changes(attempts=numbered_attempts(1, 50)))
    for minutes in (45, 60, 75):
        world.clock.current = datetime(2030, 5, 19, 17, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        assert world.run().outcome is RunOutcome.RESCHEDULED
    assert [record["attempt"].attempt for record in world.store.records] == [51, 52, 53]
    stored = world.store.tasks[TASK_ID].attempts
    assert len(stored) == MAX_RECORDED_ATTEMPTS
    assert [stored[0].attempt, stored[-1].attempt] == [4, 53]


# --- a task still pending ---------------------------------------------------------------------


def test_task_still_pending_after_the_grace_is_not_run_and_disarmed():
    world = World(make_task(status=TaskStatus.PENDING), now=DUE - timedelta(seconds=30))
    report = world.run()
    assert report.outcome is RunOutcome.NOT_SCHEDULED
    assert world.action.calls == []
    assert world.store.claims == []
    assert world.triggers.disarmed == [TASK_ID]
    # It polled for the whole grace, and no longer.
    assert set(world.clock.sleeps) == {PENDING_POLL_SECONDS}
    waited = timedelta(seconds=sum(world.clock.sleeps))
    assert PENDING_GRACE <= waited < PENDING_GRACE + timedelta(seconds=2 * PENDING_POLL_SECONDS)


def test_pending_task_whose_row_is_removed_meanwhile_is_unknown_and_disarmed():
    # The API's undo deletes the row while the direct dispatch waits for it.
    world = World(make_task(status=TaskStatus.PENDING), now=DUE - timedelta(seconds=5))
    real_get = world.store.get
    reads = []

    def get_then_api_undoes(task_id):
        task = real_get(task_id)
        reads.append(task)
        world.store.tasks.pop(task_id, None)
        return task

    world.store.get = get_then_api_undoes
    report = world.run()
    assert report.outcome is RunOutcome.UNKNOWN_TASK
    assert reads[0].status is TaskStatus.PENDING
    assert world.action.calls == []
    assert world.triggers.disarmed == [TASK_ID]


# --- a direct dispatch racing the API's last write --------------------------------------------


def test_direct_dispatch_arriving_before_the_task_is_marked_scheduled_still_runs_it():
    # An imminent one-shot task is dispatched straight to the execute function (an asynchronous
    # Lambda invocation) *before* the API marks the row `scheduled` (write order: pending -> arm
    # -> scheduled). If that invocation reads the row first it sees `pending`; the API's write
    # lands a moment later. Nothing else will ever run the task, so it must not be dropped
    # (contract section 4: nothing may be silently missed).
    world = World(make_task(status=TaskStatus.PENDING), now=DUE - timedelta(seconds=5))
    reads = []
    real_get = world.store.get

    def get_then_api_marks_scheduled(task_id):
        task = real_get(task_id)
        reads.append(task.status)
        if task.status is TaskStatus.PENDING:  # the API's mark_scheduled lands right after
            world.store.tasks[task_id] = task.with_changes(status=TaskStatus.SCHEDULED)
        return task

    world.store.get = get_then_api_marks_scheduled
    report = world.run()
    assert reads[0] is TaskStatus.PENDING
    assert report.outcome is RunOutcome.COMPLETED
    assert len(world.action.calls) == 1
    assert world.action.calls[0][0] >= DUE


# --- retries and dead letters (contract section 5) --------------------------------------------

SERVER_ERROR = ActionResult(False, 30, status_code=503, error="HTTP 503", retryable=True)
GONE = ActionResult(False, 12, status_code=410, error="HTTP 410: the receiver is gone")
ELAPSE = timedelta(seconds=1, microseconds=250_000)  # how long a delivery takes


def test_retryable_failure_with_attempts_left_is_recorded_and_retried_after_a_backoff():
    world = World(make_task(max_attempts=3), seed=11, result=SERVER_ERROR, elapse=ELAPSE)
    report = world.run()
    assert report.outcome is RunOutcome.RETRYING
    assert report.result is SERVER_ERROR
    now = DUE + ELAPSE
    delay = timedelta(seconds=retry_delay(1, None, Random(11)))
    [retry] = world.store.retries
    retry_at = parse_stored_utc(retry["retry_at"])
    # Never sooner than the backoff; rounded up to the second, as stored times are.
    assert retry_at >= now + delay
    assert retry_at - (now + delay) < timedelta(seconds=1)
    assert retry_at == ceil_to_second(now + delay)
    assert retry["now"] == now
    assert retry["error"] == "HTTP 503"
    assert retry["attempt"] == Attempt(
        attempt=1,
        started_at="2030-05-19T17:56:00Z",
        duration_ms=30,
        status_code=503,
        error="HTTP 503",
    )
    assert world.retry_queue.armed == [(TASK_ID, retry_at, now)]
    # Recorded first, then armed: the task waits `scheduled` for `retry_at` whatever happens.
    assert world.store.events == [("record_retry", retry["retry_at"]), ("arm_at", TASK_ID)]
    assert world.dead_letters.sent == []
    assert world.store.records == []
    assert world.triggers.disarmed == []
    stored = world.store.tasks[TASK_ID]
    assert stored.status is TaskStatus.SCHEDULED
    assert stored.next_run_at == retry["retry_at"]
    assert stored.run_attempts == 1
    assert stored.last_error == "HTTP 503"


def test_first_retry_comes_within_the_first_backoff_bound():
    for seed in range(20):
        world = World(make_task(), seed=seed, result=SERVER_ERROR)
        assert world.run().outcome is RunOutcome.RETRYING
        [(_, retry_at, now)] = world.retry_queue.armed
        assert now <= retry_at <= now + timedelta(seconds=2)


def test_retry_after_sets_the_earliest_retry():
    result = ActionResult(
        False, 5, status_code=429, error="HTTP 429", retryable=True, retry_after_seconds=120.0
    )
    world = World(make_task(), seed=3, result=result, elapse=ELAPSE)
    assert world.run().outcome is RunOutcome.RETRYING
    assert world.store.retries[0]["retry_at"] == "2030-05-19T17:58:02Z"
    assert world.retry_queue.armed[0][1] == datetime(2030, 5, 19, 17, 58, 2, tzinfo=UTC)


def run_until_done(world, limit=25):
    """Runs the task, then each retry when the retry queue delivers it (half a second early,
    within the tolerance for a whole-second delay)."""
    reports = [world.run()]
    while reports[-1].outcome is RunOutcome.RETRYING and len(reports) < limit:
        _, retry_at, _ = world.retry_queue.armed[-1]
        world.clock.current = retry_at - timedelta(milliseconds=500)
        reports.append(world.run(requeue_early=True))
    return [report.outcome for report in reports]


def test_success_after_retries_completes_and_resets_the_run_attempts():
    world = World(
        make_task(max_attempts=5),
        seed=5,
        results=[SERVER_ERROR, SERVER_ERROR],
        elapse=ELAPSE,
    )
    outcomes = run_until_done(world)
    assert outcomes == [RunOutcome.RETRYING, RunOutcome.RETRYING, RunOutcome.COMPLETED]
    contexts = [context for _, _, context in world.action.calls]
    assert [context.attempt for context in contexts] == [1, 2, 3]
    assert {context.run_id for context in contexts} == {f"{TASK_ID}:1"}
    assert [retry["attempt"].attempt for retry in world.store.retries] == [1, 2]
    [record] = world.store.records
    assert record["status"] is TaskStatus.COMPLETED
    assert record["attempt"].attempt == 3
    assert record["error"] is None
    stored = world.store.tasks[TASK_ID]
    assert stored.status is TaskStatus.COMPLETED
    assert stored.run_attempts == 0
    assert [attempt.attempt for attempt in stored.attempts] == [1, 2, 3]
    assert stored.last_error is None
    assert world.dead_letters.sent == []
    assert world.triggers.disarmed == [TASK_ID]


def test_retries_never_run_before_their_retry_time():
    world = World(make_task(), seed=8, results=[SERVER_ERROR] * 3, elapse=ELAPSE)
    run_until_done(world)
    armed_times = [at for _, at, _ in world.retry_queue.armed]
    called_at = [at for at, _, _ in world.action.calls]
    assert len(called_at) == 4
    assert all(call >= at for call, at in zip(called_at[1:], armed_times, strict=True))


def test_exhausted_attempts_fail_the_task_and_dead_letter_it_before_recording():
    world = World(make_task(max_attempts=3), seed=2, result=SERVER_ERROR, elapse=ELAPSE)
    outcomes = run_until_done(world)
    assert outcomes == [RunOutcome.RETRYING, RunOutcome.RETRYING, RunOutcome.FAILED]
    assert [context.attempt for _, _, context in world.action.calls] == [1, 2, 3]
    final_now = world.clock.now()
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", "HTTP 503", 3, final_now)]
    assert world.store.events[-2:] == [
        ("dead_letter", TASK_ID),
        ("record_run", TaskStatus.FAILED),
    ]
    assert len(world.retry_queue.armed) == 2
    stored = world.store.tasks[TASK_ID]
    assert stored.status is TaskStatus.FAILED
    assert stored.last_error == "HTTP 503"
    assert world.triggers.disarmed == [TASK_ID]


def test_last_allowed_attempt_is_not_retried():
    earlier = (
        Attempt(attempt=1, started_at="2030-05-19T17:56:00Z", duration_ms=9, error="HTTP 503"),
        Attempt(attempt=2, started_at="2030-05-19T17:56:02Z", duration_ms=9, error="HTTP 503"),
    )
    retry_at = datetime(2030, 5, 19, 17, 56, 9, tzinfo=UTC)
    task = make_task(
        max_attempts=3, run_attempts=2, attempts=earlier, next_run_at=format_utc(retry_at)
    )
    world = World(task, now=retry_at, seed=1, result=SERVER_ERROR)
    report = world.run(requeue_early=True)
    assert report.outcome is RunOutcome.FAILED
    [(_, _, context)] = world.action.calls
    assert context.attempt == 3
    assert world.store.retries == []
    assert world.retry_queue.armed == []
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", "HTTP 503", 3, retry_at)]
    assert world.store.events == [("dead_letter", TASK_ID), ("record_run", TaskStatus.FAILED)]
    assert world.store.records[0]["attempt"].attempt == 3


def test_one_attempt_allowed_fails_at_the_first_retryable_failure():
    world = World(make_task(max_attempts=1), seed=1, result=SERVER_ERROR)
    assert world.run().outcome is RunOutcome.FAILED
    assert world.retry_queue.armed == []
    assert [sent[3] for sent in world.dead_letters.sent] == [1]


@pytest.mark.parametrize(
    "result",
    [
        GONE,
        ActionResult(False, 3, status_code=404, error="HTTP 404"),
        ActionResult(False, 3, status_code=302, error="HTTP 302: redirects are not followed"),
        ActionResult(
            False, 1, error="refused: example.com resolves to 10.0.0.1, a private address"
        ),
    ],
    ids=["410", "404", "302", "refused"],
)
def test_non_retryable_failure_fails_at_once_and_is_dead_lettered(result):
    world = World(make_task(max_attempts=5), seed=1, result=result)
    report = world.run()
    assert report.outcome is RunOutcome.FAILED
    assert world.store.retries == []
    assert world.retry_queue.armed == []
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", result.error, 1, DUE)]
    assert world.store.events == [("dead_letter", TASK_ID), ("record_run", TaskStatus.FAILED)]
    assert world.store.tasks[TASK_ID].status is TaskStatus.FAILED
    assert world.triggers.disarmed == [TASK_ID]


def test_crashing_action_is_not_retried_and_is_dead_lettered():
    world = World(make_task(), seed=1, raises=RuntimeError("boom"))
    assert world.run().outcome is RunOutcome.FAILED
    assert world.retry_queue.armed == []
    assert world.dead_letters.sent[0][2] == "internal error: RuntimeError"


def test_success_does_not_dead_letter():
    world = World(make_task(), seed=1)
    assert world.run().outcome is RunOutcome.COMPLETED
    assert world.dead_letters.sent == []
    assert world.retry_queue.armed == []


def test_dead_letter_failure_leaves_the_run_unrecorded_so_the_invocation_is_retried():
    world = World(make_task(max_attempts=1), seed=1, result=SERVER_ERROR)
    world.dead_letters.fail = True
    with pytest.raises(DependencyFailure, match="dead-letter"):
        world.run()
    assert world.store.records == []
    assert world.store.tasks[TASK_ID].status is TaskStatus.RUNNING
    assert world.triggers.disarmed == []


def test_retry_refused_because_the_task_changed_is_a_lost_claim_and_not_armed():
    world = World(make_task(), seed=1, result=SERVER_ERROR)
    world.store.lose_records = True
    report = world.run()
    assert report.outcome is RunOutcome.LOST_CLAIM
    assert len(world.store.retries) == 1
    assert world.retry_queue.armed == []
    assert world.dead_letters.sent == []


def test_failing_to_arm_the_retry_raises_and_leaves_the_task_waiting_for_it():
    world = World(make_task(), seed=1, result=SERVER_ERROR)
    world.retry_queue.fail = True
    with pytest.raises(DependencyFailure):
        world.run()
    [retry] = world.store.retries
    stored = world.store.tasks[TASK_ID]
    assert stored.status is TaskStatus.SCHEDULED
    assert stored.next_run_at == retry["retry_at"]


def test_interrupted_run_is_dead_lettered_even_with_attempts_left():
    # Never retried: the interrupted attempt may have reached the receiver.
    claimed_at = DUE + timedelta(seconds=1)
    now = claimed_at + INTERRUPTED_AFTER + timedelta(seconds=1)
    world = World(interrupted_task(claimed_at), now=now, seed=1)
    assert world.run().outcome is RunOutcome.FAILED
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", INTERRUPTED_ERROR, 1, now)]
    assert world.store.events == [("dead_letter", TASK_ID), ("record_run", TaskStatus.FAILED)]


# --- run ids ----------------------------------------------------------------------------------


def test_run_id_is_stable_across_retries_and_changes_for_the_next_run_of_a_recurring_task():
    task = cron_task("cron(0/15 * * * ? *)", "2030-05-19T17:45:00Z")
    world = World(task, seed=4, results=[SERVER_ERROR], elapse=ELAPSE)
    world.clock.current = datetime(2030, 5, 19, 17, 45, tzinfo=UTC)
    assert run_until_done(world) == [RunOutcome.RETRYING, RunOutcome.RESCHEDULED]
    assert world.store.tasks[TASK_ID].next_run_at == "2030-05-19T18:00:00Z"
    assert world.store.tasks[TASK_ID].run_attempts == 0
    world.clock.current = datetime(2030, 5, 19, 18, 0, tzinfo=UTC)
    assert world.run().outcome is RunOutcome.RESCHEDULED
    contexts = [context for _, _, context in world.action.calls]
    assert [context.run_id for context in contexts] == [
        f"{TASK_ID}:1",
        f"{TASK_ID}:1",
        f"{TASK_ID}:2",
    ]
    assert [context.attempt for context in contexts] == [1, 2, 1]
    assert world.dead_letters.sent == []


def test_recurring_task_out_of_attempts_is_rescheduled_not_dead_lettered():
    task = cron_task("cron(0/15 * * * ? *)", "2030-05-19T17:45:07Z").with_changes(
        max_attempts=2, run_attempts=1
    )
    world = World(task, seed=1, result=SERVER_ERROR)
    world.clock.current = datetime(2030, 5, 19, 17, 45, 7, tzinfo=UTC)
    assert world.run().outcome is RunOutcome.RESCHEDULED
    assert world.dead_letters.sent == []
    assert world.retry_queue.armed == []
    assert world.store.records[0]["error"] == "HTTP 503"
    assert world.store.tasks[TASK_ID].next_run_at == "2030-05-19T18:00:00Z"
    assert world.store.tasks[TASK_ID].run_attempts == 0


# --- retry-queue deliveries that arrive early -------------------------------------------------


def test_early_retry_queue_delivery_is_sent_on_without_waiting():
    # SQS delays a message at most 15 minutes: a longer backoff arrives early and goes round again.
    now = DUE - timedelta(minutes=40)
    world = World(make_task(), now=now, seed=1)
    report = world.run(requeue_early=True)
    assert report.outcome is RunOutcome.NOT_DUE
    assert world.retry_queue.armed == [(TASK_ID, DUE, now)]
    assert world.clock.sleeps == []
    assert world.store.claims == []
    assert world.action.calls == []
    assert world.store.tasks[TASK_ID].status is TaskStatus.SCHEDULED


def test_early_event_not_from_the_retry_queue_is_ignored_not_sent_on():
    world = World(make_task(), now=DUE - timedelta(minutes=40), seed=1)
    report = world.run(requeue_early=False)
    assert report.outcome is RunOutcome.NOT_DUE
    assert world.retry_queue.armed == []
    assert world.clock.sleeps == []
    assert world.action.calls == []


def test_retry_queue_delivery_just_before_due_waits_and_runs():
    world = World(make_task(), now=DUE - QUEUE_EARLY_TOLERANCE, seed=1)
    report = world.run(requeue_early=True)
    assert report.outcome is RunOutcome.COMPLETED
    assert world.retry_queue.armed == []
    assert world.clock.sleeps == [QUEUE_EARLY_TOLERANCE.total_seconds()]


def test_retry_queue_delivery_early_is_sent_round_again_not_slept_through():
    # A hop of a long Retry-After: the queue caps each delay at 15 minutes.
    world = World(make_task(), now=DUE - timedelta(seconds=30), seed=1)
    assert world.run(requeue_early=True).outcome is RunOutcome.NOT_DUE
    assert world.clock.sleeps == []
    assert world.action.calls == []
    assert [(task_id, at) for task_id, at, _ in world.retry_queue.armed] == [(TASK_ID, DUE)]


# --- recurring tasks whose cron is read in a time zone ----------------------------------------


def zoned_task(expression, timezone, next_run_at):
    return cron_task(expression, next_run_at).with_changes(timezone=timezone)


def zoned_world(expression, timezone, next_run_at):
    """A world whose store and triggers share one log, to check the order of their calls."""
    world = World(zoned_task(expression, timezone, next_run_at))
    world.triggers.log = world.store.log
    world.clock.current = parse_stored_utc(next_run_at)
    return world


def test_zoned_task_is_rearmed_for_its_next_occurrence_before_the_run_is_recorded():
    # New York's fall-back day: 01:30 ran at its first instant (EDT); the next is tomorrow's
    # 01:30 EST, not the second 01:30 of today an hour later.
    world = zoned_world("cron(30 1 * * ? *)", "America/New_York", "2027-11-07T05:30:00Z")
    assert world.run().outcome is RunOutcome.RESCHEDULED
    next_run = datetime(2027, 11, 8, 6, 30, tzinfo=UTC)
    assert world.triggers.rearmed == [(TASK_ID, "America/New_York", next_run, world.clock.now())]
    assert world.store.records[0]["next_run_at"] == "2027-11-08T06:30:00Z"
    assert world.store.tasks[TASK_ID].next_run_at == "2027-11-08T06:30:00Z"
    calls = [entry[0] for entry in world.store.log]
    assert calls.index("rearm") < calls.index("record_run")
    assert world.retry_queue.armed == []
    assert world.triggers.disarmed == []


def test_zoned_task_skips_a_local_time_that_does_not_exist():
    # 02:30 does not exist in New York on 2027-03-14.
    world = zoned_world("cron(30 2 * * ? *)", "America/New_York", "2027-03-13T07:30:00Z")
    world.run()
    assert world.store.records[0]["next_run_at"] == "2027-03-15T06:30:00Z"


def test_half_hour_zone_next_occurrence():
    world = zoned_world("cron(0 9 * * ? *)", "Asia/Kolkata", "2027-03-13T03:30:00Z")
    world.run()
    assert world.store.records[0]["next_run_at"] == "2027-03-14T03:30:00Z"


def test_utc_recurring_task_leaves_its_trigger_to_the_backend_and_needs_no_queue():
    # The rules backend's rule carries a UTC cron and fires on every occurrence by itself.
    world = zoned_world("cron(0/15 * * * ? *)", "UTC", "2030-05-19T17:45:00Z")
    assert world.run().outcome is RunOutcome.RESCHEDULED
    assert ("rearm", TASK_ID) in world.store.log
    assert world.retry_queue.armed == []


def test_next_occurrence_rearmed_too_late_to_fire_also_goes_through_the_retry_queue():
    world = zoned_world("cron(* * * * ? *)", "Asia/Kolkata", "2027-03-13T03:30:00Z")
    world.action.elapse = timedelta(seconds=55)  # the run ends 5 s before the next minute
    world.triggers.too_late = True
    world.run()
    next_run = datetime(2027, 3, 13, 3, 31, tzinfo=UTC)
    assert world.retry_queue.armed == [(TASK_ID, next_run, world.clock.now())]
    assert world.store.records[0]["next_run_at"] == "2027-03-13T03:31:00Z"
    assert world.store.events.index(("arm_at", TASK_ID)) < world.store.events.index(
        ("record_run", TaskStatus.SCHEDULED)
    )


def test_failing_to_rearm_hands_the_next_occurrence_to_the_retry_queue_and_records_the_run():
    world = zoned_world("cron(30 1 * * ? *)", "Europe/London", "2027-10-31T00:30:00Z")
    world.triggers.fail_rearm = DependencyFailure("Could not re-arm the task's EventBridge rule.")
    assert world.run().outcome is RunOutcome.RESCHEDULED
    next_run = datetime(2027, 11, 1, 1, 30, tzinfo=UTC)  # 01:30 GMT
    assert world.retry_queue.armed == [(TASK_ID, next_run, world.clock.now())]
    assert world.store.tasks[TASK_ID].status is TaskStatus.SCHEDULED
    assert world.store.tasks[TASK_ID].next_run_at == "2027-11-01T01:30:00Z"


def test_failing_to_rearm_and_to_queue_leaves_the_task_running_not_scheduled_without_trigger():
    world = zoned_world("cron(30 1 * * ? *)", "Europe/London", "2027-10-31T00:30:00Z")
    world.triggers.fail_rearm = DependencyFailure("Could not re-arm the task's EventBridge rule.")
    world.retry_queue.fail = True
    with pytest.raises(DependencyFailure):
        world.run()
    assert world.store.records == []
    assert world.store.tasks[TASK_ID].status is TaskStatus.RUNNING


def test_zoned_task_after_its_last_occurrence_is_disarmed_not_rearmed():
    world = zoned_world("cron(30 1 * 11 ? 2027)", "America/New_York", "2027-11-30T06:30:00Z")
    assert world.run().outcome is RunOutcome.COMPLETED
    assert world.triggers.rearmed == []
    assert world.triggers.disarmed == [TASK_ID]


def test_interrupted_zoned_task_is_rearmed_for_its_next_occurrence():
    claimed_at = datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    task = zoned_task("cron(30 1 * * ? *)", "America/New_York", "2027-11-07T05:30:00Z")
    world = World(task.with_changes(status=TaskStatus.RUNNING, updated_at=format_utc(claimed_at)))
    world.clock.current = claimed_at + INTERRUPTED_AFTER + timedelta(seconds=1)
    assert world.run().outcome is RunOutcome.RESCHEDULED
    assert [entry[2] for entry in world.triggers.rearmed] == [
        datetime(2027, 11, 8, 6, 30, tzinfo=UTC)
    ]
