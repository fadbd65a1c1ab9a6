"""The grammar of AWS EventBridge ``cron(...)`` expressions: text to a validated `CronSpec`.

Grammar follows the EventBridge cron reference:
``cron(Minutes Hours Day-of-month Month Day-of-week Year)``.

The validator deliberately errs on the side of rejection: a form AWS might accept but
we refuse costs the caller a clear 400 now, whereas a form we accept but AWS refuses
becomes an opaque failure much later, when the schedule is actually created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from task_scheduler.errors import quote

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
SATURDAY = 7


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
YEAR = _Field("year", 1970, 2199)

# Extra characters each field may contain beyond digits and ", - * /".
_EXTRA_CHARS = {
    "day-of-month": "?LW",
    "day-of-week": "?L#",
}


# --- day rules ---------------------------------------------------------------------------
# Exactly one of day-of-month / day-of-week is active (the other is '?'). Each rule is a
# small tagged tuple; days are resolved per (year, month) because L, W and # depend on it.

_ANY = ("any",)


def is_any(rule: tuple) -> bool:
    return rule[0] == "any"


@dataclass(frozen=True)
class CronSpec:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    dom: tuple  # ("any",) | ("set", sorted tuple) | ("last",) | ("last_weekday",) | ("nearest", n)
    dow: tuple  # ("any",) | ("set", frozenset) | ("last_of", n) | ("nth", n, k)


# --- parsing -----------------------------------------------------------------------------


def _parse_number(fld: _Field, raw: str) -> int:
    if not _DIGITS.fullmatch(raw):
        raise CronError(f"{fld.name}: '{quote(raw)}' is not a number")
    if len(raw) > 6:  # avoid int() on absurdly long digit strings
        raise CronError(f"{fld.name}: {raw[:6]}... is too large")
    return int(raw)


def _parse_value(fld: _Field, raw: str, item: str) -> tuple[int, bool]:
    """Return (value, was_name)."""
    if raw == "":
        raise CronError(f"{fld.name}: missing value in '{quote(item)}'")
    if raw == "*":
        raise CronError(f"{fld.name}: '*' cannot be part of a range or list entry '{quote(item)}'")
    if fld.names is not None and raw.isascii() and raw.isalpha():
        value = fld.names.get(raw.upper())
        if value is None:
            first, last = next(iter(fld.names)), next(reversed(fld.names))
            raise CronError(
                f"{fld.name}: '{quote(raw)}' is not a number {fld.span} or name {first}-{last}"
            )
        return value, True
    value = _parse_number(fld, raw)
    if not fld.lo <= value <= fld.hi:
        raise CronError(f"{fld.name}: {value} is outside {fld.span}")
    return value, False


def _parse_step(fld: _Field, raw: str, item: str) -> int:
    if raw == "":
        raise CronError(f"{fld.name}: missing increment after '/' in '{quote(item)}'")
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
        raise CronError(f"{fld.name}: empty entry in list '{quote(text)}'")
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
            raise CronError(f"{fld.name}: range '{quote(body)}' mixes a name and a number")
        if hi < lo:
            raise CronError(f"{fld.name}: range '{quote(body)}' is descending")
    elif slash:
        hi = fld.hi
    if slash and lo_named:
        raise CronError(
            f"{fld.name}: increments need numeric values, not names, in '{quote(item)}'"
        )
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
        raise CronError(f"{fld.name}: unexpected character '{quote(ch)}'")
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
            raise CronError(f"{fld.name}: occurrence {nth} in '{quote(text)}' is outside 1-5")
        return ("nth", day, nth)
    if text == "L":
        return ("set", frozenset({SATURDAY}))
    if "L" in text:
        match = _LAST_WEEKDAY_OF_MONTH.fullmatch(text)
        if match is None:
            raise CronError(f"{fld.name}: 'L' must stand alone as L or nL (n 1-7)")
        day, _ = _parse_value(fld, match.group(1), text)
        return ("last_of", day)
    return ("set", _parse_values(fld, text))


def parse_spec(text: object) -> CronSpec:
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
    years = _parse_plain(YEAR, year_t)
    if is_any(dom) == is_any(dow):
        raise CronError("day-of-month and day-of-week: exactly one must be '?'")
    return CronSpec(minutes, hours, months, years, dom, dow)
