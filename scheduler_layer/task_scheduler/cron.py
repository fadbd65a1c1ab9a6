"""Occurrences of AWS EventBridge ``cron(...)`` expressions (the grammar is `cron_grammar`).

All times are UTC. Occurrences fall on whole minutes.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from task_scheduler.cron_grammar import SATURDAY, YEAR, CronError, CronSpec, is_any, parse_spec

__all__ = ["CronError", "CronSchedule", "parse_cron"]


def _aws_weekday(python_weekday: int) -> int:
    # Python: Monday=0..Sunday=6; AWS: Sunday=1..Saturday=7.
    return (python_weekday + 1) % 7 + 1


def _days_in(spec: CronSpec, year: int, month: int) -> list[int]:
    """Sorted matching days of (year, month)."""
    first_weekday, ndays = calendar.monthrange(year, month)

    def weekday_of(day: int) -> int:
        return _aws_weekday((first_weekday + day - 1) % 7)

    if not is_any(spec.dom):
        kind = spec.dom[0]
        if kind == "set":
            return [d for d in spec.dom[1] if d <= ndays]
        if kind == "last":
            return [ndays]
        if kind == "last_weekday":
            wd = weekday_of(ndays)
            return [ndays - 1 if wd == SATURDAY else ndays - 2 if wd == 1 else ndays]
        # nearest weekday (Quartz semantics): never leaves the month.
        n = spec.dom[1]
        if n > ndays:
            return []
        wd = weekday_of(n)
        if wd == SATURDAY:
            return [n + 2 if n == 1 else n - 1]
        if wd == 1:
            return [n - 2 if n == ndays else n + 1]
        return [n]

    kind = spec.dow[0]
    if kind == "set":
        return [d for d in range(1, ndays + 1) if weekday_of(d) in spec.dow[1]]
    if kind == "last_of":
        last = ndays - (weekday_of(ndays) - spec.dow[1]) % 7
        return [last]
    _, n, k = spec.dow
    first = 1 + (n - weekday_of(1)) % 7
    day = first + 7 * (k - 1)
    return [day] if day <= ndays else []


def _as_utc(moment: object) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime, got {type(moment).__name__}")
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    if offset != timedelta(0):
        raise ValueError(f"datetime must be in UTC, got offset {offset}")
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CronSchedule:
    """A validated EventBridge cron expression. Construction parses and may raise CronError."""

    expression: str
    _spec: CronSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", parse_spec(self.expression))

    def next_after(self, moment: datetime) -> datetime | None:
        """First occurrence strictly after ``moment`` (aware UTC), or None if none exists."""
        return self._first_from(_as_utc(moment).replace(second=0, microsecond=0), 1)

    def first_at_or_after(self, moment: datetime) -> datetime | None:
        """First occurrence at or after ``moment``, rounded up to a whole minute first."""
        moment = _as_utc(moment)
        start = moment.replace(second=0, microsecond=0)
        return self._first_from(start, 0 if start == moment else 1)

    def _first_from(self, minute: datetime, minutes_later: int) -> datetime | None:
        if minute.year > YEAR.hi:  # also keeps the added minute from overflowing
            return None
        return next(self._iter_from(minute + timedelta(minutes=minutes_later)), None)

    def is_single_moment(self) -> bool:
        """True when the expression can match at most one moment ever."""
        spec = self._spec
        if any(len(s) != 1 for s in (spec.minutes, spec.hours, spec.months, spec.years)):
            return False
        if not is_any(spec.dom):
            # L, LW and nW resolve to one date once month and year are fixed.
            return spec.dom[0] != "set" or len(spec.dom[1]) == 1
        # A plain weekday recurs 4-5 times a month; only nL and n#k pin one date.
        return spec.dow[0] in ("last_of", "nth")

    def _iter_from(self, start: datetime) -> Iterator[datetime]:
        """Occurrences >= start (whole-minute UTC), ascending.

        Walks year -> month -> day -> hour -> minute over the precomputed sets, so
        impossible dates (e.g. 30 February) cost one calendar lookup per month
        rather than a scan over every minute.
        """
        spec = self._spec
        years = spec.years[bisect_left(spec.years, start.year) :]
        for year in years:
            same_year = year == start.year
            months = (
                spec.months[bisect_left(spec.months, start.month) :] if same_year else spec.months
            )
            for month in months:
                same_month = same_year and month == start.month
                for day in _days_in(spec, year, month):
                    if same_month and day < start.day:
                        continue
                    same_day = same_month and day == start.day
                    hours = (
                        spec.hours[bisect_left(spec.hours, start.hour) :]
                        if same_day
                        else spec.hours
                    )
                    for hour in hours:
                        same_hour = same_day and hour == start.hour
                        minutes = spec.minutes
                        if same_hour:
                            minutes = minutes[bisect_left(minutes, start.minute) :]
                        for minute in minutes:
                            yield datetime(year, month, day, hour, minute, tzinfo=UTC)


def parse_cron(text: str) -> CronSchedule:
    """Validate ``text`` as an EventBridge cron expression; raises CronError."""
    return CronSchedule(text)
