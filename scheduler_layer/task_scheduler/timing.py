"""The time rules, in one place: parsing `run_at`, the UTC format, and when a trigger must fire.

How an occurrence starts within a second of its time (contract section 4), with no Lambda
sleeping more than a second: EventBridge fires a rule or an `at()` schedule at some second of its
minute, so neither can carry the last seconds.
- An occurrence at most `QUEUE_HORIZON` away goes straight into the SQS queue as a message delayed
  to its due second (SQS delays are whole seconds, up to 15 minutes).
- A later one gets a rule or schedule for the minute `TRIGGER_LEAD` before its own minute: it
  fires 1 to 2 minutes early, and the execute function sends the remaining seconds on as a
  delayed message (the "hop").
- A message lands at most a second early (its delay is rounded down); the execute function waits
  out that second, so no task ever starts before its time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

from dateutil.parser import isoparse

from task_scheduler.cron import CronError, parse_cron
from task_scheduler.errors import FieldProblem, InvalidRequest, quote
from task_scheduler.zoned_cron import DEFAULT_TIMEZONE, UnknownZone, ZonedCron, zone_named

MAX_YEAR = 2199
# SQS delays a message at most 15 minutes: nearer occurrences need no rule or schedule.
QUEUE_HORIZON = timedelta(minutes=15)
# A rule or schedule fires in the minute this much before its occurrence's minute.
TRIGGER_LEAD = timedelta(minutes=2)
# The longest an execute invocation waits in place for its occurrence (otherwise it hops).
MAX_IN_PLACE_WAIT = timedelta(seconds=1)

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Schedule:
    """When a task runs: once at a time, or on a cron expression read in a time zone."""

    run_at: str  # what the client is answered: the normalised UTC time, or the cron as given
    first_run_at: datetime  # first occurrence, aware UTC, whole seconds
    cron: ZonedCron | None = None

    @property
    def recurring(self) -> bool:
        return self.cron is not None and not self.cron.is_single_moment()

    @property
    def timezone(self) -> str:
        """The zone the cron is read in (an ISO time carries its own offset: UTC once parsed)."""
        return self.cron.timezone if self.cron else DEFAULT_TIMEZONE


def format_utc(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, the one format the API and the table use for times."""
    return _as_utc(moment).strftime(_FORMAT)


def parse_stored_utc(text: str) -> datetime:
    """Reads back a time written by `format_utc`."""
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the scheduler only handles aware UTC times")
    return moment.astimezone(UTC)


def _problem(text: str) -> InvalidRequest:
    return InvalidRequest([FieldProblem("run_at", text)])


def _zone_problem(text: str) -> InvalidRequest:
    return InvalidRequest([FieldProblem("timezone", text)])


def parse_timezone(value: object) -> ZoneInfo | None:
    """`timezone` as the contract defines it: None when absent, else the IANA zone it names, or
    InvalidRequest naming `timezone`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _zone_problem('must be a string: an IANA time zone name like "Europe/Paris"')
    try:
        return zone_named(value)
    except UnknownZone:
        raise _zone_problem(
            f"'{quote(value)}' is not an IANA time zone name (spelt exactly, like "
            '"Europe/Paris" or "America/New_York")'
        ) from None


def parse_run_at(value: object, now: datetime, zone: ZoneInfo | None = None) -> Schedule:
    """Validates `run_at` as the contract defines it, raising InvalidRequest naming `run_at`.
    `zone`: the request's `timezone` (None when it has none), which only a cron may have."""
    if value is None:
        raise _problem("is required")
    if not isinstance(value, str):
        raise _problem(
            "must be a string: an ISO 8601 time with an offset or a cron(...) expression"
        )
    text = value.strip()
    if not text:
        raise _problem("is required")
    now = _as_utc(now)
    if "(" in text:
        return _parse_cron_run_at(text, now, zone or zone_named(DEFAULT_TIMEZONE))
    if zone is None:
        return _parse_iso_run_at(text, now)
    problems = _zone_problem(
        "applies only to a cron(...) run_at: an ISO 8601 time has its own offset"
    ).problems
    try:
        _parse_iso_run_at(text, now)
    except InvalidRequest as error:  # the time may be wrong too: name every problem
        problems = [*error.problems, *problems]
    raise InvalidRequest(problems)


def _parse_cron_run_at(text: str, now: datetime, zone: ZoneInfo) -> Schedule:
    try:
        cron = ZonedCron(parse_cron(text), zone)
    except CronError as error:
        raise _problem(f"is not a valid EventBridge cron expression: {error.problem}") from None
    first = cron.next_after(now)
    if first is None:
        raise _problem("is a cron expression with no future occurrence")
    return Schedule(run_at=text, first_run_at=first, cron=cron)


def _parse_iso_run_at(text: str, now: datetime) -> Schedule:
    try:
        parsed = isoparse(text)
    except (ValueError, OverflowError):
        raise _problem(
            "is not a valid time: use ISO 8601 with an offset, e.g. 2030-05-19T17:56:00Z, "
            "or a cron(...) expression"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _problem(
            f"has no UTC offset: add Z for UTC, e.g. {quote(text)}Z, or an offset like +02:00"
        )
    if parsed.year > MAX_YEAR:
        raise _problem(f"must not be later than the year {MAX_YEAR}")
    try:
        moment = ceil_to_second(parsed)  # never down: a task must not run before its time
    except OverflowError:  # before the year 1 once shifted to UTC
        raise _problem(f"must be in the future (now is {format_utc(now)})") from None
    if moment.year > MAX_YEAR:
        raise _problem(f"must not be later than the year {MAX_YEAR}")
    if moment <= now:
        raise _problem(
            f"must be in the future (it is {format_utc(moment)}, now is {format_utc(now)})"
        )
    return Schedule(run_at=format_utc(moment), first_run_at=moment)


def ceil_to_second(moment: datetime) -> datetime:
    """Rounded up to a whole second (stored times have seconds; rounding down could run early)."""
    moment = _as_utc(moment)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def minute_start(moment: datetime) -> datetime:
    return _as_utc(moment).replace(second=0, microsecond=0)


def one_shot_rule_expression(moment: datetime) -> str:
    """The EventBridge cron that matches only the minute of `moment`."""
    at = _as_utc(moment)
    return f"cron({at.minute} {at.hour} {at.day} {at.month} ? {at.year})"


def trigger_minute(due: datetime) -> datetime:
    """The minute a rule or schedule is armed for, to fire before `due` whatever its second."""
    return minute_start(due) - TRIGGER_LEAD


def within_queue_horizon(due: datetime, now: datetime) -> bool:
    """True when the occurrence goes straight into the queue (module doc)."""
    return _as_utc(due) - _as_utc(now) <= QUEUE_HORIZON


def queue_delay_seconds(due: datetime, now: datetime) -> int:
    """The SQS delay that lands a message at most a second before `due`: rounded down, and
    capped at the queue's 15 minutes (a longer wait is sent on again when it lands)."""
    remaining = (_as_utc(due) - _as_utc(now)).total_seconds()
    return int(min(QUEUE_HORIZON.total_seconds(), max(0.0, math.floor(remaining))))


# Retries: exponential backoff with full jitter (a random wait up to the exponential bound).
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 900.0
# A receiver's Retry-After is honoured up to this long; beyond it the retry comes sooner.
MAX_RETRY_AFTER_SECONDS = 6 * 3600.0


def retry_delay(failed_attempts: int, retry_after: float | None, rng: Random) -> float:
    """Seconds to wait before the next attempt, after `failed_attempts` (≥ 1) failures."""
    bound = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (failed_attempts - 1))
    delay = rng.uniform(0, bound)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def seconds_until(moment: datetime, now: datetime) -> float:
    """How long to wait before `moment` (0 when it has passed), rounded up to the millisecond."""
    remaining = (_as_utc(moment) - _as_utc(now)).total_seconds()
    return max(0.0, math.ceil(remaining * 1000) / 1000)
