"""Choosing run times for tests that run against the real clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from task_scheduler.timing import QUEUE_HORIZON, ceil_to_second, format_utc


def seconds_from_now(seconds: float) -> str:
    """A run_at at least `seconds` away. Rounded up: the API's times have whole seconds, and
    rounding down could put `seconds_from_now(1)` in the past by the time the request lands."""
    return format_utc(ceil_to_second(datetime.now(UTC) + timedelta(seconds=seconds)))


def beyond_the_queue(now: datetime | None = None) -> datetime:
    """A whole minute far enough away that its task gets a rule or schedule, not a queued
    message (more than the queue's 15 minutes, with slack for the request's own time)."""
    now = now or datetime.now(UTC)
    return (now + QUEUE_HORIZON + timedelta(minutes=2)).replace(second=0, microsecond=0)
