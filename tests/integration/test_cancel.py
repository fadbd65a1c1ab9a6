"""`DELETE /tasks/{task_id}` through the handlers under moto, on both trigger backends (contract
section 3): a scheduled task is cancelled and its trigger removed; a trigger already on its way
finds it cancelled and runs nothing; repeating answers the same; a running or finished task is a
409, an unknown one a 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler.storage import TaskStore
from tests.integration.conftest import TABLE_NAME, Aws, Handlers, body_of, on_both_backends
from tests.support.lambda_runtime import ROOT, load_handler_module
from tests.support.receiver import Receiver
from tests.support.timing import seconds_from_now

pytestmark = on_both_backends

FAR = "2099-05-19T17:56:00Z"


def _schedule(handlers: Handlers, receiver: Receiver, run_at: str) -> str:
    body = {
        "action": "webhook",
        "payload": {"url": f"{receiver.url}/hooks/report"},
        "run_at": run_at,
    }
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 201, response["body"]
    return body_of(response)["task_id"]


def _cancel(handlers: Handlers, task_id: str) -> dict:
    return handlers.api("DELETE", f"/tasks/{task_id}")


def test_cancel_removes_the_trigger_and_repeating_answers_the_same(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, FAR)
    assert len(aws.triggers()) == 1

    response = _cancel(handlers, task_id)

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response) == {"task_id": task_id, "status": "cancelled"}
    assert aws.triggers() == []
    task = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert task["status"] == "cancelled"
    # Out of the reconciler's index, and expiring like any finished task (30 days by default).
    item = aws.item(task_id)
    assert "next_run_at" not in item
    assert "due_shard" not in item
    expires = datetime.fromtimestamp(int(item["expires_at"]["N"]), UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)

    again = _cancel(handlers, task_id)
    assert (again["statusCode"], body_of(again)) == (
        200,
        {"task_id": task_id, "status": "cancelled"},
    )
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["updated_at"] == task["updated_at"]


def test_an_execute_event_arriving_after_the_cancel_runs_nothing(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    # Due in a second: its trigger (a direct dispatch) is already on its way when it is cancelled.
    task_id = _schedule(handlers, receiver, seconds_from_now(1))
    assert _cancel(handlers, task_id)["statusCode"] == 200

    assert handlers.run(task_id)["outcome"] == "not_scheduled"
    assert receiver.requests == []
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "cancelled"
    assert aws.triggers() == []


def test_cancel_of_a_task_claimed_first_is_a_409(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, FAR)
    # The execute function claimed it just before the cancel arrived.
    assert TaskStore(aws.dynamodb, TABLE_NAME).claim(task_id, FAR, datetime.now(UTC))

    response = _cancel(handlers, task_id)

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response) == {"message": f"Task {task_id} cannot be cancelled: it is running."}
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "running"


def test_cancel_of_a_completed_task_is_a_409(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, seconds_from_now(1))
    assert handlers.run(task_id)["outcome"] == "completed"

    response = _cancel(handlers, task_id)

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response) == {"message": f"Task {task_id} cannot be cancelled: it has finished."}
    assert body_of(handlers.api("GET", f"/tasks/{task_id}"))["status"] == "completed"
    assert len(receiver.requests) == 1


def test_cancel_of_an_unknown_task_is_a_404(aws: Aws, handlers: Handlers) -> None:
    unknown = str(uuid.uuid4())
    response = _cancel(handlers, unknown)
    assert response["statusCode"] == 404, response["body"]
    assert body_of(response) == {"message": f"Task {unknown} was not found."}
    assert aws.table_is_empty()


def test_a_cancelled_task_expires_after_the_stacks_retention(
    aws: Aws, function_env: None, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("FINISHED_TASK_RETENTION_DAYS", "7")
    handlers = Handlers(  # loaded now, so they read the retention above
        schedule=load_handler_module(ROOT / "schedule_task"),
        execute=load_handler_module(ROOT / "execute_task"),
        aws=aws,
    )
    task_id = _schedule(handlers, receiver, FAR)
    assert _cancel(handlers, task_id)["statusCode"] == 200
    expires = datetime.fromtimestamp(int(aws.item(task_id)["expires_at"]["N"]), UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
