"""EventBridge Scheduler, emulated: fires the schedules the handlers create in moto at the times
Scheduler would, delivers each target's `Input` to the target function asynchronously, and
deletes a schedule whose ActionAfterCompletion is DELETE once it has run for the last time.

Schedules are learnt as they are written (hooks on moto's backend, local.moto_fidelity) and fire
from the heap and thread rules use (local.eventbridge.FiringClock), with the same timing: a
schedule is first evaluated for the minute after the one in which it was written; it fires at
its time (the start of its minute for a cron), or (LOCAL_AWS_TIMING=1) at a random second of its
minute, Scheduler's documented 60-second precision. Expressions are read in the schedule's
ScheduleExpressionTimezone: `at(...)` is one wall time there, `cron(...)` follows the zone's
daylight saving rules as Scheduler does (task_scheduler.zoned_cron), `rate(...)` ignores it.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from local.eventbridge import Due, FiringClock, Occurrences, RateSchedule, Target
from local.moto_fidelity import ScheduleTarget
from task_scheduler.cron import CronError
from task_scheduler.timing import minute_start
from task_scheduler.zoned_cron import UnknownZone, ZonedCron, zone_named

log = logging.getLogger("local.scheduler")

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


@dataclass(frozen=True)
class OneTime:
    """`at(...)`: one instant (a wall time that is skipped or repeated in its zone is read with
    the offset in force before the change, zoneinfo's fold=0)."""

    instant: datetime

    def first_at_or_after(self, moment: datetime) -> datetime | None:
        return self.instant if self.instant >= moment else None

    def next_after(self, moment: datetime) -> datetime | None:
        return self.instant if self.instant > moment else None


@dataclass(frozen=True)
class ZonedCronSchedule:
    cron: ZonedCron

    def first_at_or_after(self, moment: datetime) -> datetime | None:
        return self.cron.next_after(moment - timedelta(microseconds=1))

    def next_after(self, moment: datetime) -> datetime | None:
        return self.cron.next_after(moment)


def occurrences_of(expression: str, timezone: str, written_at: datetime) -> Occurrences | None:
    """When a schedule with this expression and zone fires; None when it cannot be emulated."""
    try:
        if match := _AT.match(expression):
            wall = datetime.fromisoformat(match[1])
            return OneTime(wall.replace(tzinfo=zone_named(timezone)).astimezone(UTC))
        if expression.startswith("cron("):
            return ZonedCronSchedule(ZonedCron.parse(expression, timezone))
    except (CronError, UnknownZone, ValueError):
        return None
    if expression.startswith("rate("):
        return RateSchedule.parse(expression, written_at)
    return None


class ScheduleClock(FiringClock):
    def __init__(
        self,
        lookup_target: Callable[[str, str], ScheduleTarget | None],
        deliver: Callable[[Target, dict[str, Any]], None],
        delete_completed: Callable[[str, str, int], bool],
        aws_timing: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        super().__init__("scheduler-clock", aws_timing, now, rng)
        self._lookup = lookup_target
        self._deliver = deliver
        self._delete_completed = delete_completed
        self.deleted = 0

    # -- what moto tells us ------------------------------------------------------------------

    def schedule_written(
        self, group: str, name: str, expression: str, timezone: str, state: str
    ) -> None:
        schedule = None
        if state == "ENABLED":
            schedule = occurrences_of(expression, timezone or "UTC", self._now())
            if schedule is None:
                log.warning(
                    "schedule %s/%s: cannot emulate %s in %s", group, name, expression, timezone
                )
        self._arm((group, name), schedule)

    def schedule_deleted(self, group: str, name: str) -> None:
        self._arm((group, name), None)

    # -- firing --------------------------------------------------------------------------------

    def _fire_time(self, occurrence: datetime) -> datetime:
        # Within the occurrence's minute; without AWS timing at the occurrence itself, so an
        # `at(...)` with seconds never fires before its time.
        if self._aws_timing:
            return minute_start(occurrence) + timedelta(seconds=self._rng.uniform(0, 59.999))
        return occurrence

    def _fire(self, entry: Due) -> None:
        group, name = entry.key  # type: ignore[misc]
        found = self._lookup(group, name)
        if found is None:
            return
        self.fired += 1
        # Scheduler hands a Lambda target its Input as the event (an empty object without one).
        event = json.loads(found.input) if found.input else {}
        self._deliver(Target(found.arn, found.input), event)
        completed = self._schedule_next(entry)
        if (
            completed
            and found.action_after_completion == "DELETE"
            and self._delete_completed(group, name, found.revision)
        ):
            self.deleted += 1
