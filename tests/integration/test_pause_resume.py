"""`POST /tasks/{task_id}/pause` and `/resume` through the handlers under moto, on both trigger
backends (contract section 3): pausing removes the rule or schedule and an execute event finds
nothing to run (a queued message stays, and its claim is refused); resuming arms the next
occurrence after now and stores its trigger kind; repeats answer the same; a one-shot, cancelled
or unknown task is a 409 or 404; a paused task can be cancelled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from task_scheduler.model import TaskStatus
from task_scheduler.storage import TaskStore
from task_scheduler.timing import format_utc
from task_scheduler.zoned_cron import occurrence_after
from tests.integration.conftest import (
    TABLE_NAME,
    Aws,
    Handlers,
    body_of,
    on_both_backends,
)
from tests.integration.test_list_tasks import list_tasks
from tests.support.receiver import Receiver

pytestmark = on_both_backends


def _schedule(handlers: Handlers, receiver: Receiver, run_at: str, **extra: str) -> str:
    body = {"action": "webhook", "payload": {"url": f"{receiver.url}/hook"}, "run_at": run_at}
    response = handlers.api("POST", "/schedule-task", {**body, **extra})
    assert response["statusCode"] == 201, response["body"]
    return body_of(response)["task_id"]


def _route(handlers: Handlers, task_id: str, action: str) -> dict:
    return handlers.api("POST", f"/tasks/{task_id}/{action}")


def _daily_hours_away(zone: str, hours: int = 6) -> str:
    """A daily cron, read in `zone`, whose next occurrence is hours away (a rule or schedule,
    beyond the queue's reach)."""
    local = datetime.now(ZoneInfo(zone)) + timedelta(hours=hours)
    return f"cron({local.minute} {local.hour} * * ? *)"


def _every_minute(handlers: Handlers, receiver: Receiver) -> str:
    """A task whose next occurrence, within a minute, is a queued message."""
    return _schedule(handlers, receiver, "cron(* * * * ? *)")


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_pause_then_resume_a_recurring_task(
    aws: Aws, handlers: Handlers, receiver: Receiver, trigger_backend: str, zone: str
) -> None:
    cron = _daily_hours_away(zone)
    task_id = _schedule(handlers, receiver, cron, timezone=zone)
    assert len(aws.triggers()) == 1
    far_kind = aws.item(task_id)["trigger"]["S"]
    assert far_kind == {"rules": "rule", "scheduler": "schedule"}[trigger_backend]

    paused = _route(handlers, task_id, "pause")

    assert paused["statusCode"] == 200, paused["body"]
    assert body_of(paused) == {"task_id": task_id, "status": "paused"}
    assert aws.triggers() == []
    view = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert (view["status"], view["next_run_at"]) == ("paused", None)
    assert "due_shard" not in aws.item(task_id)  # the reconciler leaves it alone
    # An event already on its way runs nothing, and cannot claim the occurrence.
    assert handlers.run(task_id)["outcome"] == "not_scheduled"
    store = TaskStore(aws.dynamodb, TABLE_NAME)
    stored = store.get(task_id)
    claim = store.claim(task_id, stored.next_run_at, datetime.now(UTC))
    assert claim.claimed is None
    assert claim.current.status is TaskStatus.PAUSED
    assert receiver.requests == []
    listed = body_of(list_tasks(handlers, status="paused"))["tasks"]
    assert [task["task_id"] for task in listed] == [task_id]
    assert body_of(_route(handlers, task_id, "pause")) == body_of(paused)

    before = datetime.now(UTC)
    resumed = _route(handlers, task_id, "resume")

    assert resumed["statusCode"] == 200, resumed["body"]
    body = body_of(resumed)
    expected = {
        format_utc(occurrence_after(cron, zone, moment)) for moment in (before, datetime.now(UTC))
    }
    assert body["status"] == "scheduled"
    assert body["next_run_at"] in expected
    assert len(aws.triggers()) == 1
    view = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert (view["status"], view["next_run_at"]) == ("scheduled", body["next_run_at"])
    item = aws.item(task_id)
    assert "due_shard" in item
    assert item["trigger"]["S"] == far_kind
    again = _route(handlers, task_id, "resume")
    assert (again["statusCode"], body_of(again)) == (200, body)
    assert len(aws.triggers()) == 1


def test_a_near_occurrence_stays_queued_while_paused_and_resume_queues_the_next(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _every_minute(handlers, receiver)
    assert aws.item(task_id)["trigger"]["S"] == "queue"
    queued = [m["body"] for m in aws.queue_messages(aws.retry_queue_url)]
    assert [m["task_id"] for m in queued] == [task_id]

    assert _route(handlers, task_id, "pause")["statusCode"] == 200

    # A queued message cannot be taken back: it stays, and its claim is refused.
    assert [m["body"] for m in aws.queue_messages(aws.retry_queue_url)] == queued
    claim = TaskStore(aws.dynamodb, TABLE_NAME).claim(task_id, queued[0]["due"], datetime.now(UTC))
    assert (claim.claimed, claim.current.status) == (None, TaskStatus.PAUSED)

    resumed = body_of(_route(handlers, task_id, "resume"))

    assert aws.item(task_id)["trigger"]["S"] == "queue"
    assert aws.triggers() == []
    dues = [m["body"]["due"] for m in aws.queue_messages(aws.retry_queue_url)]
    assert dues[-1] == resumed["next_run_at"]
    assert receiver.requests == []


def test_a_paused_task_can_be_cancelled_and_then_neither_paused_nor_resumed(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, _daily_hours_away("UTC"))
    assert _route(handlers, task_id, "pause")["statusCode"] == 200

    cancelled = handlers.api("DELETE", f"/tasks/{task_id}")

    assert (cancelled["statusCode"], body_of(cancelled)["status"]) == (200, "cancelled")
    assert aws.triggers() == []
    for action in ("pause", "resume"):
        response = _route(handlers, task_id, action)
        assert response["statusCode"] == 409, response["body"]
        assert body_of(response) == {
            "message": f"Task {task_id} cannot be {action}d: it is cancelled."
        }


def test_a_one_shot_task_can_be_neither_paused_nor_resumed(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, "2099-01-01T00:00:00Z")
    for action in ("pause", "resume"):
        response = _route(handlers, task_id, action)
        assert response["statusCode"] == 409, response["body"]
        assert "only recurring (cron) tasks" in body_of(response)["message"]
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "scheduled"
    assert len(aws.triggers()) == 1


def test_an_unknown_task_is_a_404(aws: Aws, handlers: Handlers) -> None:
    unknown = str(uuid.uuid4())
    for action in ("pause", "resume"):
        response = _route(handlers, unknown, action)
        assert response["statusCode"] == 404, response["body"]
        assert body_of(response) == {"message": f"Task {unknown} was not found."}
