"""Listing a cron schedule's occurrences, for tests that check several in a row."""

from __future__ import annotations

from datetime import datetime

from task_scheduler.cron import CronSchedule


def occurrences_after(schedule: CronSchedule, moment: datetime, limit: int) -> list[datetime]:
    """Up to `limit` occurrences strictly after `moment`, ascending (repeated `next_after`)."""
    found: list[datetime] = []
    while len(found) < limit:
        following = schedule.next_after(found[-1] if found else moment)
        if following is None:
            break
        found.append(following)
    return found
