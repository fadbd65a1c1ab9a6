"""Choosing run times for tests that run against the real clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from task_scheduler.timing import (
    MAX_EARLY_ARRIVAL,
    RULE_LEAD_SECONDS,
    ceil_to_second,
    format_utc,
)


def seconds_from_now(seconds: float) -> str:
    """A run_at at least `seconds` away. Rounded up: the API's times have whole seconds, and
    rounding down could put `seconds_from_now(1)` in the past by the time the request lands."""
    return format_utc(ceil_to_second(datetime.now(UTC) + timedelta(seconds=seconds)))


def earliest_rule_minute(now: datetime | None = None) -> datetime:
    """The first whole minute for which a one-shot rule (not a direct dispatch) is armed."""
    now = now or datetime.now(UTC)
    # +2 s of slack for the time between this call and the request reaching the handler.
    earliest = now + timedelta(seconds=RULE_LEAD_SECONDS + 2)
    start = earliest.replace(second=0, microsecond=0)
    return start if start >= earliest else start + timedelta(minutes=1)


def wait_until_its_rule_could_fire(run_at: datetime) -> None:
    """Blocks until an execute event for `run_at` is no longer "long before" it. Tests invoke a
    rule's target as soon as the rule exists, while EventBridge fires it only within run_at's
    minute; `earliest_rule_minute` may be up to 72 s away, past what the handler accepts early
    (MAX_EARLY_ARRIVAL, 70 s), so the invocation waits until it is 2 s inside that window."""
    earliest = run_at - MAX_EARLY_ARRIVAL + timedelta(seconds=2)
    while (remaining := (earliest - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(remaining, 0.5))
