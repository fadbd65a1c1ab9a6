"""EventBridge's scheduler, emulated: fires the rules the handlers create in moto at the times
EventBridge would, and delivers each target's `Input` to the target function asynchronously.

Rules are learnt as they are written (a hook on moto's backend), kept in a heap by next firing
time, and each tick only pops what is due: the cost of a tick follows what is due, not how many
rules are pending. Like EventBridge, a rule is first evaluated for the minute after the one in
which it was created, and it fires at the start of its minute, or (LOCAL_AWS_TIMING=1) at a random
second within it, as AWS documents.

`FiringClock` is that heap and its thread, shared with EventBridge Scheduler's emulation
(local.scheduler_clock); `RuleClock` is what is particular to rules.
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
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from task_scheduler.cron import CronError, parse_cron
from task_scheduler.timing import format_utc, minute_start

log = logging.getLogger("local.eventbridge")


class Occurrences(Protocol):
    """When a trigger fires: its occurrences as aware UTC datetimes."""

    def first_at_or_after(self, moment: datetime) -> datetime | None: ...

    def next_after(self, moment: datetime) -> datetime | None: ...


@dataclass(order=True)
class Due:
    fire_at: datetime
    sequence: int
    key: Hashable = field(compare=False)
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

    def first_at_or_after(self, moment: datetime) -> datetime | None:
        return self.next_after(moment - timedelta(microseconds=1))

    def next_after(self, moment: datetime) -> datetime | None:
        periods = max(1, int((moment - self.start) / self.every) + 1)
        return self.start + periods * self.every


@dataclass(frozen=True)
class Target:
    arn: str
    input: str | None


class FiringClock:
    """Triggers (each under a key) in a heap by firing time, a thread that sleeps until the next
    one is due, and a generation per key: rewriting or deleting a trigger makes its entries
    already in the heap stale, so a trigger never fires with a definition it no longer has."""

    def __init__(
        self,
        thread_name: str,
        aws_timing: bool,
        now: Callable[[], datetime],
        rng: random.Random | None,
    ) -> None:
        self._thread_name = thread_name
        self._aws_timing = aws_timing
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 - timing jitter, not security
        self._heap: list[Due] = []
        self._generation: dict[Hashable, int] = {}
        self._schedules: dict[Hashable, Occurrences] = {}  # the live triggers' occurrences
        self._sequence = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.fired = 0

    @property
    def pending(self) -> int:
        with self._wake:
            return len(self._heap)

    # -- for the emulations --------------------------------------------------------------------

    def _arm(self, key: Hashable, schedule: Occurrences | None) -> None:
        """`key` now fires on `schedule` (None: never); whatever it was armed with is dropped.
        Like EventBridge, a trigger is evaluated from the next minute on, never the current one."""
        with self._wake:
            generation = self._generation.get(key, 0) + 1
            self._generation[key] = generation
            self._schedules.pop(key, None)
            if schedule is None:
                return
            self._schedules[key] = schedule
            occurrence = schedule.first_at_or_after(
                minute_start(self._now()) + timedelta(minutes=1)
            )
            if occurrence is not None:
                self._push(key, occurrence, generation)
                self._wake.notify()

    def _fire(self, entry: Due) -> None:
        raise NotImplementedError

    def _fire_time(self, occurrence: datetime) -> datetime:
        """When an occurrence fires: on time, or (AWS timing) up to a minute after it."""
        if self._aws_timing:
            return occurrence + timedelta(seconds=self._rng.uniform(0, 59.999))
        return occurrence

    def _schedule_next(self, entry: Due) -> bool:
        """Puts a fired trigger back in the heap at its next occurrence; True when it has none
        (it is complete), False when it has one or was rewritten or deleted meanwhile."""
        with self._wake:
            schedule = self._schedules.get(entry.key)
            if schedule is None or entry.generation != self._generation.get(entry.key):
                return False
            following = schedule.next_after(entry.occurrence)
            if following is None:
                del self._schedules[entry.key]
                return True
            self._push(entry.key, following, entry.generation)
            self._wake.notify()
            return False

    # -- the clock -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if self._thread:
            self._thread.join(timeout=5)

    def tick(self) -> int:
        """Fires every trigger that is due now; returns how many fired."""
        due = []
        with self._wake:
            now = self._now()
            while self._heap and self._heap[0].fire_at <= now:
                entry = heapq.heappop(self._heap)
                if entry.generation == self._generation.get(entry.key):
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

    def _push(self, key: Hashable, occurrence: datetime, generation: int) -> None:
        heapq.heappush(
            self._heap,
            Due(self._fire_time(occurrence), next(self._sequence), key, occurrence, generation),
        )


class RuleClock(FiringClock):
    def __init__(
        self,
        lookup_targets: Callable[[str], tuple[str, list[Target]] | None],
        deliver: Callable[[Target, dict[str, Any]], None],
        allowed_source_arns: list[str],
        aws_timing: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        super().__init__("eventbridge-clock", aws_timing, now, rng)
        self._lookup = lookup_targets
        self._deliver = deliver
        self._allowed = allowed_source_arns

    # -- what moto tells us ------------------------------------------------------------------

    def rule_written(self, name: str, expression: str | None, state: str) -> None:
        schedule = None
        if expression and state == "ENABLED":
            schedule = self._schedule_of(expression)
            if schedule is None:
                log.warning("rule %s: cannot emulate the schedule %s", name, expression)
        self._arm(name, schedule)

    def rule_deleted(self, name: str) -> None:
        self._arm(name, None)

    # -- firing --------------------------------------------------------------------------------

    def _fire(self, entry: Due) -> None:
        found = self._lookup(str(entry.key))
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

    def _schedule_of(self, expression: str) -> Occurrences | None:
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
