"""The event the execute function receives for an occurrence, whatever sends it (a rule, a
schedule, or a message of the queue): `{"task_id": "<id>", "due": "<UTC time>"}`. Carrying `due`
lets the execute function hop an early event on to its second without reading the task, and
claim exactly that occurrence (a stale event's claim finds another one and does nothing)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from task_scheduler.timing import format_utc, parse_stored_utc


@dataclass(frozen=True)
class ExecuteEvent:
    task_id: str
    due: datetime | None  # None: an event from an older version or written by hand (events/)

    def as_json(self) -> str:
        body: dict[str, str] = {"task_id": self.task_id}
        if self.due is not None:
            body["due"] = format_utc(self.due)
        return json.dumps(body)


def execute_input(task_id: str, due: datetime) -> str:
    """The input of a rule, schedule or queue message for the occurrence `due` of a task."""
    return ExecuteEvent(task_id, due).as_json()


def parse_execute_event(event: Any) -> ExecuteEvent | None:
    """The event as sent, or None when it names no task. A `due` that does not parse is
    ignored: the task's own next occurrence is read instead."""
    if not isinstance(event, dict):
        return None
    task_id = event.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        return None
    due = event.get("due")
    try:
        return ExecuteEvent(task_id, parse_stored_utc(due) if isinstance(due, str) else None)
    except ValueError:
        return ExecuteEvent(task_id, None)
