"""Unit tests for arming.OccurrenceArming (how an occurrence is armed, the same in both functions
and on both backends) over a fake far trigger and a fake queue; for queues.RetryQueue (the near
arm and the hop) over a small fake of the SQS client; for the event an armed occurrence carries;
and for the execute side's arming: the hop of an early event, a recurring task's next
occurrence, and the release of a finished task's trigger (the executor as in test_execution).

Contract section 4: an occurrence within the queue's 15 minutes goes straight into the queue as a
message delayed to its second; a later one gets a rule or schedule for the minute two minutes
before its own, whose event the execute function hops on to the due second. Removing a trigger
means what the kind of trigger needs: a queued message has nothing to remove, a schedule deletes
itself once fired, a rule stays until its task ends.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler.actions import ActionResult
from task_scheduler.errors import DependencyFailure
from task_scheduler.execute_events import ExecuteEvent, parse_execute_event
from task_scheduler.execution import RunOutcome
from task_scheduler.model import TaskStatus, TriggerKind
from task_scheduler.queues import RetryQueue
from task_scheduler.timing import (
    MAX_IN_PLACE_WAIT,
    QUEUE_HORIZON,
    TRIGGER_LEAD,
    format_utc,
    queue_delay_seconds,
    trigger_minute,
)
from tests.support.aws_fakes import FakeClient, client_error
from tests.support.fakes import FakeFarTrigger, FakeRetryQueue, fake_arming
from tests.unit.test_execution import (
    AT_1745,
    AT_1800,
    DUE,
    EVERY_15,
    SCHEDULED,
    World,
    cron_task,
    make_task,
    ran_at,
    schedules_backend,
    trigger_calls,
)

TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
NOW = datetime(2030, 5, 19, 17, 0, 0, tzinfo=UTC)
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/retry"


def rules_trigger():
    return FakeFarTrigger(kind=TriggerKind.RULE, removes_itself_after_firing=False)


def schedules_trigger():
    return FakeFarTrigger(kind=TriggerKind.SCHEDULE, removes_itself_after_firing=True)


class Parts:
    """An OccurrenceArming over a fake far trigger (a rule or a schedule) and a fake queue."""

    def __init__(self, far):
        self.far = far
        self.queue = FakeRetryQueue([])
        self.arming = fake_arming(far, self.queue)


@pytest.fixture(params=["rules", "schedules"])
def parts(request):
    return Parts(rules_trigger() if request.param == "rules" else schedules_trigger())


@pytest.fixture
def rules():
    return Parts(rules_trigger())


@pytest.fixture
def schedules():
    return Parts(schedules_trigger())


# --- arm: near or far -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ahead",
    [timedelta(seconds=1), timedelta(minutes=3), QUEUE_HORIZON - timedelta(seconds=1)],
    ids=["1s", "3min", "just-inside"],
)
def test_a_near_occurrence_goes_straight_into_the_queue(parts, ahead):
    due = NOW + ahead
    assert parts.arming.arm(TASK_ID, due, NOW) is TriggerKind.QUEUE
    assert parts.queue.armed == [(TASK_ID, due, NOW)]
    assert parts.far.log == []  # no rule, no schedule


def test_an_occurrence_exactly_15_minutes_away_is_still_near(parts):
    due = NOW + QUEUE_HORIZON
    assert parts.arming.arm(TASK_ID, due, NOW) is TriggerKind.QUEUE
    assert parts.queue.armed == [(TASK_ID, due, NOW)]
    assert parts.far.armed == {}


@pytest.mark.parametrize(
    "ahead",
    [QUEUE_HORIZON + timedelta(seconds=1), timedelta(hours=5), timedelta(days=400)],
    ids=["just-outside", "5h", "400d"],
)
def test_a_far_occurrence_gets_the_backends_trigger_with_its_due_time(parts, ahead):
    due = NOW + ahead
    assert parts.arming.arm(TASK_ID, due, NOW) is parts.far.kind
    assert parts.far.armed == {TASK_ID: due}
    assert parts.queue.armed == []


def test_far_kind_is_the_backends(rules, schedules):
    assert rules.arming.far_kind is TriggerKind.RULE
    assert schedules.arming.far_kind is TriggerKind.SCHEDULE


def test_a_near_occurrence_keeps_a_rule_the_task_has(rules):
    # The rule that fired stays (its one-shot minute is past) until the task ends: the task must
    # keep saying so, or nothing would ever remove it.
    due = NOW + timedelta(minutes=5)
    assert rules.arming.arm(TASK_ID, due, NOW, TriggerKind.RULE) is TriggerKind.RULE
    assert rules.queue.armed == [(TASK_ID, due, NOW)]
    assert rules.far.log == []


@pytest.mark.parametrize("current", [None, TriggerKind.QUEUE, TriggerKind.DIRECT])
def test_a_near_occurrence_without_a_rule_is_queue_kind_on_the_rules_backend(rules, current):
    due = NOW + timedelta(minutes=5)
    assert rules.arming.arm(TASK_ID, due, NOW, current) is TriggerKind.QUEUE


@pytest.mark.parametrize("current", [None, TriggerKind.SCHEDULE, TriggerKind.QUEUE])
def test_a_near_occurrence_is_queue_kind_on_the_schedules_backend(schedules, current):
    # A schedule deletes itself once it has fired: nothing is left to remember.
    due = NOW + timedelta(minutes=5)
    assert schedules.arming.arm(TASK_ID, due, NOW, current) is TriggerKind.QUEUE


@pytest.mark.parametrize("current", [None, TriggerKind.QUEUE, TriggerKind.RULE])
def test_a_far_occurrence_is_the_far_kind_whatever_the_task_had(rules, current):
    due = NOW + timedelta(hours=1)
    assert rules.arming.arm(TASK_ID, due, NOW, current) is TriggerKind.RULE
    assert rules.far.armed == {TASK_ID: due}


def test_a_failing_far_trigger_is_raised(parts):
    parts.far.fail_arm = failure = DependencyFailure("Could not create the task's rule.")
    with pytest.raises(DependencyFailure) as caught:
        parts.arming.arm(TASK_ID, NOW + timedelta(hours=1), NOW)
    assert caught.value is failure
    assert parts.queue.armed == []  # not silently queued instead: the caller decides


def test_a_failing_queue_is_raised(parts):
    parts.queue.fail = True
    with pytest.raises(DependencyFailure, match="queue"):
        parts.arming.arm(TASK_ID, NOW + timedelta(minutes=1), NOW)
    assert parts.far.log == []


# --- disarm, release, and the kind after a failed arm -----------------------------------------


@pytest.mark.parametrize("kind", [TriggerKind.RULE, TriggerKind.SCHEDULE, None])
def test_disarm_removes_a_rule_or_schedule_and_an_unknown_kind(parts, kind):
    # None: a task whose row is gone (or an old one): whatever may be there is removed.
    parts.arming.disarm(TASK_ID, kind)
    assert parts.far.disarmed == [TASK_ID]


@pytest.mark.parametrize("kind", [TriggerKind.QUEUE, TriggerKind.DIRECT])
def test_disarm_of_a_queued_or_dispatched_occurrence_removes_nothing(parts, kind):
    parts.arming.disarm(TASK_ID, kind)
    assert parts.far.log == []


def test_a_failing_disarm_is_raised(parts):
    parts.far.fail_disarm = failure = DependencyFailure("Could not delete the task's rule.")
    with pytest.raises(DependencyFailure) as caught:
        parts.arming.disarm(TASK_ID, parts.far.kind)
    assert caught.value is failure


@pytest.mark.parametrize("kind", [TriggerKind.RULE, None])
def test_release_removes_a_finished_tasks_rule(rules, kind):
    # A fired one-shot rule never matches again but counts against the quota forever.
    rules.arming.release(TASK_ID, kind)
    assert rules.far.disarmed == [TASK_ID]


def test_release_of_a_queued_task_on_the_rules_backend_removes_nothing(rules):
    rules.arming.release(TASK_ID, TriggerKind.QUEUE)
    assert rules.far.log == []


@pytest.mark.parametrize("kind", [TriggerKind.SCHEDULE, TriggerKind.QUEUE, None])
def test_release_leaves_schedules_alone(schedules, kind):
    # A schedule deletes itself once fired; deleting it again would be a wasted call.
    schedules.arming.release(TASK_ID, kind)
    assert schedules.far.log == []


@pytest.mark.parametrize("current", [None, TriggerKind.QUEUE, TriggerKind.RULE])
def test_after_a_failed_arm_a_task_on_the_rules_backend_may_have_a_rule(rules, current):
    # The failed rule may have stayed: said so, it is removed with its task.
    assert rules.arming.kind_after_failed_arm(current) is TriggerKind.RULE


@pytest.mark.parametrize("current", [None, TriggerKind.QUEUE, TriggerKind.SCHEDULE])
def test_after_a_failed_arm_a_task_on_the_schedules_backend_is_carried_by_the_queue(
    schedules, current
):
    assert schedules.arming.kind_after_failed_arm(current) is TriggerKind.QUEUE


# --- a far trigger fires early enough, whatever its second ------------------------------------


@pytest.mark.parametrize("second", [0, 1, 29, 58, 59])
def test_a_far_trigger_fires_early_enough_for_the_hop_and_near_enough_for_one_message(second):
    # EventBridge fires somewhere in the trigger's minute: every second of that minute must be
    # more than the in-place wait before `due` (so the hop, not a sleep, carries the rest) and
    # within the queue's 15 minutes of it (so one delayed message reaches `due`).
    due = datetime(2030, 5, 19, 17, 56, second, tzinfo=UTC)
    first_fire = trigger_minute(due)
    last_fire = first_fire + timedelta(seconds=59, microseconds=999_999)
    assert first_fire.second == 0
    assert due - last_fire > MAX_IN_PLACE_WAIT
    assert due - first_fire <= QUEUE_HORIZON
    assert minute_of(due) - minute_of(first_fire) == TRIGGER_LEAD


def minute_of(moment):
    return moment.replace(second=0, microsecond=0)


def test_a_far_trigger_is_always_armed_for_a_future_minute():
    # Far means more than 15 minutes away: its trigger minute, 2 to 3 minutes before, is ahead.
    for offset in (1, 30, 59, 60, 61):
        due = NOW + QUEUE_HORIZON + timedelta(seconds=offset)
        assert trigger_minute(due) > NOW + timedelta(minutes=12)


# --- the queue: a message delayed to its second -----------------------------------------------


class FakeSqs(FakeClient):
    operations = ("send_message",)


@pytest.fixture
def sqs_calls():
    return []


@pytest.fixture
def sqs(sqs_calls):
    return FakeSqs(sqs_calls)


def sent(sqs_calls):
    return [(json.loads(kwargs["MessageBody"]), kwargs["DelaySeconds"]) for _, kwargs in sqs_calls]


@pytest.mark.parametrize(
    ("ahead", "delay"),
    [
        (timedelta(seconds=37, milliseconds=999), 37),  # rounded down: lands under 1 s early
        (timedelta(seconds=1), 1),
        (timedelta(milliseconds=400), 0),
        (timedelta(minutes=15), 900),
        (timedelta(hours=3), 900),  # capped: it is sent on again when it lands
        (timedelta(seconds=-5), 0),  # already due: at once
    ],
)
def test_a_queued_occurrence_lands_at_most_a_second_before_it_is_due(sqs, sqs_calls, ahead, delay):
    due = datetime(2030, 5, 19, 17, 56, 0, tzinfo=UTC)
    sent_at = due - ahead
    RetryQueue(sqs, QUEUE_URL).arm_at(TASK_ID, due, sent_at)
    [(operation, kwargs)] = sqs_calls
    assert operation == "send_message"
    assert kwargs["QueueUrl"] == QUEUE_URL
    assert sent(sqs_calls) == [({"task_id": TASK_ID, "due": "2030-05-19T17:56:00Z"}, delay)]
    lands = sent_at + timedelta(seconds=delay)
    if timedelta(0) <= ahead <= QUEUE_HORIZON:
        assert timedelta(0) <= due - lands < timedelta(seconds=1)
    elif ahead > QUEUE_HORIZON:
        assert lands < due  # early: the execute function sends it on again


def test_redelivery_keeps_the_occurrence_and_uses_the_given_delay(sqs, sqs_calls):
    due = datetime(2030, 5, 19, 17, 56, 0, tzinfo=UTC)
    RetryQueue(sqs, QUEUE_URL).redeliver(TASK_ID, due, 2)
    assert sent(sqs_calls) == [({"task_id": TASK_ID, "due": "2030-05-19T17:56:00Z"}, 2)]


def test_a_failing_send_is_a_dependency_failure_naming_sqs(sqs):
    sqs.fail["send_message"] = client_error("ThrottlingException", "SendMessage")
    with pytest.raises(DependencyFailure) as caught:
        RetryQueue(sqs, QUEUE_URL).arm_at(TASK_ID, NOW + timedelta(minutes=1), NOW)
    assert caught.value.code == "ThrottlingException"
    assert "SQS" in caught.value.message


# --- the event an armed occurrence carries ----------------------------------------------------


def test_an_event_carries_its_task_and_its_occurrence():
    event = ExecuteEvent(TASK_ID, DUE)
    assert parse_execute_event(json.loads(event.as_json())) == event
    assert parse_execute_event({"task_id": TASK_ID}) == ExecuteEvent(TASK_ID, None)
    # A due that does not parse is ignored: the task's own next occurrence is read instead.
    assert parse_execute_event({"task_id": TASK_ID, "due": "soon"}) == ExecuteEvent(TASK_ID, None)


@pytest.mark.parametrize("event", [None, [], "x", {}, {"task_id": ""}, {"task_id": 7}])
def test_an_event_without_a_task_id_is_none(event):
    assert parse_execute_event(event) is None


# --- the execute side: an early event hops on through the queue -------------------------------


@pytest.mark.parametrize(
    "early",
    [timedelta(minutes=2), MAX_IN_PLACE_WAIT + timedelta(milliseconds=1), timedelta(hours=3)],
    ids=["rule", "just-over-a-second", "queue-chain"],
)
@pytest.mark.parametrize("task", [make_task(), None], ids=["stored", "not-written-yet"])
def test_an_early_event_is_sent_on_to_its_second_without_reading_the_task(early, task):
    now = DUE - early
    world = World(task, now=now)
    assert world.run().outcome is RunOutcome.WAITING
    assert world.retry_queue.armed == [(TASK_ID, DUE, now)]
    assert world.store.log == []  # no read, no claim, no trigger call
    assert world.clock.sleeps == world.action.calls == []


def test_a_hop_that_cannot_be_queued_is_raised_so_that_the_event_comes_again():
    world = World(make_task(), now=DUE - timedelta(minutes=2))
    world.retry_queue.fail = True
    with pytest.raises(DependencyFailure):
        world.run()
    assert world.store.log == []


@pytest.mark.parametrize("fired_after", [0.0, 0.4, 31.0, 59.999])
@pytest.mark.parametrize("second", [0, 1, 30, 59])
def test_a_rule_firing_anywhere_in_its_minute_runs_the_task_within_a_second_never_before(
    second, fired_after
):
    due = DUE.replace(second=second)
    world = World(make_task(next_run_at=format_utc(due)))
    world.clock.current = trigger_minute(due) + timedelta(seconds=fired_after)
    assert world.run(due).outcome is RunOutcome.WAITING
    [(_, at, sent)] = world.retry_queue.armed
    world.clock.current = sent + timedelta(seconds=queue_delay_seconds(at, sent))  # it lands
    assert world.run(due).outcome is RunOutcome.COMPLETED
    assert sum(world.clock.sleeps) <= MAX_IN_PLACE_WAIT.total_seconds()
    assert due <= ran_at(world)[0] < due + timedelta(seconds=1)


def test_a_retry_beyond_the_queues_15_minutes_is_hopped_on_until_due():
    result = ActionResult(
        False, 5, status_code=503, error="HTTP 503", retryable=True, retry_after_seconds=3600.0
    )
    world = World(make_task(), seed=3, result=result)
    world.run()
    [(_, retry_at, sent)] = world.retry_queue.armed
    world.clock.current = sent + timedelta(seconds=queue_delay_seconds(retry_at, sent))
    assert world.run(retry_at).outcome is RunOutcome.WAITING  # 45 minutes early
    assert world.retry_queue.armed[-1] == (TASK_ID, retry_at, world.clock.now())
    assert len(world.store.claims) == len(world.action.calls) == 1


# --- the execute side: a finished task's trigger is released ----------------------------------

NOTHING_TO_RELEASE = pytest.mark.parametrize(
    ("far", "trigger"),
    [(None, TriggerKind.QUEUE), (schedules_backend, TriggerKind.SCHEDULE)],
    ids=["queued-on-rules", "schedule"],
)


@NOTHING_TO_RELEASE
def test_a_finished_task_has_nothing_released_that_goes_by_itself(far, trigger):
    world = World(make_task(status=TaskStatus.CANCELLED, trigger=trigger), far=far and far())
    assert world.run().outcome is RunOutcome.NOT_SCHEDULED
    assert trigger_calls(world) == []


@NOTHING_TO_RELEASE
def test_a_task_finishing_without_a_rule_has_nothing_released(far, trigger):
    world = World(make_task(trigger=trigger), far=far and far())
    assert world.run().outcome is RunOutcome.COMPLETED
    assert trigger_calls(world) == []


# --- the execute side: a recurring task's next occurrence, armed before the run is recorded ---

DAILY = "cron(0 18 * * ? *)"


def test_a_next_occurrence_within_15_minutes_is_queued():
    world = World(cron_task(EVERY_15, format_utc(AT_1745), trigger=TriggerKind.QUEUE), now=AT_1745)
    assert world.run(AT_1745).outcome is RunOutcome.RESCHEDULED
    assert world.retry_queue.armed == [(TASK_ID, AT_1800, AT_1745)]  # exactly 15 minutes on
    assert trigger_calls(world) == []
    [record] = world.store.records
    assert (record["status"], record["next_run_at"]) == (SCHEDULED, format_utc(AT_1800))
    assert record["trigger"] is TriggerKind.QUEUE
    assert world.store.events == [("arm_at", TASK_ID), ("record_run", SCHEDULED)]
    assert world.stored().status is SCHEDULED


@pytest.mark.parametrize(
    ("far", "current", "kind"),
    [
        (None, TriggerKind.RULE, TriggerKind.RULE),  # the fired rule stays until the task ends
        (schedules_backend, TriggerKind.SCHEDULE, TriggerKind.QUEUE),  # it deleted itself
    ],
    ids=["rules", "schedules"],
)
def test_a_queued_next_occurrence_keeps_the_kind_only_of_a_rule_left_behind(far, current, kind):
    task = cron_task(EVERY_15, format_utc(AT_1745), trigger=current)
    world = World(task, now=AT_1745, far=far and far())
    world.run(AT_1745)
    assert (world.store.records[0]["trigger"], world.stored().trigger) == (kind, kind)
    assert trigger_calls(world) == []


@pytest.mark.parametrize(
    ("far", "kind"), [(None, TriggerKind.RULE), (schedules_backend, TriggerKind.SCHEDULE)]
)
def test_a_far_next_occurrence_gets_the_backends_trigger_before_the_run_is_recorded(far, kind):
    world = World(cron_task(DAILY, format_utc(AT_1800)), now=AT_1800, far=far and far())
    assert world.run(AT_1800).outcome is RunOutcome.RESCHEDULED
    assert world.far.armed == {TASK_ID: AT_1800 + timedelta(days=1)}
    assert world.calls() == ["claim", "arm", "record_run"]
    assert world.store.records[0]["trigger"] is kind
    assert world.retry_queue.armed == world.far.disarmed == []


@pytest.mark.parametrize(
    ("far", "kind"),
    [(None, TriggerKind.RULE), (schedules_backend, TriggerKind.QUEUE)],
    ids=["rule-may-have-stayed", "schedule-deletes-itself"],
)
def test_failing_to_arm_the_next_occurrence_hands_it_to_the_queue(far, kind):
    world = World(cron_task(DAILY, format_utc(AT_1800)), now=AT_1800, far=far and far())
    world.far.fail_arm = DependencyFailure("Could not create the task's EventBridge rule.")
    assert world.run(AT_1800).outcome is RunOutcome.RESCHEDULED
    # A day away: the queue carries it 15 minutes at a time (each landing hops it on).
    assert world.retry_queue.armed == [(TASK_ID, AT_1800 + timedelta(days=1), AT_1800)]
    assert world.store.records[0]["trigger"] is kind
    assert world.stored().next_run_at == "2030-05-20T18:00:00Z"
    assert world.store.events == [("arm_at", TASK_ID), ("record_run", SCHEDULED)]


def test_failing_to_arm_and_to_queue_leaves_the_task_running_not_scheduled_without_trigger():
    world = World(cron_task(DAILY, format_utc(AT_1800)), now=AT_1800)
    world.far.fail_arm = DependencyFailure("Could not create the task's EventBridge rule.")
    world.retry_queue.fail = True
    with pytest.raises(DependencyFailure):
        world.run(AT_1800)
    assert world.store.records == []
    assert world.stored().status is TaskStatus.RUNNING  # found interrupted later
