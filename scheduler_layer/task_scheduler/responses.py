"""What the API answers on success (contract sections 1 and 3), in one place beside `http_errors`,
which shapes the failures."""

from __future__ import annotations

from typing import Any

from task_scheduler.model import Task, TaskStatus
from task_scheduler.task_listing import TaskPage, TaskSummary


def scheduled_answer(task: Task) -> dict[str, Any]:
    """The `201` body of `POST /schedule-task`: four exact fields, `next_run_at` and `timezone`
    for cron."""
    answer = {
        "message": "Task scheduled successfully",
        "task_id": task.task_id,
        "status": task.status.value,
        "run_at": task.run_at,
    }
    if task.is_cron:
        answer["next_run_at"] = task.next_run_at
        answer["timezone"] = task.timezone
    return answer


def cancelled_answer(task: Task) -> dict[str, Any]:
    """The `200` body of `DELETE /tasks/{task_id}`, the first time and every time after."""
    return {"task_id": task.task_id, "status": task.status.value}


def paused_answer(task: Task) -> dict[str, Any]:
    """The `200` body of `POST /tasks/{task_id}/pause`, the first time and every time after."""
    return {"task_id": task.task_id, "status": task.status.value}


def resumed_answer(task: Task) -> dict[str, Any]:
    """The `200` body of `POST /tasks/{task_id}/resume`."""
    return {"task_id": task.task_id, "status": task.status.value, "next_run_at": task.next_run_at}


def task_view(task: Task) -> dict[str, Any]:
    """The representation `GET /tasks/{task_id}` returns."""
    out: dict[str, Any] = {
        "task_id": task.task_id,
        "action": task.action,
        "payload": task.payload,
        "run_at": task.run_at,
        "status": task.status.value,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }
    if task.is_cron:
        # A paused task has no next run until it is resumed.
        paused = task.status is TaskStatus.PAUSED
        out["next_run_at"] = None if paused else task.next_run_at
        out["timezone"] = task.timezone
        out["recurring"] = task.recurring
        out["runs"] = task.runs
    out["retry"] = {"max_attempts": task.max_attempts}
    out["attempts"] = [attempt.as_dict() for attempt in task.attempts]
    if task.last_error is not None:
        out["last_error"] = task.last_error
    return out


def listed_tasks(page: TaskPage) -> dict[str, Any]:
    """The `200` body of `GET /tasks`."""
    return {"tasks": [_summary(task) for task in page.tasks], "next_token": page.next_token}


def _summary(task: TaskSummary) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task_id": task.task_id,
        "action": task.action,
        "status": task.status.value,
        "run_at": task.run_at,
    }
    if task.next_run_at is not None:
        out["next_run_at"] = task.next_run_at
    if task.timezone is not None:
        out["timezone"] = task.timezone
    out["created_at"] = task.created_at
    out["updated_at"] = task.updated_at
    return out
