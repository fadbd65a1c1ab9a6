"""Validation and occurrence arithmetic for AWS EventBridge ``cron(...)`` expressions.

Grammar follows the EventBridge cron reference:
``cron(Minutes Hours Day-of-month Month Day-of-week Year)``.

The validator deliberately errs on the side of rejection: a form AWS might accept but
we refuse costs the caller a clear 400 now, whereas a form we accept but AWS refuses
becomes an opaque failure much later, when the schedule is actually created.

All times are UTC. Occurrences fall on whole minutes.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["CronError", "CronSchedule", "is_cron_expression", "parse_cron"]

# EventBridge's ScheduleExpression is limited to 256 characters.
_MAX_EXPRESSION_LENGTH = 256
_PREFIX = "cron("
_FIELDS_TEXT = "Minutes Hours Day-of-month Month Day-of-week Year"
_SHAPE = f"cron({_FIELDS_TEXT})"

_DIGITS = re.compile(r"[0-9]+")  # not str.isdigit(): that accepts non-ASCII digits
_NEAREST_WEEKDAY = re.compile(r"([0-9]+)W")
_LAST_WEEKDAY_OF_MONTH = re.compile(r"([0-9]+)L")
_NTH_WEEKDAY = re.compile(r"([0-9]+)#([0-9]+)")

_MONTH_NAMES = {
    name: i
    for i, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = {
    name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)
}
_SATURDAY = 7


class CronError(ValueError):
    """Invalid expression.

    ``problem`` is one human sentence fragment naming what is wrong, e.g.
    ``"minutes: 99 is outside 0-59"``.
    """

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None
    allow_step: bool = True

    @property
    def span(self) -> str:
        return f"{self.lo}-{self.hi}"


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, _DAY_NAMES, allow_step=False)
_YEAR = _Field("year", 1970, 2199)

# Extra characters each field may contain beyond digits and ", - * /".
_EXTRA_CHARS = {
    "day-of-month": "?LW",
    "day-of-week": "?L#",
}


# --- day rules ---------------------------------------------------------------------------
# Exactly one of day-of-month / day-of-week is active (the other is '?'). Each rule is a
# small tagged tuple; days are resolved per (year, month) because L, W and # depend on it.

_ANY = ("any",)


def _is_any(rule: tuple) -> bool:
    return rule[0] == "any"


@dataclass(frozen=True)
class _Spec:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    dom: tuple  # ("any",) | ("set", sorted tuple) | ("last",) | ("last_weekday",) | ("nearest", n)
    dow: tuple  # ("any",) | ("set", frozenset) | ("last_of", n) | ("nth", n, k)


def _aws_weekday(python_weekday: int) -> int:
    # Python: Monday=0..Sunday=6; AWS: Sunday=1..Saturday=7.
    return (python_weekday + 1) % 7 + 1


def _days_in(spec: _Spec, year: int, month: int) -> list[int]:
    """Sorted matching days of (year, month)."""
    first_weekday, ndays = calendar.monthrange(year, month)

    def weekday_of(day: int) -> int:
        return _aws_weekday((first_weekday + day - 1) % 7)

    if not _is_any(spec.dom):
        kind = spec.dom[0]
        if kind == "set":
            return [d for d in spec.dom[1] if d <= ndays]
        if kind == "last":
            return [ndays]
        if kind == "last_weekday":
            wd = weekday_of(ndays)
            return [ndays - 1 if wd == _SATURDAY else ndays - 2 if wd == 1 else ndays]
        # nearest weekday (Quartz semantics): never leaves the month.
        n = spec.dom[1]
        if n > ndays:
            return []
        wd = weekday_of(n)
        if wd == _SATURDAY:
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


# --- parsing -----------------------------------------------------------------------------


def _parse_number(fld: _Field, raw: str) -> int:
    if not _DIGITS.fullmatch(raw):
        raise CronError(f"{fld.name}: '{raw}' is not a number")
    if len(raw) > 6:  # avoid int() on absurdly long digit strings
        raise CronError(f"{fld.name}: {raw[:6]}... is too large")
    return int(raw)


def _parse_value(fld: _Field, raw: str, item: str) -> tuple[int, bool]:
    """Return (value, was_name)."""
    if raw == "":
        raise CronError(f"{fld.name}: missing value in '{item}'")
    if raw == "*":
        raise CronError(f"{fld.name}: '*' cannot be part of a range or list entry '{item}'")
    if fld.names is not None and raw.isascii() and raw.isalpha():
        value = fld.names.get(raw.upper())
        if value is None:
            first, last = next(iter(fld.names)), next(reversed(fld.names))
            raise CronError(
                f"{fld.name}: '{raw}' is not a number {fld.span} or name {first}-{last}"
            )
        return value, True
    value = _parse_number(fld, raw)
    if not fld.lo <= value <= fld.hi:
        raise CronError(f"{fld.name}: {value} is outside {fld.span}")
    return value, False


def _parse_step(fld: _Field, raw: str, item: str) -> int:
    if raw == "":
        raise CronError(f"{fld.name}: missing increment after '/' in '{item}'")
    step = _parse_number(fld, raw)
    if step < 1:
        raise CronError(f"{fld.name}: increment {step} must be at least 1")
    # A step wider than the field can only ever yield its start value; unclear whether AWS
    # accepts that, so refuse it.
    if step > fld.hi - fld.lo:
        raise CronError(f"{fld.name}: increment {step} is larger than {fld.hi - fld.lo}")
    return step


def _parse_item(fld: _Field, item: str, text: str, in_list: bool) -> range:
    if item == "":
        raise CronError(f"{fld.name}: empty entry in list '{text}'")
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not fld.allow_step:
            raise CronError(f"{fld.name}: '/' increments are not allowed")
        step = _parse_step(fld, step_text, item)
    if body == "*":
        if in_list:
            raise CronError(f"{fld.name}: '*' must stand alone, not in a list")
        return range(fld.lo, fld.hi + 1, step)
    start_text, dash, end_text = body.partition("-")
    lo, lo_named = _parse_value(fld, start_text, item)
    hi, hi_named = lo, lo_named
    if dash:
        hi, hi_named = _parse_value(fld, end_text, item)
        if lo_named != hi_named:
            raise CronError(f"{fld.name}: range '{body}' mixes a name and a number")
        if hi < lo:
            raise CronError(f"{fld.name}: range '{body}' is descending")
    elif slash:
        hi = fld.hi
    if slash and lo_named:
        raise CronError(f"{fld.name}: increments need numeric values, not names, in '{item}'")
    return range(lo, hi + 1, step)


def _parse_values(fld: _Field, text: str) -> frozenset[int]:
    items = text.split(",")
    values: set[int] = set()
    for item in items:
        values.update(_parse_item(fld, item, text, in_list=len(items) > 1))
    return frozenset(values)


def _check_chars(fld: _Field, text: str) -> None:
    if text == "":
        raise CronError(f"{fld.name}: value is empty")
    extra = _EXTRA_CHARS.get(fld.name, "")
    if "?" in text and "?" not in extra:
        raise CronError(f"{fld.name}: '?' is only allowed in day-of-month or day-of-week")
    for ch in text:
        if ch in "0123456789,-*/" or ch in extra:
            continue
        if fld.names is not None and ch.isascii() and ch.isalpha():
            continue
        raise CronError(f"{fld.name}: unexpected character '{ch}'")
    if "?" in text and text != "?":
        raise CronError(f"{fld.name}: '?' must stand alone")


def _parse_plain(fld: _Field, text: str) -> tuple[int, ...]:
    _check_chars(fld, text)
    return tuple(sorted(_parse_values(fld, text)))


def _parse_day_of_month(text: str) -> tuple:
    fld = _DAY_OF_MONTH
    _check_chars(fld, text)
    if text == "?":
        return _ANY
    if text == "L":
        return ("last",)
    if text == "LW":
        return ("last_weekday",)
    if "L" in text or "W" in text:
        match = _NEAREST_WEEKDAY.fullmatch(text)
        if match is None:
            raise CronError(f"{fld.name}: 'L' and 'W' must stand alone as L, LW or nW")
        day, _ = _parse_value(fld, match.group(1), text)
        return ("nearest", day)
    return ("set", tuple(sorted(_parse_values(fld, text))))


def _parse_day_of_week(text: str) -> tuple:
    fld = _DAY_OF_WEEK
    _check_chars(fld, text)
    if text == "?":
        return _ANY
    if "#" in text:
        match = _NTH_WEEKDAY.fullmatch(text)
        if match is None:
            raise CronError(f"{fld.name}: '#' must stand alone as one n#k (n 1-7, k 1-5)")
        day, _ = _parse_value(fld, match.group(1), text)
        nth = _parse_number(fld, match.group(2))
        if not 1 <= nth <= 5:
            raise CronError(f"{fld.name}: occurrence {nth} in '{text}' is outside 1-5")
        return ("nth", day, nth)
    if text == "L":
        return ("set", frozenset({_SATURDAY}))
    if "L" in text:
        match = _LAST_WEEKDAY_OF_MONTH.fullmatch(text)
        if match is None:
            raise CronError(f"{fld.name}: 'L' must stand alone as L or nL (n 1-7)")
        day, _ = _parse_value(fld, match.group(1), text)
        return ("last_of", day)
    return ("set", _parse_values(fld, text))


def _parse(text: object) -> _Spec:
    if not isinstance(text, str):
        raise CronError("expression must be a string")
    if len(text) > _MAX_EXPRESSION_LENGTH:
        raise CronError(f"expression is longer than {_MAX_EXPRESSION_LENGTH} characters")
    if text.startswith("rate("):
        raise CronError("only cron(...) expressions are supported, not rate(...)")
    if not (text.startswith(_PREFIX) and text.endswith(")") and len(text) > len(_PREFIX)):
        raise CronError(f"expression must be written as {_SHAPE}")
    inner = text[len(_PREFIX) : -1]
    if any(ch.isspace() and ch != " " for ch in inner):
        raise CronError("fields must be separated by spaces only")
    if inner != inner.strip(" "):
        raise CronError("no space allowed right after 'cron(' or right before ')'")
    fields = inner.split()
    if len(fields) != 6:
        raise CronError(f"expected 6 fields ({_FIELDS_TEXT}), got {len(fields)}")
    minute_t, hour_t, dom_t, month_t, dow_t, year_t = fields
    minutes = _parse_plain(_MINUTES, minute_t)
    hours = _parse_plain(_HOURS, hour_t)
    dom = _parse_day_of_month(dom_t)
    months = _parse_plain(_MONTH, month_t)
    dow = _parse_day_of_week(dow_t)
    years = _parse_plain(_YEAR, year_t)
    if _is_any(dom) == _is_any(dow):
        raise CronError("day-of-month and day-of-week: exactly one must be '?'")
    return _Spec(minutes, hours, months, years, dom, dow)


# --- public API --------------------------------------------------------------------------


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
    _spec: _Spec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", _parse(self.expression))

    def next_after(self, moment: datetime) -> datetime | None:
        """First occurrence strictly after ``moment`` (aware UTC), or None if none exists."""
        moment = _as_utc(moment)
        if moment.year > _YEAR.hi:  # also keeps the +1 minute below from overflowing
            return None
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return next(self._iter_from(start), None)

    def first_at_or_after(self, moment: datetime) -> datetime | None:
        """First occurrence at or after ``moment``, rounded up to a whole minute first."""
        moment = _as_utc(moment)
        if moment.year > _YEAR.hi:
            return None
        start = moment.replace(second=0, microsecond=0)
        if start != moment:
            start += timedelta(minutes=1)
        return next(self._iter_from(start), None)

    def occurrences_after(self, moment: datetime, limit: int) -> list[datetime]:
        """Up to ``limit`` occurrences strictly after ``moment``, ascending."""
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError("limit must be an int")
        if limit < 0:
            raise ValueError("limit must not be negative")
        moment = _as_utc(moment)
        if limit == 0 or moment.year > _YEAR.hi:
            return []
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        result: list[datetime] = []
        for occurrence in self._iter_from(start):
            result.append(occurrence)
            if len(result) == limit:
                break
        return result

    def is_single_moment(self) -> bool:
        """True when the expression can match at most one moment ever."""
        spec = self._spec
        if any(len(s) != 1 for s in (spec.minutes, spec.hours, spec.months, spec.years)):
            return False
        if not _is_any(spec.dom):
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


def is_cron_expression(text: str) -> bool:
    """Cheap routing check: does ``text`` claim to be a cron(...) expression?"""
    return isinstance(text, str) and text.startswith(_PREFIX)


def parse_cron(text: str) -> CronSchedule:
    """Validate ``text`` as an EventBridge cron expression; raises CronError."""
    return CronSchedule(text)
