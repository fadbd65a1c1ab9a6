"""Scheduler.pause and Scheduler.resume with in-memory fakes (contract section 3): no occurrence
fires while a recurring task is paused, not even one already on its way (a queued message cannot
be taken back: its claim finds the task paused and it is ignored); resume goes on from the next
occurrence after now, armed like any occurrence (queued within 15 minutes, else a rule or
schedule) before the write that stores it with its trigger kind; repeats answer the same;
one-shot, running, finished and cancelled tasks are a 409; a resume that loses its write undoes
its trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aws_lambda_powertools import Logger

from task_scheduler.actions import ActionRegistry, ActionResult
from task_scheduler.errors import DependencyFailure, TaskConflict, TaskNotFound
from task_scheduler.execute_events import ExecuteEvent
from task_scheduler.execution import Executor, RunOutcome
from task_scheduler.model import Task, TaskStatus, TriggerKind
from task_scheduler.scheduling import Scheduler
from task_scheduler.timing import format_utc
from tests.support.fakes import (
    FakeClock,
    FakeDeadLetters,
    FakeFarTrigger,
    FakeRetryQueue,
    FakeStore,
    fake_arming,
)

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
EVERY_QUARTER = "cron(0/15 * * * ? *)"  # its next occurrence is always within the queue's reach
HOURLY = "cron(0 * * * ? *)"


def at(hour: int, minute: int, second: float = 0) -> datetime:
    return datetime(2030, 5, 19, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


@pytest.fixture(autouse=True, scope="module")
def handler_logger() -> Logger:
    return Logger()


class FakePauses:
    """The TaskPausing port over FakeStore's tasks, with the real store's conditions.
    `before_pause` / `before_resume`: run before the write's condition is checked (a concurrent
    write landing); `fail_resume`: raised before writing; `lose_resume_answer`: raised after
    writing."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.before_pause = None
        self.before_resume = None
        self.fail_resume: Exception | None = None
        self.lose_resume_answer = False

    def pause(self, task_id: str, now: datetime) -> Task | None:
        if self.before_pause is not None:
            self.before_pause()
        task = self.store.tasks.get(task_id)
        if task is None or task.status is not TaskStatus.SCHEDULED or not task.recurring:
            return None
        paused = task.with_changes(status=TaskStatus.PAUSED, updated_at=format_utc(now))
        self.store.tasks[task_id] = paused
        return paused

    def resume(self, task_id: str, next_run_at: str, trigger: TriggerKind, now: datetime) -> bool:
        if self.before_resume is not None:
            self.before_resume()
        if self.fail_resume is not None:
            raise self.fail_resume
        task = self.store.tasks.get(task_id)
        if task is None or task.status is not TaskStatus.PAUSED:
            return False
        self.store.tasks[task_id] = task.with_changes(
            status=TaskStatus.SCHEDULED,
            next_run_at=next_run_at,
            trigger=trigger,
            run_attempts=0,
            updated_at=format_utc(now),
        )
        if self.lose_resume_answer:
            raise DependencyFailure("Could not resume the task: the answer timed out.")
        return True


class Action:
    name = "webhook"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[datetime] = []

    def validate(self, payload):
        return payload

    def execute(self, payload, context) -> ActionResult:
        self.calls.append(self.clock.now())
        return ActionResult(True, 5, status_code=200)


def recurring_task(**changes) -> Task:
    """Every quarter hour, its 17:45 occurrence queued (armed at 17:40)."""
    task = Task(
        task_id=TASK_ID,
        action="webhook",
        payload={"url": "https://example.com/hook"},
        run_at=EVERY_QUARTER,
        status=TaskStatus.SCHEDULED,
        created_at="2030-05-19T17:00:00Z",
        updated_at="2030-05-19T17:00:00Z",
        recurring=True,
        next_run_at="2030-05-19T17:45:00Z",
        trigger=TriggerKind.QUEUE,
    )
    return task.with_changes(**changes)


def hourly_task(**changes) -> Task:
    """Hourly, its 18:00 occurrence beyond the queue's reach: a rule fires for it at 17:58."""
    return recurring_task(
        run_at=HOURLY, next_run_at="2030-05-19T18:00:00Z", trigger=TriggerKind.RULE
    ).with_changes(**changes)


class World:
    """The API's scheduler and the execute function over one store, one far trigger (a rule,
    unless given) and one queue; `far.log` and `queue.events` hold what each was asked."""

    def __init__(self, task: Task | None = None, now: datetime | None = None, far=None) -> None:
        self.clock = FakeClock(now or at(17, 40))
        self.store = FakeStore(task or recurring_task())
        self.far = far or FakeFarTrigger()
        self.queue = FakeRetryQueue([])
        arming = fake_arming(self.far, self.queue)
        self.pauses = FakePauses(self.store)
        self.scheduler = Scheduler(self.store, arming, self.clock, pauses=self.pauses)
        self.action = Action(self.clock)
        self.executor = Executor(
            self.store,
            arming,
            ActionRegistry([self.action]),
            self.clock,
            timedelta(days=30),
            retries=self.queue,
            dead_letters=FakeDeadLetters(self.store.events),
        )

    @property
    def task(self) -> Task:
        return self.store.tasks[TASK_ID]

    def run(self, due: datetime | None) -> RunOutcome:
        return self.executor.run(ExecuteEvent(TASK_ID, due)).outcome

    def trigger_calls(self) -> list:
        """Every call made of the far trigger and the queue, in order."""
        return self.far.log + self.queue.events


def test_no_occurrence_fires_while_paused_and_resume_goes_on_from_the_next_one() -> None:
    world = World()

    paused = world.scheduler.pause(TASK_ID)

    assert paused.status is TaskStatus.PAUSED
    assert world.trigger_calls() == []  # a queued message: nothing to remove
    # The 17:45 message arrives; so does an event without its occurrence (an older version's).
    world.clock.current = at(17, 45)
    assert world.run(at(17, 45)) is RunOutcome.NOT_SCHEDULED
    world.clock.current = at(18, 7)
    assert world.run(None) is RunOutcome.NOT_SCHEDULED
    assert world.action.calls == []
    assert world.trigger_calls() == []  # ignored: nothing sent on, removed or looked at again
    assert world.task.status is TaskStatus.PAUSED

    resumed = world.scheduler.resume(TASK_ID)

    assert resumed.status is TaskStatus.SCHEDULED
    assert resumed.next_run_at == "2030-05-19T18:15:00Z"  # 18:00 was missed: skipped
    assert (world.task.next_run_at, world.task.trigger) == (resumed.next_run_at, TriggerKind.QUEUE)
    assert world.queue.armed == [(TASK_ID, at(18, 15), at(18, 7))]
    world.clock.current = at(18, 14, 59.5)  # the message lands up to a second early; it waits
    assert world.run(at(18, 15)) is RunOutcome.RESCHEDULED
    assert world.action.calls == [at(18, 15)]
    assert world.task.next_run_at == "2030-05-19T18:30:00Z"


@pytest.mark.parametrize(
    ("kind", "removes_itself"),
    [(TriggerKind.RULE, False), (TriggerKind.SCHEDULE, True)],
    ids=["rules", "scheduler"],
)
def test_pausing_removes_a_far_trigger_and_resuming_arms_the_next_occurrence(
    kind: TriggerKind, removes_itself: bool
) -> None:
    far = FakeFarTrigger(kind=kind, removes_itself_after_firing=removes_itself)
    world = World(hourly_task(trigger=kind), far=far)
    far.armed[TASK_ID] = at(18, 0)

    world.scheduler.pause(TASK_ID)

    assert far.log == [("disarm", TASK_ID)]
    assert far.armed == {}
    # An event for 18:00 already on its way is ignored: its trigger is not touched again.
    world.clock.current = at(18, 0)
    assert world.run(at(18, 0)) is RunOutcome.NOT_SCHEDULED
    assert far.log == [("disarm", TASK_ID)]
    world.clock.current = at(19, 30)

    resumed = world.scheduler.resume(TASK_ID)

    # 20:00 is half an hour away: a rule or schedule for it, moved on from nothing.
    assert far.log[1:] == [("arm", TASK_ID)]
    assert far.armed == {TASK_ID: at(20, 0)}
    assert (resumed.next_run_at, resumed.trigger) == ("2030-05-19T20:00:00Z", far.kind)
    assert (world.task.next_run_at, world.task.trigger) == (resumed.next_run_at, far.kind)
    # It fires two minutes early; the execute function hops it through the queue to 20:00.
    world.clock.current = at(19, 58)
    assert world.run(at(20, 0)) is RunOutcome.WAITING
    world.clock.current = at(19, 59, 59.5)
    assert world.run(at(20, 0)) is RunOutcome.RESCHEDULED
    assert world.action.calls == [at(20, 0)]


def test_an_occurrence_already_on_its_way_runs_nothing_once_the_task_is_paused() -> None:
    world = World(now=at(17, 44, 59.5))

    class PausingClock(FakeClock):
        def sleep(self, seconds: float) -> None:  # the execution waits for 17:45...
            world.scheduler.pause(TASK_ID)  # ...and the pause lands meanwhile
            super().sleep(seconds)

    world.clock.__class__ = PausingClock

    assert world.run(at(17, 45)) is RunOutcome.NOT_SCHEDULED
    assert world.action.calls == []
    assert world.task.status is TaskStatus.PAUSED
    assert world.trigger_calls() == []


def test_repeats_answer_the_same_without_touching_the_trigger_again() -> None:
    world = World(hourly_task())
    world.scheduler.pause(TASK_ID)
    calls = len(world.trigger_calls())

    assert world.scheduler.pause(TASK_ID).status is TaskStatus.PAUSED
    assert len(world.trigger_calls()) == calls  # no disarm: it could undo a resume's arm

    first = world.scheduler.resume(TASK_ID)
    calls = len(world.trigger_calls())
    again = world.scheduler.resume(TASK_ID)
    assert (again.status, again.next_run_at, again.trigger) == (
        first.status,
        first.next_run_at,
        first.trigger,
    )
    assert len(world.trigger_calls()) == calls


def test_pause_removes_the_trigger_the_task_has_when_it_is_paused() -> None:
    world = World()  # read with its occurrence queued...

    def a_run_rearms_it_first() -> None:  # ...then a run records its next one behind a rule
        world.store.tasks[TASK_ID] = world.task.with_changes(trigger=TriggerKind.RULE)

    world.pauses.before_pause = a_run_rearms_it_first

    world.scheduler.pause(TASK_ID)

    assert world.far.log == [("disarm", TASK_ID)]


def test_a_rule_a_failed_pause_left_stays_known_to_the_task_until_it_is_cancelled() -> None:
    world = World(hourly_task())
    world.far.armed[TASK_ID] = at(18, 0)
    world.far.fail_disarm = DependencyFailure("Could not delete the rule.")
    assert world.scheduler.pause(TASK_ID).status is TaskStatus.PAUSED  # 200 all the same
    world.far.fail_disarm = None
    world.clock.current = at(18, 50)  # 19:00 is within the queue's reach

    resumed = world.scheduler.resume(TASK_ID)

    assert world.queue.armed == [(TASK_ID, at(19, 0), at(18, 50))]
    # The rule still exists (it matches a past minute): the task keeps it, so cancel removes it.
    assert resumed.trigger is TriggerKind.RULE
    assert world.task.trigger is TriggerKind.RULE
    world.scheduler.cancel(TASK_ID)
    assert world.far.armed == {}


@pytest.mark.parametrize(
    ("task", "why"),
    [
        (recurring_task(recurring=False, run_at="2030-05-19T17:45:00Z"), "only recurring"),
        (recurring_task(status=TaskStatus.RUNNING), "it is running an occurrence"),
        (recurring_task(status=TaskStatus.COMPLETED, next_run_at=None), "it is completed"),
        (recurring_task(status=TaskStatus.CANCELLED, next_run_at=None), "it is cancelled"),
    ],
)
def test_pause_and_resume_are_409s_unless_the_task_recurs_and_waits(task: Task, why: str) -> None:
    for route in ("pause", "resume"):
        world = World(task)
        with pytest.raises(TaskConflict, match=why):
            getattr(world.scheduler, route)(TASK_ID)
        assert world.task == task
        assert world.trigger_calls() == []


def test_unknown_and_unacknowledged_tasks_are_404s() -> None:
    world = World(recurring_task(status=TaskStatus.PENDING))
    for route in ("pause", "resume"):
        for task_id in (TASK_ID, "123e4567-e89b-42d3-a456-000000000000", "not-a-uuid"):
            with pytest.raises(TaskNotFound):
                getattr(world.scheduler, route)(task_id)


def test_a_pause_that_loses_to_a_claim_is_a_409_and_leaves_the_trigger() -> None:
    world = World(hourly_task())

    def claim_first() -> None:
        world.store.tasks[TASK_ID] = world.task.with_changes(status=TaskStatus.RUNNING)

    world.pauses.before_pause = claim_first

    with pytest.raises(TaskConflict, match="running"):
        world.scheduler.pause(TASK_ID)
    assert world.trigger_calls() == []


def test_a_resume_that_loses_to_a_cancel_undoes_its_trigger() -> None:
    world = World(hourly_task(status=TaskStatus.PAUSED))

    def cancel_first() -> None:
        world.store.tasks[TASK_ID] = world.task.with_changes(status=TaskStatus.CANCELLED)

    world.pauses.before_resume = cancel_first

    with pytest.raises(TaskConflict, match="cancelled"):
        world.scheduler.resume(TASK_ID)
    assert world.far.log == [("arm", TASK_ID), ("disarm", TASK_ID)]
    assert world.far.armed == {}


def test_a_resume_that_loses_to_another_resume_keeps_the_trigger() -> None:
    world = World(hourly_task(status=TaskStatus.PAUSED))

    def other_resume_first() -> None:
        world.store.tasks[TASK_ID] = world.task.with_changes(status=TaskStatus.SCHEDULED)

    world.pauses.before_resume = other_resume_first

    assert world.scheduler.resume(TASK_ID).status is TaskStatus.SCHEDULED
    assert world.far.armed == {TASK_ID: at(18, 0)}


def test_a_failed_resume_write_undoes_the_trigger_and_answers_503() -> None:
    world = World(hourly_task(status=TaskStatus.PAUSED))
    world.pauses.fail_resume = DependencyFailure("Could not resume the task.")

    with pytest.raises(DependencyFailure):
        world.scheduler.resume(TASK_ID)
    assert world.far.log == [("arm", TASK_ID), ("disarm", TASK_ID)]
    assert world.task.status is TaskStatus.PAUSED


def test_a_resume_write_that_cannot_be_read_back_keeps_its_trigger() -> None:
    """The write may have landed: a task left `scheduled` is never left without its trigger
    (had it not landed, the trigger finds the task paused and runs nothing)."""
    world = World(hourly_task(status=TaskStatus.PAUSED))
    world.pauses.fail_resume = DependencyFailure("Could not resume the task.")
    world.pauses.before_resume = lambda: world.store.fail_on.add("get")

    with pytest.raises(DependencyFailure):
        world.scheduler.resume(TASK_ID)
    assert world.far.armed == {TASK_ID: at(18, 0)}


def test_a_resume_write_whose_answer_was_lost_is_a_resume() -> None:
    world = World(hourly_task(status=TaskStatus.PAUSED))
    world.pauses.lose_resume_answer = True

    assert world.scheduler.resume(TASK_ID).status is TaskStatus.SCHEDULED
    assert world.far.armed == {TASK_ID: at(18, 0)}


def test_a_failed_arm_leaves_the_task_paused_and_removes_what_it_may_have_created() -> None:
    world = World(hourly_task(status=TaskStatus.PAUSED))
    world.far.fail_arm = DependencyFailure("Could not create the task's rule.")

    with pytest.raises(DependencyFailure):
        world.scheduler.resume(TASK_ID)
    assert world.far.log == [("arm", TASK_ID), ("disarm", TASK_ID)]
    assert world.task.status is TaskStatus.PAUSED


def test_a_task_with_no_occurrence_left_cannot_be_resumed() -> None:
    task = recurring_task(status=TaskStatus.PAUSED, run_at="cron(0/15 * * * ? 2030)")
    world = World(task, now=datetime(2031, 1, 1, tzinfo=UTC))

    with pytest.raises(TaskConflict, match="no occurrence after now"):
        world.scheduler.resume(TASK_ID)
    assert world.trigger_calls() == []


def test_a_paused_task_can_be_cancelled_and_its_trigger_goes() -> None:
    world = World(hourly_task())
    world.far.fail_disarm = DependencyFailure("Could not delete the rule.")
    world.scheduler.pause(TASK_ID)
    world.far.fail_disarm = None

    assert world.scheduler.cancel(TASK_ID).status is TaskStatus.CANCELLED
    assert world.far.log[-1] == ("disarm", TASK_ID)
    with pytest.raises(TaskConflict, match="cancelled"):
        world.scheduler.resume(TASK_ID)
