"""The local EventBridge Scheduler clock, driven by a fake time: what fires when, in which zone,
what is deleted after it runs, and what a tick costs; then the same clock fed by moto's hooks."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.eventbridge import Target
from local.moto_fidelity import (
    ScheduleTarget,
    delete_completed_schedule,
    schedule_target,
    unwatch_schedules,
    watch_schedules,
)
from local.scheduler_clock import ScheduleClock

T0 = datetime(2030, 3, 30, 17, 55, 30, tzinfo=UTC)
EXECUTE = "arn:aws:lambda:us-east-1:123456789012:function:local-ExecuteTaskFunction"
GROUP = "local-TaskSchedules"
ACCOUNT = "123456789012"


class World:
    """The clock with a dictionary for moto: schedules by (group, name)."""

    def __init__(self, now: datetime = T0, aws_timing: bool = False) -> None:
        self.now = now
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}
        self.lookups: list[tuple[str, str]] = []
        self.delivered: list[tuple[datetime, dict]] = []
        self.revision = 0
        self.clock = ScheduleClock(
            self.lookup,
            self.deliver,
            self.delete,
            aws_timing=aws_timing,
            now=lambda: self.now,
            rng=random.Random(7),
        )

    def lookup(self, group: str, name: str) -> ScheduleTarget | None:
        self.lookups.append((group, name))
        found = self.schedules.get((group, name))
        if found is None or found["state"] != "ENABLED":
            return None
        return ScheduleTarget(EXECUTE, found["input"], found["after"], found["revision"])

    def deliver(self, target: Target, event: dict) -> None:
        assert target.arn == EXECUTE
        self.delivered.append((self.now, event))

    def delete(self, group: str, name: str, revision: int) -> bool:
        found = self.schedules.get((group, name))
        if found is None or found["revision"] != revision:
            return False
        del self.schedules[(group, name)]
        self.clock.schedule_deleted(group, name)
        return True

    def put(
        self, name: str, expression: str, zone: str = "UTC", after: str | None = "DELETE"
    ) -> None:
        self.revision += 1
        self.schedules[(GROUP, name)] = {
            "input": json.dumps({"task_id": name, "expression": expression}),
            "after": after,
            "state": "ENABLED",
            "revision": self.revision,
        }
        self.clock.schedule_written(GROUP, name, expression, zone, "ENABLED")

    def remove(self, name: str) -> None:
        del self.schedules[(GROUP, name)]
        self.clock.schedule_deleted(GROUP, name)

    def advance_to(self, moment: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        while self.now < moment:
            self.now = min(moment, self.now + step)
            self.clock.tick()

    def times(self) -> list[datetime]:
        return [when for when, _ in self.delivered]


def test_an_at_schedule_fires_once_at_its_wall_time_in_its_zone_and_is_deleted() -> None:
    world = World(now=datetime(2030, 3, 31, 6, 58, 30, tzinfo=UTC))
    world.put("task-a", "at(2030-03-31T09:00:00)", "Europe/Paris")  # CEST, UTC+2
    world.advance_to(datetime(2030, 3, 31, 7, 5, tzinfo=UTC))
    assert world.delivered == [
        (
            datetime(2030, 3, 31, 7, 0, tzinfo=UTC),
            {"task_id": "task-a", "expression": "at(2030-03-31T09:00:00)"},
        )
    ]
    assert world.schedules == {}  # ActionAfterCompletion DELETE
    assert world.clock.deleted == 1
    assert world.clock.pending == 0


def test_an_at_schedule_without_delete_stays_after_it_runs() -> None:
    world = World()
    world.put("task-kept", "at(2030-03-30T17:57:00)", after="NONE")
    world.advance_to(T0 + timedelta(minutes=5))
    assert world.times() == [datetime(2030, 3, 30, 17, 57, tzinfo=UTC)]
    assert (GROUP, "task-kept") in world.schedules


def test_an_at_schedule_with_seconds_never_fires_before_them() -> None:
    world = World()
    world.put("task-s", "at(2030-03-30T17:56:45)")
    world.advance_to(T0 + timedelta(minutes=3), step=timedelta(milliseconds=250))
    assert world.times() == [datetime(2030, 3, 30, 17, 56, 45, tzinfo=UTC)]


def test_aws_timing_fires_at_a_second_within_the_minute() -> None:
    world = World(aws_timing=True)
    for index in range(20):
        world.put(f"task-{index}", "at(2030-03-30T17:57:00)")
    world.advance_to(T0 + timedelta(minutes=3), step=timedelta(milliseconds=250))
    minute = datetime(2030, 3, 30, 17, 57, tzinfo=UTC)
    assert len(world.times()) == 20
    assert all(minute <= when < minute + timedelta(minutes=1) for when in world.times())
    assert len({when.second for when in world.times()}) > 5
    assert world.schedules == {}


def test_an_at_schedule_for_the_current_minute_never_fires_as_with_rules() -> None:
    world = World()
    world.put("task-late", "at(2030-03-30T17:55:50)")  # written at 17:55:30
    world.advance_to(T0 + timedelta(minutes=3))
    assert world.delivered == []


def test_a_cron_schedule_follows_its_zone_across_a_dst_change() -> None:
    # America/New_York springs forward on 2030-03-10 at 02:00 (EST, UTC-5 -> EDT, UTC-4).
    world = World(now=datetime(2030, 3, 8, 12, 0, tzinfo=UTC))
    world.put("task-daily", "cron(30 9 * * ? *)", "America/New_York", after="NONE")
    world.advance_to(datetime(2030, 3, 11, 16, 0, tzinfo=UTC), step=timedelta(minutes=1))
    assert world.times() == [
        datetime(2030, 3, 8, 14, 30, tzinfo=UTC),
        datetime(2030, 3, 9, 14, 30, tzinfo=UTC),
        datetime(2030, 3, 10, 13, 30, tzinfo=UTC),
        datetime(2030, 3, 11, 13, 30, tzinfo=UTC),
    ]
    assert world.clock.pending == 1  # the next morning's


def test_a_cron_schedule_with_no_occurrence_left_is_complete_and_deleted() -> None:
    world = World()
    world.put("task-last", "cron(58 13 30 3 ? 2030)", "America/New_York")  # EDT: 17:58Z
    world.advance_to(T0 + timedelta(minutes=5))
    assert world.times() == [datetime(2030, 3, 30, 17, 58, tzinfo=UTC)]
    assert world.schedules == {}


def test_a_deleted_schedule_does_not_fire() -> None:
    world = World()
    world.put("task-gone", "at(2030-03-30T17:57:00)")
    world.put("task-every", "cron(* * * * ? *)", after="NONE")
    world.advance_to(T0 + timedelta(minutes=1))
    world.remove("task-gone")
    world.remove("task-every")
    world.advance_to(T0 + timedelta(minutes=5))
    assert world.times() == [datetime(2030, 3, 30, 17, 56, tzinfo=UTC)]  # task-every, once


def test_an_updated_schedule_fires_with_its_new_definition_only() -> None:
    world = World()
    world.put("task-x", "at(2030-03-30T17:57:00)")
    world.put("task-x", "at(2030-03-30T18:59:00)", "Europe/Paris")  # CET: 17:59Z
    world.advance_to(T0 + timedelta(minutes=6))
    assert world.delivered == [
        (
            datetime(2030, 3, 30, 17, 59, tzinfo=UTC),
            {"task_id": "task-x", "expression": "at(2030-03-30T18:59:00)"},
        )
    ]


def test_a_schedule_rewritten_after_its_lookup_is_not_deleted() -> None:
    world = World()
    world.put("task-r", "at(2030-03-30T17:57:00)")

    def rewrite_when_delivered(target: Target, event: dict) -> None:
        world.delivered.append((world.now, event))
        if len(world.delivered) == 1:  # the handler re-arms it while the first run is on
            world.put("task-r", "at(2030-03-30T17:59:00)")

    world.clock._deliver = rewrite_when_delivered
    world.advance_to(T0 + timedelta(minutes=6))
    assert [when.minute for when in world.times()] == [57, 59]
    assert world.schedules == {}


def test_a_disabled_or_unreadable_schedule_does_not_fire() -> None:
    world = World()
    world.clock.schedule_written(GROUP, "off", "at(2030-03-30T17:57:00)", "UTC", "DISABLED")
    world.clock.schedule_written(GROUP, "zone", "at(2030-03-30T17:57:00)", "Mars/Base", "ENABLED")
    world.clock.schedule_written(GROUP, "bad", "at(tomorrow)", "UTC", "ENABLED")
    assert world.clock.pending == 0


def test_rate_schedules_fire_every_period_from_when_they_are_written() -> None:
    world = World()
    world.put("task-rate", "rate(5 minutes)", after="NONE")
    world.advance_to(T0 + timedelta(minutes=16))
    assert world.times() == [T0 + timedelta(minutes=5 * n) for n in (1, 2, 3)]


def test_a_tick_costs_what_is_due_not_what_is_pending() -> None:
    world = World()
    for index in range(10_000):
        world.put(f"task-later-{index}", "at(2031-01-01T12:00:00)", "Asia/Tokyo")
    world.put("task-now", "at(2030-03-30T17:56:00)")
    world.advance_to(T0 + timedelta(minutes=1))
    assert world.clock.pending == 10_000
    assert world.lookups == [(GROUP, "task-now")]
    assert len(world.delivered) == 1


# -- fed by moto ------------------------------------------------------------------------------


@pytest.fixture
def scheduler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")
        client.create_schedule_group(Name=GROUP)
        yield client


class MotoWorld:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.delivered: list[tuple[datetime, str, dict]] = []
        self.clock = ScheduleClock(
            lambda group, name: schedule_target(ACCOUNT, "us-east-1", group, name),
            lambda target, event: self.delivered.append((self.now, target.arn, event)),
            lambda group, name, revision: delete_completed_schedule(
                ACCOUNT, "us-east-1", group, name, revision
            ),
            now=lambda: self.now,
        )

    def advance_to(self, moment: datetime) -> None:
        while self.now < moment:
            self.now = min(moment, self.now + timedelta(seconds=1))
            self.clock.tick()


@pytest.fixture
def moto_world(scheduler: Any) -> Iterator[MotoWorld]:
    world = MotoWorld(datetime(2030, 3, 31, 6, 58, 30, tzinfo=UTC))
    watch_schedules(world.clock)
    yield world
    unwatch_schedules(world.clock)


def _create(client: Any, name: str, expression: str, zone: str, **extra: Any) -> None:
    client.create_schedule(
        Name=name,
        GroupName=GROUP,
        ScheduleExpression=expression,
        ScheduleExpressionTimezone=zone,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": EXECUTE,
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/local-SchedulerRole",
            "Input": json.dumps({"task_id": name}),
            "RetryPolicy": {"MaximumRetryAttempts": 0},
            "DeadLetterConfig": {"Arn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:local-DeadLetterQueue"},
        },
        **extra,
    )


def test_moto_schedules_fire_in_their_zone_and_one_shots_are_deleted_after(
    scheduler: Any, moto_world: MotoWorld
) -> None:
    _create(
        scheduler, "t-1", "at(2030-03-31T09:00:00)", "Europe/Paris", ActionAfterCompletion="DELETE"
    )
    _create(scheduler, "t-kept", "at(2030-03-31T09:01:00)", "Europe/Paris")
    moto_world.advance_to(datetime(2030, 3, 31, 7, 5, tzinfo=UTC))
    assert moto_world.delivered == [
        (datetime(2030, 3, 31, 7, 0, tzinfo=UTC), EXECUTE, {"task_id": "t-1"}),
        (datetime(2030, 3, 31, 7, 1, tzinfo=UTC), EXECUTE, {"task_id": "t-kept"}),
    ]
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]]
    assert names == ["t-kept"]


def test_moto_deletes_and_updates_reach_the_clock(scheduler: Any, moto_world: MotoWorld) -> None:
    _create(scheduler, "t-gone", "at(2030-03-31T07:00:00)", "UTC")
    _create(scheduler, "t-moved", "at(2030-03-31T07:00:00)", "UTC", ActionAfterCompletion="DELETE")
    scheduler.delete_schedule(Name="t-gone", GroupName=GROUP)
    scheduler.update_schedule(
        Name="t-moved",
        GroupName=GROUP,
        ScheduleExpression="at(2030-03-31T03:02:00)",
        ScheduleExpressionTimezone="America/New_York",  # EDT: 07:02Z
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": EXECUTE, "RoleArn": "arn:aws:iam::123456789012:role/r", "Input": "{}"},
    )
    moto_world.advance_to(datetime(2030, 3, 31, 7, 5, tzinfo=UTC))
    assert moto_world.delivered == [(datetime(2030, 3, 31, 7, 2, tzinfo=UTC), EXECUTE, {})]
    # UpdateSchedule replaces the whole definition, as Scheduler does: without
    # ActionAfterCompletion it is NONE, and the schedule stays after it runs.
    assert scheduler.get_schedule(Name="t-moved", GroupName=GROUP)["State"] == "ENABLED"


def test_moto_keeps_a_disabled_schedule_from_firing(scheduler: Any, moto_world: MotoWorld) -> None:
    _create(scheduler, "t-off", "at(2030-03-31T07:00:00)", "UTC", State="DISABLED")
    moto_world.advance_to(datetime(2030, 3, 31, 7, 2, tzinfo=UTC))
    assert moto_world.delivered == []


def test_aws_timing_keeps_an_at_schedule_with_seconds_within_its_minute() -> None:
    world = World(aws_timing=True)
    for index in range(20):
        world.put(f"task-{index}", "at(2030-03-30T17:56:45)")
    world.advance_to(T0 + timedelta(minutes=3), step=timedelta(milliseconds=250))
    minute = datetime(2030, 3, 30, 17, 56, tzinfo=UTC)
    assert len(world.times()) == 20
    assert all(minute <= when < minute + timedelta(minutes=1) for when in world.times())


def test_moto_deletes_a_completed_schedule_only_at_the_revision_that_ran(
    scheduler: Any, moto_world: MotoWorld
) -> None:
    _create(scheduler, "t-r", "at(2030-03-31T07:00:00)", "UTC", ActionAfterCompletion="DELETE")
    ran = schedule_target(ACCOUNT, "us-east-1", GROUP, "t-r")
    assert ran is not None
    assert ran.action_after_completion == "DELETE"
    scheduler.update_schedule(
        Name="t-r",
        GroupName=GROUP,
        ScheduleExpression="at(2030-03-31T08:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": EXECUTE, "RoleArn": "arn:aws:iam::123456789012:role/r"},
        ActionAfterCompletion="DELETE",
    )
    assert not delete_completed_schedule(ACCOUNT, "us-east-1", GROUP, "t-r", ran.revision)
    assert scheduler.get_schedule(Name="t-r", GroupName=GROUP)["ScheduleExpression"] == (
        "at(2030-03-31T08:00:00)"
    )
    current = schedule_target(ACCOUNT, "us-east-1", GROUP, "t-r")
    assert current is not None
    assert delete_completed_schedule(ACCOUNT, "us-east-1", GROUP, "t-r", current.revision)
    assert scheduler.list_schedules(GroupName=GROUP)["Schedules"] == []
