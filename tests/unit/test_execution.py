"""Unit tests for execution.Executor with a fake clock, store, far trigger, queue, dead letters and
action (no AWS, no sleep), the triggers being the real arming.OccurrenceArming.

Contract sections 3 to 5: the execute function waits at most a second, never starting early, and
claims the event's occurrence once. A refused claim says why (a row not written yet, the previous
occurrence still running, a duplicate, a stale event, a finished task, an interrupted run). A run
is recorded, retried after a backoff, or dead-lettered. How the executor arms (the hop of an early
event, a recurring task's next occurrence, the release of a finished task's trigger) is tested in
test_arming, with this file's World.
"""

from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from task_scheduler import execution
from task_scheduler.actions import ActionRegistry, ActionResult
from task_scheduler.errors import DependencyFailure
from task_scheduler.execute_events import ExecuteEvent
from task_scheduler.execution import LOOK_AGAIN_SECONDS, LOOK_AGAIN_UNTIL, Executor, RunOutcome
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
    MAX_IN_PLACE_WAIT,
    ceil_to_second,
    format_utc,
    parse_stored_utc,
    retry_delay,
)
from tests.support.fakes import (
    FakeClock,
    FakeDeadLetters,
    FakeFarTrigger,
    FakeRetryQueue,
    FakeStore,
    RecordingLogger,
    fake_arming,
)

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
DUE = datetime(2030, 5, 19, 17, 56, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)
PAYLOAD = {"url": "https://example.com/hook", "data": {"n": 1}}
SERVER_ERROR = ActionResult(False, 30, status_code=503, error="HTTP 503", retryable=True)
GONE = ActionResult(False, 12, status_code=410, error="HTTP 410: the receiver is gone")
ELAPSE = timedelta(seconds=1, microseconds=250_000)  # how long a delivery takes
INTERRUPTED = "interrupted: the execute function stopped before recording the outcome"
SCHEDULED, COMPLETED, FAILED = TaskStatus.SCHEDULED, TaskStatus.COMPLETED, TaskStatus.FAILED
DEAD_LETTERED = [("dead_letter", TASK_ID), ("record_run", TaskStatus.FAILED)]


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


def cron_task(expression, next_run_at, **changes):
    return make_task(run_at=expression, recurring=True, next_run_at=next_run_at, **changes)


def interrupted_task(claimed_at, **changes):
    return make_task(status=TaskStatus.RUNNING, updated_at=format_utc(claimed_at), **changes)


def schedules_backend():
    return FakeFarTrigger(kind=TriggerKind.SCHEDULE, removes_itself_after_firing=True)


class World:
    """The executor over fakes. `store.log` holds the store's and the far trigger's calls in
    order; `store.events` the execute-side writes, queue messages and dead letters in order. The
    queue is one for the arming and the retries, as deployed."""

    def __init__(self, task=None, now=DUE, *, far=None, seed=None, **action_options):
        self.clock = FakeClock(now)
        self.store = FakeStore(*([task] if task else []))
        self.far = far or FakeFarTrigger()
        self.far.log = self.store.log
        self.retry_queue = FakeRetryQueue(self.store.events)
        self.dead_letters = FakeDeadLetters(self.store.events)
        self.action = FakeAction(self.clock, **action_options)
        self.seed = seed
        self.rebuild()

    def rebuild(self):
        """(Re)builds the executor from the world's parts, after a test swapped one of them."""
        self.executor = Executor(
            self.store,
            fake_arming(self.far, self.retry_queue),
            ActionRegistry([self.action]),
            self.clock,
            RETENTION,
            retries=self.retry_queue,
            dead_letters=self.dead_letters,
            rng=Random(self.seed) if self.seed is not None else None,
        )

    def run(self, due=DUE):
        return self.executor.run(ExecuteEvent(TASK_ID, due))

    def calls(self):
        return [entry[0] for entry in self.store.log]

    def stored(self):
        return self.store.tasks[TASK_ID]


def trigger_calls(world):
    """What the far trigger was asked to do (its calls share the store's log)."""
    return [entry for entry in world.store.log if entry[0] in ("arm", "disarm")]


def ran_at(world):
    """When the action was performed, each time."""
    return [at for at, _, _ in world.action.calls]


# --- never before due, at most a second of waiting --------------------------------------------


def test_an_event_a_second_early_waits_exactly_until_due_then_claims():
    world = World(make_task(), now=DUE - MAX_IN_PLACE_WAIT)
    report = world.run()
    assert world.clock.sleeps == [MAX_IN_PLACE_WAIT.total_seconds()]
    assert ran_at(world) == [DUE]
    assert (report.outcome, report.lateness_ms) == (RunOutcome.COMPLETED, 0)
    assert world.store.claims == [(TASK_ID, "2030-05-19T17:56:00Z", DUE)]
    assert world.retry_queue.armed == []


def test_fractional_wait_is_rounded_up_so_the_action_never_runs_early():
    world = World(make_task(), now=DUE - timedelta(microseconds=345_600))
    world.run()
    assert world.clock.sleeps == [pytest.approx(0.346)]
    assert ran_at(world)[0] >= DUE


def test_clock_waking_early_is_slept_again_until_due():
    class EarlyWaker(FakeClock):
        """Its first sleep ends half a second early."""

        def sleep(self, seconds):
            super().sleep(seconds)
            if len(self.sleeps) == 1:
                self.current -= timedelta(milliseconds=500)

    world = World(make_task())
    world.clock = world.action.clock = EarlyWaker(DUE - timedelta(seconds=1))
    world.rebuild()
    world.run()
    assert world.clock.sleeps == [1.0, 0.5]
    assert ran_at(world)[0] >= DUE


def test_late_arrival_runs_at_once_and_reports_lateness():
    world = World(make_task(), now=DUE + timedelta(seconds=4, milliseconds=250))
    report = world.run()
    assert world.clock.sleeps == []
    assert (report.outcome, report.lateness_ms) == (RunOutcome.COMPLETED, 4250)


# --- a refused claim --------------------------------------------------------------------------


def previous_occurrence_running():
    started = "2030-05-19T17:55:00Z"
    return cron_task("cron(* * * * ? *)", started, status=TaskStatus.RUNNING, updated_at=started)


@pytest.mark.parametrize("late", [timedelta(0), LOOK_AGAIN_UNTIL - timedelta(seconds=1)])
@pytest.mark.parametrize(
    "task", [None, previous_occurrence_running()], ids=["row-not-written-yet", "previous-running"]
)
def test_an_occurrence_that_cannot_be_claimed_yet_is_looked_at_again_shortly(task, late):
    # The API arms first, then writes the task; a recurring task's previous occurrence is
    # recorded (and its next one armed) after it ran.
    world = World(task, now=DUE + late)
    assert world.run().outcome is RunOutcome.WAITING
    assert world.retry_queue.redelivered == [(TASK_ID, DUE, LOOK_AGAIN_SECONDS)]
    assert trigger_calls(world) == world.action.calls == world.store.records == []


def test_the_row_written_meanwhile_is_run_when_looked_at_again():
    world = World(task=None)
    assert world.run().outcome is RunOutcome.WAITING
    world.store.tasks[TASK_ID] = make_task()
    world.clock.current += timedelta(seconds=LOOK_AGAIN_SECONDS)
    report = world.run()
    assert (report.outcome, report.lateness_ms) == (RunOutcome.COMPLETED, LOOK_AGAIN_SECONDS * 1000)


@pytest.mark.parametrize(
    ("task", "outcome", "disarmed"),
    [
        # A trigger left by a failed scheduling whose row is gone must not fire again.
        (None, RunOutcome.UNKNOWN_TASK, [TASK_ID]),
        # The previous occurrence overran this one: the task goes on, its trigger stays.
        (previous_occurrence_running(), RunOutcome.NOT_SCHEDULED, []),
    ],
    ids=["unknown", "previous-overran"],
)
def test_an_occurrence_still_not_claimable_after_a_while_is_given_up(task, outcome, disarmed):
    world = World(task, now=DUE + LOOK_AGAIN_UNTIL)
    report = world.run()
    assert (report.outcome, report.result) == (outcome, None)
    assert world.retry_queue.redelivered == world.action.calls == []
    assert world.far.disarmed == disarmed


def test_a_duplicate_of_a_claimed_occurrence_is_a_lost_claim():
    # Another invocation claimed it (exactly at the limit: not yet interrupted).
    now = DUE + timedelta(seconds=1)
    world = World(interrupted_task(now - INTERRUPTED_AFTER), now=now)
    assert world.run().outcome is RunOutcome.LOST_CLAIM
    assert world.action.calls == world.store.records == world.retry_queue.redelivered == []
    assert trigger_calls(world) == []
    assert world.stored().status is TaskStatus.RUNNING


@pytest.mark.parametrize(
    "next_run_at", ["2030-05-19T18:11:00Z", "2030-05-19T17:41:00Z"], ids=["moved-on", "earlier"]
)
def test_a_stale_event_for_another_occurrence_is_not_due(next_run_at):
    world = World(make_task(next_run_at=next_run_at))
    assert world.run().outcome is RunOutcome.NOT_DUE
    assert world.action.calls == world.retry_queue.armed == world.retry_queue.redelivered == []
    assert trigger_calls(world) == []
    assert world.stored().status is TaskStatus.SCHEDULED


@pytest.mark.parametrize("status", [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_an_event_for_a_finished_task_runs_nothing_and_releases_its_rule(status):
    # A late duplicate, the trigger of a cancelled task, or a retry after a crash between
    # recording and releasing.
    world = World(make_task(status=status, next_run_at=None))
    assert world.run().outcome is RunOutcome.NOT_SCHEDULED
    assert world.action.calls == []
    assert world.far.disarmed == [TASK_ID]


def test_a_pending_row_of_an_older_version_is_not_run():
    world = World(make_task(status=TaskStatus.PENDING))
    assert world.run().outcome is RunOutcome.NOT_SCHEDULED
    assert world.action.calls == []
    assert world.stored().status is TaskStatus.PENDING


# --- an event without `due` (older rules, events/*.json) --------------------------------------


def test_an_event_without_due_runs_the_tasks_next_occurrence():
    world = World(make_task())
    assert world.run(due=None).outcome is RunOutcome.COMPLETED
    assert world.calls()[:2] == ["get", "claim"]
    assert world.store.claims == [(TASK_ID, "2030-05-19T17:56:00Z", DUE)]


def test_an_early_event_without_due_is_sent_on_with_the_tasks_occurrence():
    now = DUE - timedelta(seconds=50)  # an old rule fires early in its minute
    world = World(make_task(), now=now)
    assert world.run(due=None).outcome is RunOutcome.WAITING
    assert world.retry_queue.armed == [(TASK_ID, DUE, now)]
    assert world.calls() == ["get"]


@pytest.mark.parametrize(
    ("task", "outcome", "disarmed"),
    [
        (None, RunOutcome.UNKNOWN_TASK, [TASK_ID]),
        (interrupted_task(DUE), RunOutcome.LOST_CLAIM, []),
        (
            make_task(status=TaskStatus.COMPLETED, next_run_at=None),
            RunOutcome.NOT_SCHEDULED,
            [TASK_ID],
        ),
    ],
    ids=["unknown", "running", "finished"],
)
def test_an_event_without_due_for_a_task_not_waiting_runs_nothing(task, outcome, disarmed):
    world = World(task, now=DUE + timedelta(seconds=1))
    assert world.run(due=None).outcome is outcome
    assert world.action.calls == world.store.claims == []
    assert world.retry_queue.redelivered == []  # no occurrence to look at again
    assert world.far.disarmed == disarmed


# --- one run per occurrence -------------------------------------------------------------------


def test_successful_one_shot_is_completed_then_its_rule_released():
    world = World(make_task(runs=2))
    report = world.run()
    assert (report.outcome, report.result.status_code) == (RunOutcome.COMPLETED, 200)
    [(_, payload, context)] = world.action.calls
    assert payload == PAYLOAD
    assert (context.task_id, context.run_id, context.attempt) == (TASK_ID, f"{TASK_ID}:3", 1)
    [record] = world.store.records
    assert (record["status"], record["next_run_at"], record["error"]) == (COMPLETED, None, None)
    assert (record["retention"], record["trigger"]) == (RETENTION, None)  # nothing armed
    assert record["attempt"] == Attempt(
        attempt=1,
        started_at=format_utc(DUE),
        duration_ms=120,
        status_code=200,
        response_excerpt="ok",
    )
    assert world.stored().status is COMPLETED
    assert world.calls() == ["claim", "record_run", "disarm"]  # released once recorded
    assert world.far.disarmed == [TASK_ID]


def test_second_delivery_after_completion_does_nothing():
    world = World(make_task())
    assert world.run().outcome is RunOutcome.COMPLETED
    assert world.run().outcome is RunOutcome.NOT_SCHEDULED
    assert (len(world.action.calls), len(world.store.records)) == (1, 1)


@pytest.mark.parametrize(
    ("options", "error", "status_code"),
    [
        ({"result": ActionResult(False, 80, status_code=404, error="HTTP 404")}, "HTTP 404", 404),
        ({"raises": RuntimeError("boom")}, "internal error: RuntimeError", None),
    ],
    ids=["404", "crash"],
)
def test_a_failed_or_crashed_action_is_recorded_failed_and_dead_lettered_not_raised(
    options, error, status_code
):
    world = World(make_task(), **options)
    report = world.run()
    assert (report.outcome, report.result.succeeded) == (RunOutcome.FAILED, False)
    [record] = world.store.records
    assert (record["status"], record["error"], record["attempt"].error) == (FAILED, error, error)
    assert record["attempt"].status_code == status_code
    assert (world.stored().status, world.stored().last_error) == (FAILED, error)
    assert world.store.retries == world.retry_queue.armed == []  # not retryable
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", error, 1, DUE)]
    assert world.store.events == DEAD_LETTERED
    assert world.far.disarmed == [TASK_ID]


def test_a_long_error_and_response_are_recorded_within_their_bounds():
    # The stored-size rule counts on every recorded attempt being bounded.
    long = ActionResult(False, 80, status_code=500, error="é" * 5000, response_excerpt="😀" * 5000)
    world = World(make_task(max_attempts=1), result=long)
    world.run()
    [record] = world.store.records
    assert record["attempt"].error == "é" * (MAX_RECORDED_ERROR_BYTES // 2)
    assert record["attempt"].response_excerpt == "😀" * (MAX_RECORDED_EXCERPT_BYTES // 4)


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


def test_record_refused_because_the_task_changed_is_a_lost_claim(monkeypatch):
    recorder = RecordingLogger()
    monkeypatch.setattr(execution, "logger", recorder)
    world = World(make_task())
    world.store.lose_records = True
    report = world.run()
    assert report.outcome is RunOutcome.LOST_CLAIM
    assert report.result is world.action.result  # it did run; only the record was refused
    assert world.far.disarmed == []
    warning = "the task changed while it ran; this run's outcome was not recorded"
    assert ("warning", warning) in recorder.lines


# --- recurring tasks (how the next occurrence is armed: test_arming) --------------------------

AT_1745 = datetime(2030, 5, 19, 17, 45, tzinfo=UTC)
AT_1800 = datetime(2030, 5, 19, 18, 0, tzinfo=UTC)
EVERY_15 = "cron(0/15 * * * ? *)"


def test_recurring_next_occurrence_is_after_the_time_the_run_ended():
    task = cron_task(EVERY_15, format_utc(AT_1745))
    world = World(task, now=AT_1745, elapse=timedelta(minutes=20))
    world.run(AT_1745)
    assert world.store.records[0]["next_run_at"] == "2030-05-19T18:15:00Z"


def test_recurring_task_after_its_last_occurrence_completes_and_releases_its_rule():
    # Every day at 18:00 in May 2030 only: the 31st is the last occurrence.
    last = datetime(2030, 5, 31, 18, 0, tzinfo=UTC)
    world = World(cron_task("cron(0 18 * 5 ? 2030)", format_utc(last)), now=last)
    assert world.run(last).outcome is RunOutcome.COMPLETED
    assert world.store.records[0]["next_run_at"] is None
    assert (world.far.armed, world.far.disarmed) == ({}, [TASK_ID])


def test_rescheduled_task_runs_again_at_its_next_occurrence_only():
    world = World(cron_task(EVERY_15, format_utc(AT_1745)), now=AT_1745)
    assert world.run(AT_1745).outcome is RunOutcome.RESCHEDULED
    assert world.run(AT_1745).outcome is RunOutcome.NOT_DUE  # a duplicate of the first one
    [(_, second, _)] = world.retry_queue.armed
    world.clock.current = second - timedelta(milliseconds=500)  # the queued message lands
    assert world.run(second).outcome is RunOutcome.RESCHEDULED
    assert ran_at(world) == [AT_1745, AT_1800]
    assert [call[2].run_id for call in world.action.calls] == [f"{TASK_ID}:1", f"{TASK_ID}:2"]
    assert world.stored().next_run_at == "2030-05-19T18:15:00Z"


# --- recurring tasks whose cron is read in a time zone ----------------------------------------


def zoned_world(expression, timezone, next_run_at, **changes):
    due = parse_stored_utc(next_run_at)
    task = cron_task(expression, next_run_at, timezone=timezone, **changes)
    return World(task, now=due), due


def test_zoned_task_is_armed_for_its_next_occurrence_in_its_zone():
    # New York's fall-back day: 01:30 ran at its first instant (EDT); the next is tomorrow's
    # 01:30 EST, not the second 01:30 of today an hour later.
    world, due = zoned_world("cron(30 1 * * ? *)", "America/New_York", "2027-11-07T05:30:00Z")
    assert world.run(due).outcome is RunOutcome.RESCHEDULED
    assert world.far.armed == {TASK_ID: datetime(2027, 11, 8, 6, 30, tzinfo=UTC)}
    assert world.stored().next_run_at == "2027-11-08T06:30:00Z"
    assert world.calls() == ["claim", "arm", "record_run"]


@pytest.mark.parametrize(
    ("expression", "timezone", "ran", "next_run_at"),
    [
        # 02:30 does not exist in New York on 2027-03-14.
        ("cron(30 2 * * ? *)", "America/New_York", "2027-03-13T07:30:00Z", "2027-03-15T06:30:00Z"),
        ("cron(0 9 * * ? *)", "Asia/Kolkata", "2027-03-13T03:30:00Z", "2027-03-14T03:30:00Z"),
        ("cron(30 1 * * ? *)", "Europe/London", "2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"),
    ],
)
def test_zoned_next_occurrences(expression, timezone, ran, next_run_at):
    world, due = zoned_world(expression, timezone, ran)
    world.run(due)
    assert world.store.records[0]["next_run_at"] == next_run_at


# --- interrupted executions -------------------------------------------------------------------


def test_one_shot_left_running_is_recorded_as_an_interrupted_failure_and_dead_lettered():
    # Never retried, even with attempts left: the interrupted attempt may have reached the
    # receiver. The reconciler's event for the occurrence finds it so.
    claimed_at = DUE + timedelta(seconds=1)
    now = claimed_at + INTERRUPTED_AFTER + timedelta(seconds=1)
    world = World(interrupted_task(claimed_at), now=now)
    report = world.run()
    assert (report.outcome, report.result.succeeded, report.lateness_ms) == (FAILED, False, None)
    assert world.action.calls == []  # never run twice: the first run may have delivered
    [record] = world.store.records
    assert (record["status"], record["next_run_at"]) == (FAILED, None)
    assert record["attempt"] == Attempt(
        attempt=1, started_at=format_utc(claimed_at), duration_ms=91_000, error=INTERRUPTED
    )
    assert world.stored().last_error == INTERRUPTED
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", INTERRUPTED, 1, now)]
    assert world.store.events == DEAD_LETTERED
    assert world.far.disarmed == [TASK_ID]


def test_an_interrupted_run_is_settled_by_an_event_without_due_too():
    world = World(interrupted_task(DUE), now=DUE + timedelta(minutes=10))
    assert world.run(due=None).outcome is RunOutcome.FAILED
    assert world.store.records[0]["error"] == INTERRUPTED


def test_recurring_task_left_running_is_recorded_and_its_next_occurrence_armed():
    task = cron_task(
        EVERY_15, format_utc(AT_1745), status=TaskStatus.RUNNING, updated_at=format_utc(AT_1745)
    )
    now = AT_1745 + timedelta(minutes=5)
    world = World(task, now=now)
    assert world.run(AT_1745).outcome is RunOutcome.RESCHEDULED
    assert world.action.calls == []
    [record] = world.store.records
    assert (record["status"], record["next_run_at"]) == (SCHEDULED, format_utc(AT_1800))
    assert (record["error"], record["attempt"].duration_ms) == (INTERRUPTED, 300_000)
    assert world.retry_queue.armed == [(TASK_ID, AT_1800, now)]  # 10 minutes on: queued
    assert world.dead_letters.sent == world.far.disarmed == []


def test_interrupted_attempt_is_numbered_after_the_last_recorded_one():
    earlier = Attempt(attempt=7, started_at="2030-05-19T17:41:00Z", duration_ms=5)
    world = World(interrupted_task(DUE, attempts=(earlier,)), now=DUE + timedelta(minutes=10))
    world.run()
    assert world.store.records[0]["attempt"].attempt == 8


def test_interrupted_run_recorded_by_another_invocation_first_is_a_lost_claim():
    world = World(interrupted_task(DUE), now=DUE + timedelta(minutes=10))
    world.store.lose_records = True
    assert world.run().outcome is RunOutcome.LOST_CLAIM
    assert world.far.disarmed == []


# --- retries and dead letters (contract section 5) --------------------------------------------


def test_retryable_failure_with_attempts_left_is_recorded_and_retried_after_a_backoff():
    world = World(make_task(max_attempts=3), seed=11, result=SERVER_ERROR, elapse=ELAPSE)
    report = world.run()
    assert (report.outcome, report.result) == (RunOutcome.RETRYING, SERVER_ERROR)
    now = DUE + ELAPSE
    [retry] = world.store.retries
    retry_at = parse_stored_utc(retry["retry_at"])
    # Never sooner than the backoff; rounded up to the second, as stored times are.
    assert retry_at == ceil_to_second(now + timedelta(seconds=retry_delay(1, None, Random(11))))
    assert (retry["now"], retry["error"]) == (now, "HTTP 503")
    assert retry["attempt"] == Attempt(
        attempt=1, started_at=format_utc(DUE), duration_ms=30, status_code=503, error="HTTP 503"
    )
    assert world.retry_queue.armed == [(TASK_ID, retry_at, now)]
    # Recorded first, then armed: the task waits `scheduled` for `retry_at` whatever happens.
    assert world.store.events == [("record_retry", retry["retry_at"]), ("arm_at", TASK_ID)]
    assert world.dead_letters.sent == world.store.records == trigger_calls(world) == []
    stored = world.stored()
    assert (stored.status, stored.next_run_at) == (SCHEDULED, retry["retry_at"])
    assert (stored.run_attempts, stored.last_error) == (1, "HTTP 503")


def test_retry_after_sets_the_earliest_retry():
    result = ActionResult(
        False, 5, status_code=429, error="HTTP 429", retryable=True, retry_after_seconds=120.0
    )
    world = World(make_task(), seed=3, result=result, elapse=ELAPSE)
    assert world.run().outcome is RunOutcome.RETRYING
    assert world.store.retries[0]["retry_at"] == "2030-05-19T17:58:02Z"
    assert world.retry_queue.armed[0][1] == datetime(2030, 5, 19, 17, 58, 2, tzinfo=UTC)


def run_until_done(world, limit=25):
    """Runs the task, then each retry when the queue delivers it (half a second early: its
    delay is rounded down to whole seconds)."""
    reports = [world.run()]
    while reports[-1].outcome is RunOutcome.RETRYING and len(reports) < limit:
        _, retry_at, _ = world.retry_queue.armed[-1]
        world.clock.current = retry_at - timedelta(milliseconds=500)
        reports.append(world.run(retry_at))
    return [report.outcome for report in reports]


def test_success_after_retries_completes_and_resets_the_run_attempts():
    world = World(make_task(max_attempts=5), seed=5, results=[SERVER_ERROR] * 2, elapse=ELAPSE)
    assert run_until_done(world) == [RunOutcome.RETRYING, RunOutcome.RETRYING, COMPLETED]
    contexts = [context for _, _, context in world.action.calls]
    assert [context.attempt for context in contexts] == [1, 2, 3]
    assert {context.run_id for context in contexts} == {f"{TASK_ID}:1"}
    assert [retry["attempt"].attempt for retry in world.store.retries] == [1, 2]
    [record] = world.store.records
    assert (record["status"], record["attempt"].attempt, record["error"]) == (COMPLETED, 3, None)
    stored = world.stored()
    assert (stored.status, stored.run_attempts, stored.last_error) == (COMPLETED, 0, None)
    assert [attempt.attempt for attempt in stored.attempts] == [1, 2, 3]
    assert world.dead_letters.sent == []
    assert world.far.disarmed == [TASK_ID]


def test_retries_never_run_before_their_retry_time_nor_wait_more_than_a_second():
    world = World(make_task(), seed=8, results=[SERVER_ERROR] * 3, elapse=ELAPSE)
    run_until_done(world)
    armed_times = [at for _, at, _ in world.retry_queue.armed]
    assert len(ran_at(world)) == 4
    assert all(call >= at for call, at in zip(ran_at(world)[1:], armed_times, strict=True))
    assert all(sleep <= MAX_IN_PLACE_WAIT.total_seconds() for sleep in world.clock.sleeps)


def test_exhausted_attempts_fail_the_task_and_dead_letter_it_before_recording():
    world = World(make_task(max_attempts=3), seed=2, result=SERVER_ERROR, elapse=ELAPSE)
    assert run_until_done(world) == [RunOutcome.RETRYING, RunOutcome.RETRYING, FAILED]
    assert [context.attempt for _, _, context in world.action.calls] == [1, 2, 3]
    final_now = world.clock.now()
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", "HTTP 503", 3, final_now)]
    assert world.store.events[-2:] == DEAD_LETTERED
    assert len(world.retry_queue.armed) == 2
    assert (world.stored().status, world.stored().last_error) == (FAILED, "HTTP 503")
    assert world.far.disarmed == [TASK_ID]


def test_last_allowed_attempt_is_not_retried():
    earlier = (
        Attempt(attempt=1, started_at="2030-05-19T17:56:00Z", duration_ms=9, error="HTTP 503"),
        Attempt(attempt=2, started_at="2030-05-19T17:56:02Z", duration_ms=9, error="HTTP 503"),
    )
    retry_at = datetime(2030, 5, 19, 17, 56, 9, tzinfo=UTC)
    task = make_task(max_attempts=3, run_attempts=2, attempts=earlier)
    world = World(task.with_changes(next_run_at=format_utc(retry_at)), now=retry_at, seed=1)
    world.action.result = SERVER_ERROR
    assert world.run(retry_at).outcome is RunOutcome.FAILED
    assert world.action.calls[0][2].attempt == 3
    assert world.store.retries == world.retry_queue.armed == []
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", "HTTP 503", 3, retry_at)]
    assert world.store.events == DEAD_LETTERED
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
        ActionResult(False, 3, status_code=302, error="HTTP 302: redirects are not followed"),
        ActionResult(
            False, 1, error="refused: example.com resolves to 10.0.0.1, a private address"
        ),
    ],
    ids=["410", "302", "refused"],
)
def test_non_retryable_failure_fails_at_once_and_is_dead_lettered(result):
    world = World(make_task(max_attempts=5), seed=1, result=result)
    assert world.run().outcome is RunOutcome.FAILED
    assert world.store.retries == world.retry_queue.armed == []
    assert world.dead_letters.sent == [(TASK_ID, "2030-05-19T17:56:00Z", result.error, 1, DUE)]
    assert world.store.events == DEAD_LETTERED


def test_dead_letter_failure_leaves_the_run_unrecorded_so_the_invocation_is_retried():
    world = World(make_task(max_attempts=1), seed=1, result=SERVER_ERROR)
    world.dead_letters.fail = True
    with pytest.raises(DependencyFailure, match="dead-letter"):
        world.run()
    assert world.store.records == world.far.disarmed == []
    assert world.stored().status is TaskStatus.RUNNING


def test_retry_refused_because_the_task_changed_is_a_lost_claim_and_not_armed():
    world = World(make_task(), seed=1, result=SERVER_ERROR)
    world.store.lose_records = True
    assert world.run().outcome is RunOutcome.LOST_CLAIM
    assert len(world.store.retries) == 1
    assert world.retry_queue.armed == world.dead_letters.sent == []


def test_failing_to_arm_the_retry_raises_and_leaves_the_task_waiting_for_it():
    world = World(make_task(), seed=1, result=SERVER_ERROR)
    world.retry_queue.fail = True
    with pytest.raises(DependencyFailure):
        world.run()
    [retry] = world.store.retries
    assert (world.stored().status, world.stored().next_run_at) == (SCHEDULED, retry["retry_at"])


def test_run_id_is_stable_across_retries_and_changes_for_the_next_run_of_a_recurring_task():
    task = cron_task(EVERY_15, format_utc(AT_1745))
    world = World(task, now=AT_1745, seed=4, results=[SERVER_ERROR], elapse=ELAPSE)
    assert world.run(AT_1745).outcome is RunOutcome.RETRYING
    _, retry_at, _ = world.retry_queue.armed[-1]
    world.clock.current = retry_at
    assert world.run(retry_at).outcome is RunOutcome.RESCHEDULED
    assert (world.stored().next_run_at, world.stored().run_attempts) == (format_utc(AT_1800), 0)
    world.clock.current = AT_1800
    assert world.run(AT_1800).outcome is RunOutcome.RESCHEDULED
    contexts = [context for _, _, context in world.action.calls]
    assert [c.run_id for c in contexts] == [f"{TASK_ID}:1", f"{TASK_ID}:1", f"{TASK_ID}:2"]
    assert [c.attempt for c in contexts] == [1, 2, 1]
    assert world.dead_letters.sent == []


def test_recurring_task_out_of_attempts_is_rescheduled_not_dead_lettered():
    due = AT_1745 + timedelta(seconds=7)
    task = cron_task(EVERY_15, format_utc(due), max_attempts=2, run_attempts=1)
    world = World(task, now=due, seed=1, result=SERVER_ERROR)
    assert world.run(due).outcome is RunOutcome.RESCHEDULED
    assert world.dead_letters.sent == world.store.retries == []
    assert world.store.records[0]["error"] == "HTTP 503"
    assert (world.stored().next_run_at, world.stored().run_attempts) == (format_utc(AT_1800), 0)
