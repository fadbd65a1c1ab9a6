"""Choosing run times for tests that run against the real clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from task_scheduler.timing import RULE_LEAD_SECONDS, format_utc


def seconds_from_now(seconds: float) -> str:
    return format_utc(datetime.now(UTC) + timedelta(seconds=seconds))


def earliest_rule_minute(now: datetime | None = None) -> datetime:
    """The first whole minute for which a one-shot rule (not a direct dispatch) is armed."""
    now = now or datetime.now(UTC)
    # +2 s of slack for the time between this call and the request reaching the handler.
    earliest = now + timedelta(seconds=RULE_LEAD_SECONDS + 2)
    start = earliest.replace(second=0, microsecond=0)
    return start if start >= earliest else start + timedelta(minutes=1)
