"""EventBridge's scheduler, emulated: fires the rules the handlers create in moto at the times
EventBridge would, and delivers each target's `Input` to the target function asynchronously.

Rules are learnt as they are written (a hook on moto's backend), kept in a heap by next firing
time, and each tick only pops what is due: the cost of a tick follows what is due, not how many
rules are pending. Like EventBridge, a rule is first evaluated for the minute after the one in
which it was created, and it fires at the start of its minute, or (LOCAL_AWS_TIMING=1) at a random
second within it, as AWS documents.
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import json
import logging
import random
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from task_scheduler.cron import CronError, parse_cron
from task_scheduler.timing import format_utc, minute_start

log = logging.getLogger("local.eventbridge")


@dataclass(order=True)
class _Due:
    fire_at: datetime
    sequence: int
    rule_name: str = field(compare=False)
    occurrence: datetime = field(compare=False)
    generation: int = field(compare=False)


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class RateSchedule:
    """`rate(N unit)`: every N units from when the rule was written."""

    start: datetime
    every: timedelta

    @classmethod
    def parse(cls, expression: str, start: datetime) -> RateSchedule | None:
        match = _RATE.match(expression)
        if not match or int(match[1]) < 1:
            return None
        return cls(start, timedelta(seconds=int(match[1]) * _UNIT[match[2].rstrip("s")]))

    def first_at_or_after(self, moment: datetime) -> datetime:
        return self.next_after(moment - timedelta(microseconds=1))

    def next_after(self, moment: datetime) -> datetime:
        periods = max(1, int((moment - self.start) / self.every) + 1)
        return self.start + periods * self.every


@dataclass(frozen=True)
class Target:
    arn: str
    input: str | None


class RuleClock:
    def __init__(
        self,
        lookup_targets: Callable[[str], tuple[str, list[Target]] | None],
        deliver: Callable[[Target, dict[str, Any]], None],
        allowed_source_arns: list[str],
        aws_timing: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self._lookup = lookup_targets
        self._deliver = deliver
        self._allowed = allowed_source_arns
        self._aws_timing = aws_timing
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - timing jitter, not security
        self._heap: list[_Due] = []
        self._generation: dict[str, int] = {}
        self._schedules: dict[str, Any] = {}  # the live rules' schedules
        self._sequence = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.fired = 0

    # -- what moto tells us ------------------------------------------------------------------

    def rule_written(self, name: str, expression: str | None, state: str) -> None:
        with self._wake:
            generation = self._generation.get(name, 0) + 1
            self._generation[name] = generation
            self._schedules.pop(name, None)
            if not expression or state != "ENABLED":
                return
            schedule = self._schedule_of(expression)
            if schedule is None:
                log.warning("rule %s: cannot emulate the schedule %s", name, expression)
                return
            # EventBridge evaluates a new rule from the next minute on, never the current one.
            occurrence = schedule.first_at_or_after(
                minute_start(self._now()) + timedelta(minutes=1)
            )
            self._schedules[name] = schedule
            if occurrence is not None:
                self._push(name, occurrence, generation)
                self._wake.notify()

    def rule_deleted(self, name: str) -> None:
        with self._wake:
            self._generation[name] = self._generation.get(name, 0) + 1
            self._schedules.pop(name, None)

    @property
    def pending(self) -> int:
        with self._wake:
            return len(self._heap)

    # -- the clock -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="eventbridge-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread:
            self._thread.join(timeout=5)

    def tick(self) -> int:
        """Fires every rule that is due now; returns how many fired."""
        due = []
        with self._wake:
            now = self._now()
            while self._heap and self._heap[0].fire_at <= now:
                entry = heapq.heappop(self._heap)
                if entry.generation == self._generation.get(entry.rule_name):
                    due.append(entry)
        for entry in due:
            self._fire(entry)
        return len(due)

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopped:
                    return
                wait = 0.5
                if self._heap:
                    wait = min(wait, (self._heap[0].fire_at - self._now()).total_seconds())
                if wait > 0:
                    self._wake.wait(wait)
                if self._stopped:
                    return
            self.tick()

    def _push(self, name: str, occurrence: datetime, generation: int) -> None:
        fire_at = occurrence
        if self._aws_timing:
            fire_at += timedelta(seconds=self._rng.uniform(0, 59.999))
        heapq.heappush(
            self._heap, _Due(fire_at, next(self._sequence), name, occurrence, generation)
        )

    def _fire(self, entry: _Due) -> None:
        found = self._lookup(entry.rule_name)
        if found is None:
            return
        rule_arn, targets = found
        self.fired += 1
        for target in targets:
            if not any(fnmatch.fnmatchcase(rule_arn, allowed) for allowed in self._allowed):
                log.warning(
                    "rule %s may not invoke %s (no matching permission)", rule_arn, target.arn
                )
                continue
            event = json.loads(target.input) if target.input else self._scheduled_event(rule_arn)
            self._deliver(target, event)
        self._schedule_next(entry)

    def _schedule_next(self, entry: _Due) -> None:
        """A recurring rule goes back in the heap at its next occurrence (a one-shot has none)."""
        with self._wake:
            schedule = self._schedules.get(entry.rule_name)
            if schedule is None or entry.generation != self._generation.get(entry.rule_name):
                return
            following = schedule.next_after(entry.occurrence)
            if following is not None:
                self._push(entry.rule_name, following, entry.generation)
                self._wake.notify()

    def _schedule_of(self, expression: str) -> Any:
        if expression.startswith("rate("):
            return RateSchedule.parse(expression, self._now())
        try:
            return parse_cron(expression)
        except CronError:
            return None

    def _scheduled_event(self, rule_arn: str) -> dict[str, Any]:
        parts = rule_arn.split(":")
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": parts[4],
            "time": format_utc(self._now()),
            "region": parts[3],
            "resources": [rule_arn],
            "detail": {},
        }
