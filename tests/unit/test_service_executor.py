"""Unit tests for service.Executor with a fake clock, store, triggers and action (no AWS, no sleep).

Contract sections 3 and 4: a task never fires before its run time, runs once per occurrence,
records what happened, and a recurring task returns to `scheduled` for its next occurrence.
"""

from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler import service
from task_scheduler.actions import ActionRegistry, ActionResult
from task_scheduler.model import MAX_RECORDED_ATTEMPTS, Attempt, Task, TaskStatus, TriggerKind
from task_scheduler.service import (
    INTERRUPTED_AFTER,
    PENDING_GRACE,
    PENDING_POLL_SECONDS,
    Executor,
    RunOutcome,
)
from task_scheduler.timing import MAX_EARLY_ARRIVAL, format_utc

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
DUE = datetime(2030, 5, 19, 17, 56, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)
PAYLOAD = {"url": "https://example.com/hook", "data": {"n": 1}}


class FakeClock:
    """now() is settable; sleep(s) advances it by exactly s and records s."""

    def __init__(self, now):
        self.current = now
        self.sleeps = []

    def now(self):
        return self.current

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.current += timedelta(seconds=seconds)


class FakeStore:
    """TaskStore's execute-side methods over a dict, with the same conditions as DynamoDB."""

    def __init__(self, *tasks):
        self.tasks = {task.task_id: task for task in tasks}
        self.claims = []
        self.records = []
        self.lose_claims = False
        self.lose_records = False

    def get(self, task_id):
        return self.tasks.get(task_id)

    def claim(self, task_id, due, now):
        self.claims.append((task_id, due, now))
        task = self.tasks.get(task_id)
        if self.lose_claims or task is None:
            return False
        if task.status is not TaskStatus.SCHEDULED or task.next_run_at != due:
            return False
        self.tasks[task_id] = task.with_changes(
            status=TaskStatus.RUNNING, updated_at=format_utc(now)
        )
        return True

    def record_run(self, task, status, attempt, now, *, next_run_at, error, retention):
        self.records.append(
            {
                "status": status,
                "attempt": attempt,
                "now": now,
                "next_run_at": next_run_at,
                "error": error,
                "retention": retention,
            }
        )
        current = self.tasks.get(task.task_id)
        # Conditional on `running`, like the real write; False when another invocation won.
        if self.lose_records or current is None or current.status is not TaskStatus.RUNNING:
            return False
        self.tasks[task.task_id] = current.with_changes(
            status=status,
            updated_at=format_utc(now),
            attempts=(*task.attempts, attempt)[-MAX_RECORDED_ATTEMPTS:],
            runs=current.runs + 1,
            next_run_at=next_run_at,
            last_error=error,
        )
        return True


class FakeTriggers:
    def __init__(self):
        self.disarmed = []

    def arm(self, task_id, fire_at, cron, recurring, now):
        raise AssertionError("the executor never arms")

    def disarm(self, task_id):
        self.disarmed.append(task_id)


class FakeAction:
    """Records the clock time and arguments of every call; returns or raises what it is given."""

    name = "webhook"

    def __init__(self, clock, result=None, raises=None):
        self.clock = clock
        self.result = result or ActionResult(True, 120, status_code=200, response_excerpt="ok")
        self.raises = raises
        self.calls = []

    def validate(self, payload):
        return payload

    def execute(self, payload, context):
        self.calls.append((self.clock.now(), payload, context))
        if self.raises is not None:
            raise self.raises
        return self.result


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
    def __init__(self, task=None, now=DUE, **action_options):
        self.clock = FakeClock(now)
        self.store = FakeStore(*([task] if task else []))
        self.triggers = FakeTriggers()
        self.action = FakeAction(self.clock, **action_options)
        self.executor = Executor(
            self.store, self.triggers, ActionRegistry([self.action]), self.clock, RETENTION
        )

    def run(self, task_id=TASK_ID):
        return self.executor.run(task_id)


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
    world.executor = Executor(
        world.store, world.triggers, ActionRegistry([world.action]), world.clock, RETENTION
    )
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
    world.executor = Executor(
        world.store, world.triggers, ActionRegistry([world.action]), world.clock, RETENTION
    )
    world.run()
    assert world.store.records[0]["next_run_at"] == "2030-05-19T18:15:00Z"


def test_failed_run_of_a_recurring_task_is_recorded_and_rescheduled():
    result = ActionResult(False, 10, status_code=500, error="HTTP 500", retryable=True)
    world = World(cron_task("cron(0 18 * * ? *)", "2030-05-19T18:00:00Z"), result=result)
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


class RecordingLogger:
    """Stands in for the service module's logger: keeps (level, message) of every call."""

    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        def record(message, *args, **kwargs):
            self.lines.append((level, message))

        return record


def test_record_refused_because_the_task_changed_is_a_lost_claim(monkeypatch):
    recorder = RecordingLogger()
    monkeypatch.setattr(service, "logger", recorder)
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
