"""The local EventBridge clock, driven by a fake time: what fires when, and what a tick costs."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from local.eventbridge import RuleClock, Target

T0 = datetime(2030, 5, 19, 17, 55, 30, tzinfo=UTC)
EXECUTE = "arn:aws:lambda:us-east-1:123456789012:function:local-ExecuteTaskFunction"
ALLOWED = ["arn:aws:events:us-east-1:123456789012:rule/task-scheduler-*"]


class World:
    def __init__(self, aws_timing: bool = False) -> None:
        self.now = T0
        self.rules: dict[str, str] = {}  # name -> Input
        self.lookups: list[str] = []
        self.delivered: list[tuple[datetime, dict]] = []
        self.clock = RuleClock(
            self.lookup,
            self.deliver,
            ALLOWED,
            aws_timing=aws_timing,
            now=lambda: self.now,
            rng=random.Random(7),
        )

    def lookup(self, name: str) -> tuple[str, list[Target]] | None:
        self.lookups.append(name)
        if name not in self.rules:
            return None
        arn = f"arn:aws:events:us-east-1:123456789012:rule/{name}"
        return arn, [Target(EXECUTE, self.rules[name])]

    def deliver(self, target: Target, event: dict) -> None:
        assert target.arn == EXECUTE
        self.delivered.append((self.now, event))

    def put(self, name: str, expression: str) -> None:
        self.rules[name] = json.dumps({"task_id": name})
        self.clock.rule_written(name, expression, "ENABLED")

    def advance_to(self, moment: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        while self.now < moment:
            self.now = min(moment, self.now + step)
            self.clock.tick()


def test_a_one_shot_rule_fires_once_at_the_start_of_its_minute() -> None:
    world = World()
    world.put("task-scheduler-a", "cron(56 17 19 5 ? 2030)")
    world.advance_to(T0 + timedelta(minutes=3))
    assert world.delivered == [
        (datetime(2030, 5, 19, 17, 56, tzinfo=UTC), {"task_id": "task-scheduler-a"})
    ]


def test_a_rule_for_the_current_minute_never_fires_as_in_eventbridge() -> None:
    world = World()
    world.put("task-scheduler-late", "cron(55 17 19 5 ? 2030)")  # created at 17:55:30
    world.advance_to(T0 + timedelta(minutes=5))
    assert world.delivered == []


def test_aws_timing_fires_at_a_second_within_the_minute() -> None:
    world = World(aws_timing=True)
    for index in range(20):
        world.put(f"task-scheduler-{index}", "cron(57 17 19 5 ? 2030)")
    world.advance_to(T0 + timedelta(minutes=3), step=timedelta(milliseconds=250))
    minute = datetime(2030, 5, 19, 17, 57, tzinfo=UTC)
    times = [when for when, _ in world.delivered]
    assert len(times) == 20
    assert all(minute <= when < minute + timedelta(minutes=1) for when in times)
    assert len({when.second for when in times}) > 5  # spread over the minute, not all at :00


def test_a_recurring_rule_fires_every_occurrence_until_deleted() -> None:
    world = World()
    world.put("task-scheduler-r", "cron(* * * * ? *)")
    world.advance_to(T0 + timedelta(minutes=3))
    assert [when.minute for when, _ in world.delivered] == [56, 57, 58]
    world.clock.rule_deleted("task-scheduler-r")
    del world.rules["task-scheduler-r"]
    world.advance_to(T0 + timedelta(minutes=6))
    assert len(world.delivered) == 3


def test_a_rewritten_rule_fires_on_its_new_schedule_only() -> None:
    world = World()
    world.put("task-scheduler-x", "cron(56 17 19 5 ? 2030)")
    world.put("task-scheduler-x", "cron(58 17 19 5 ? 2030)")
    world.advance_to(T0 + timedelta(minutes=4))
    assert [when.minute for when, _ in world.delivered] == [58]


def test_a_rule_outside_the_invoke_permission_is_not_delivered() -> None:
    world = World()
    world.put("someone-else-a", "cron(56 17 19 5 ? 2030)")
    world.advance_to(T0 + timedelta(minutes=2))
    assert world.delivered == []


def test_a_tick_costs_what_is_due_not_what_is_pending() -> None:
    world = World()
    for index in range(10_000):
        world.put(f"task-scheduler-later-{index}", "cron(0 12 1 1 ? 2031)")
    world.put("task-scheduler-now", "cron(56 17 19 5 ? 2030)")
    world.advance_to(T0 + timedelta(minutes=1))
    assert world.clock.pending == 10_000
    assert world.lookups == ["task-scheduler-now"]
    assert len(world.delivered) == 1


def test_rate_schedules_fire_every_period_from_their_creation() -> None:
    world = World()
    world.rules["local-ReconcileFunctionEveryFiveMinutes"] = ""
    world.clock._allowed.append("arn:aws:events:us-east-1:123456789012:rule/local-*")
    world.clock.rule_written(
        "local-ReconcileFunctionEveryFiveMinutes", "rate(5 minutes)", "ENABLED"
    )
    world.advance_to(T0 + timedelta(minutes=16))
    fired = [when for when, _ in world.delivered]
    assert fired == [T0 + timedelta(minutes=5 * n) for n in (1, 2, 3)]
    assert all(event["detail-type"] == "Scheduled Event" for _, event in world.delivered)
