"""Cron expressions read in a time zone's wall-clock time, as EventBridge Scheduler reads them
(`ScheduleExpressionTimezone`): a local time that does not exist that day (clocks going forward)
is skipped; one that happens twice (clocks going back) runs once, at the first of its instants.

Zones come from the pinned `tzdata` package, never from the machine: Lambda's runtime may have no
time zone database, and every machine must agree on which names exist and what they mean.

Local wall-clock times exist only inside `ZonedCron.next_after`, where the whole-minute datetimes
`cron.py` yields (tagged UTC) stand for local wall times; what goes in and out is aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from task_scheduler.cron import CronSchedule, parse_cron
from task_scheduler.cron_grammar import YEAR

DEFAULT_TIMEZONE = "UTC"


class UnknownZone(ValueError):
    """The name is not one of the IANA zones the pinned `tzdata` knows."""


@cache
def zone_names() -> frozenset[str]:
    """Every zone name `tzdata` ships (its own `zones` list), links like `US/Eastern` included."""
    listing = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in listing.splitlines() if line.strip())


def zone_named(name: object) -> ZoneInfo:
    """The zone called `name` (exact spelling), or UnknownZone. Only names from `tzdata`'s own
    list are looked up, so no input can reach a file path of its choosing."""
    if not isinstance(name, str) or name not in zone_names():
        raise UnknownZone(name)
    return _load(name)


@lru_cache(maxsize=64)
def _load(name: str) -> ZoneInfo:
    *folders, leaf = name.split("/")
    package = ".".join(["tzdata", "zoneinfo", *folders])
    with resources.files(package).joinpath(leaf).open("rb") as data:
        return ZoneInfo.from_file(data, key=name)


@dataclass(frozen=True)
class ZonedCron:
    """An EventBridge cron expression whose fields are read in `zone`'s wall-clock time."""

    cron: CronSchedule
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str = DEFAULT_TIMEZONE) -> ZonedCron:
        """Raises CronError or UnknownZone."""
        return cls(parse_cron(expression), zone_named(timezone))

    @property
    def expression(self) -> str:
        return self.cron.expression

    @property
    def timezone(self) -> str:
        """The zone's IANA name, as the client spelt it."""
        return str(self.zone.key)

    def is_single_moment(self) -> bool:
        return self.cron.is_single_moment()

    def next_after(self, moment: datetime) -> datetime | None:
        """First occurrence strictly after `moment` (aware UTC), as aware UTC, or None."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        moment = moment.astimezone(UTC)
        if moment.year > YEAR.hi + 1:  # no wall time within the cron's years lies this late
            return None
        # Each wall time maps to its first instant (fold=0), so later wall times map to later
        # instants: walking the matches from `moment`'s own wall-clock minute, the first one
        # after `moment` is the answer. Wall times of a repeated hour that `moment` is already
        # past in its second pass come first, and are passed over by the `> moment` test.
        wall = moment.astimezone(self.zone).replace(tzinfo=UTC, second=0, microsecond=0)
        match = self.cron.first_at_or_after(wall)
        while match is not None:
            instant = self._instant(match)
            if instant is not None and instant > moment:
                return instant
            match = self.cron.next_after(match)
        return None

    def _instant(self, wall: datetime) -> datetime | None:
        """The first instant at which `zone`'s clocks show `wall` (tagged UTC, read as local
        time), or None when they skip it."""
        local = wall.replace(tzinfo=self.zone, fold=0)
        instant = local.astimezone(UTC)
        shown = instant.astimezone(self.zone).replace(tzinfo=None)
        return instant if shown == local.replace(tzinfo=None) else None


def occurrence_after(expression: str, timezone: str, moment: datetime) -> datetime | None:
    """The next occurrence of a stored task's cron in its zone (see `ZonedCron.next_after`)."""
    return ZonedCron.parse(expression, timezone).next_after(moment)
