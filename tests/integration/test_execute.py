"""The execute handler under moto, delivering to a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler import USER_AGENT
from task_scheduler.timing import format_utc, parse_stored_utc
from tests.integration.conftest import RULE_PREFIX, Aws, Handlers, body_of, context
from tests.support.lambda_runtime import ROOT
from tests.support.receiver import Answer, Receiver
from tests.support.timing import beyond_the_queue, seconds_from_now


def _schedule(
    handlers: Handlers,
    receiver: Receiver,
    run_at: str,
    max_attempts: int | None = None,
    **payload: object,
) -> str:
    body: dict = {
        "action": "webhook",
        "payload": {"url": f"{receiver.url}/hooks/report", "data": {"msg": "hi"}, **payload},
        "run_at": run_at,
    }
    if max_attempts is not None:
        body["retry"] = {"max_attempts": max_attempts}
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 201, response["body"]
    return body_of(response)["task_id"]


def _task(handlers: Handlers, task_id: str) -> dict:
    return body_of(handlers.api("GET", f"/tasks/{task_id}"))


def test_near_task_is_queued_to_its_second_and_never_runs_early(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    run_at = seconds_from_now(2)
    task_id = _schedule(
        handlers,
        receiver,
        run_at,
        method="PUT",
        headers={"X-Tenant": "acme", "Authorization": "Bearer t0ken"},
        timeout_seconds=5,
    )
    # Within the queue's 15 minutes: no rule, a message delayed to (just under) its second.
    assert aws.rule_names() == []
    assert aws.item(task_id)["trigger"]["S"] == "queue"
    (message,) = aws.queue_messages(aws.retry_queue_url)
    assert message["body"] == {"task_id": task_id, "due": run_at}
    assert message["delay_seconds"] in (1, 2)

    outcome = handlers.execute.lambda_handler(aws.take_queued(task_id), context())

    assert outcome == {"task_id": task_id, "outcome": "completed"}
    (request,) = receiver.requests
    assert request.received_at >= parse_stored_utc(run_at)
    assert request.method == "PUT"
    assert request.path == "/hooks/report"
    assert json.loads(request.body) == {"msg": "hi"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["X-Tenant"] == "acme"
    assert request.headers["Authorization"] == "Bearer t0ken"

    task = _task(handlers, task_id)
    assert task["status"] == "completed"
    (attempt,) = task["attempts"]
    assert attempt["attempt"] == 1
    assert attempt["status_code"] == 200
    assert attempt["duration_ms"] >= 0
    assert attempt["started_at"] >= run_at
    assert "expires_at" in aws.item(task_id)  # finished tasks expire by TTL


def _readme_curl_body() -> dict:
    """The JSON of the README's first curl example, as a user would copy it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"curl -sS -X POST \"\$API/schedule-task\".*?-d '(\{.*?\})'", readme, re.S)
    assert match, "README.md lost its curl example"
    return json.loads(match.group(1))


def test_readme_curl_example_end_to_end(aws: Aws, handlers: Handlers, receiver: Receiver) -> None:
    body = _readme_curl_body()
    assert body["run_at"] == "2030-05-19T17:56:00Z"  # the README's own example, kept in sync
    run_at = seconds_from_now(2)
    body["run_at"] = run_at
    body["payload"]["url"] = f"{receiver.url}/hooks/report"

    response = handlers.api("POST", "/schedule-task", body)

    assert response["statusCode"] == 201
    answer = body_of(response)
    task_id = answer["task_id"]
    assert answer == {
        "message": "Task scheduled successfully",
        "task_id": task_id,
        "status": "scheduled",
        "run_at": run_at,
    }
    assert aws.item(task_id)["status"]["S"] == "scheduled"

    outcome = handlers.run(task_id, run_at)

    assert outcome["outcome"] == "completed"
    (request,) = receiver.requests
    assert request.received_at >= parse_stored_utc(run_at)
    assert json.loads(request.body) == {"msg": "Hello from Lambda"}
    assert request.headers["X-Tenant"] == "acme"
    assert _task(handlers, task_id)["status"] == "completed"
    assert handlers.api("GET", f"/tasks/{uuid.uuid4()}")["statusCode"] == 404


def test_far_task_gets_a_rule_two_minutes_early_and_its_event_is_queued_to_its_second(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    due = beyond_the_queue()
    run_at = format_utc(due)
    task_id = _schedule(handlers, receiver, run_at)

    rule_name = f"{RULE_PREFIX}-{task_id}"
    rule = aws.events.describe_rule(Name=rule_name)
    fires_in = due - timedelta(minutes=2)
    assert rule["ScheduleExpression"] == (
        f"cron({fires_in.minute} {fires_in.hour} {fires_in.day} {fires_in.month} ? {fires_in.year})"
    )
    (target,) = aws.events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert json.loads(target["Input"]) == {"task_id": task_id, "due": run_at}
    assert aws.item(task_id)["trigger"]["S"] == "rule"
    assert aws.queue_messages(aws.retry_queue_url) == []

    # EventBridge invokes the target with its Input, 1 to 2 minutes early; here, earlier still:
    # the execute function hands it to the queue (15 minutes at most per message) and returns.
    outcome = handlers.execute.lambda_handler(json.loads(target["Input"]), context())

    assert outcome == {"task_id": task_id, "outcome": "waiting"}
    (message,) = aws.queue_messages(aws.retry_queue_url)
    assert message == {"body": {"task_id": task_id, "due": run_at}, "delay_seconds": 900}
    assert receiver.requests == []
    assert aws.item(task_id)["status"]["S"] == "scheduled"


def test_running_twice_calls_the_receiver_once(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, seconds_from_now(1))
    first = handlers.run(task_id)
    second = handlers.run(task_id)
    assert first["outcome"] == "completed"
    assert second["outcome"] == "not_scheduled"
    assert len(receiver.requests) == 1


def test_concurrent_runs_call_the_receiver_once(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, seconds_from_now(1))
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        outcomes.append(handlers.run(task_id)["outcome"])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(outcomes) == 4
    assert sorted(outcomes).count("completed") == 1
    assert len(receiver.wait_for(1, timeout=1)) == 1
    assert _task(handlers, task_id)["status"] == "completed"


def test_failing_receiver_fails_the_task_with_the_reason(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    receiver.default = Answer(status=404, body=b"no such hook")
    task_id = _schedule(handlers, receiver, seconds_from_now(1))
    assert handlers.run(task_id)["outcome"] == "failed"
    task = _task(handlers, task_id)
    assert task["status"] == "failed"
    assert task["last_error"] == "HTTP 404"
    assert task["attempts"][0]["status_code"] == 404
    assert task["attempts"][0]["response_excerpt"] == "no such hook"


def test_redirect_is_not_followed(aws: Aws, handlers: Handlers, receiver: Receiver) -> None:
    receiver.default = Answer(status=302, headers={"Location": f"{receiver.url}/elsewhere"})
    task_id = _schedule(handlers, receiver, seconds_from_now(1))
    assert handlers.run(task_id)["outcome"] == "failed"
    assert [r.path for r in receiver.requests] == ["/hooks/report"]


def test_timeout_is_recorded(aws: Aws, handlers: Handlers, receiver: Receiver) -> None:
    receiver.default = Answer(delay_seconds=2.5)
    task_id = _schedule(handlers, receiver, seconds_from_now(1), max_attempts=1, timeout_seconds=1)
    assert handlers.run(task_id)["outcome"] == "failed"
    assert "timed out" in _task(handlers, task_id)["last_error"]


def test_unknown_task_is_logged_and_returns_normally(
    caplog: pytest.LogCaptureFixture, aws: Aws, handlers: Handlers
) -> None:
    task_id = "123e4567-e89b-42d3-a456-426614174000"
    outcome = handlers.run(task_id)
    assert outcome["outcome"] == "unknown_task"
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "unknown task" in warning.getMessage()
    # Formatted as Lambda prints it: Powertools JSON carrying the task id.
    formatter = logging.getLogger("task-scheduler").handlers[0].formatter
    assert json.loads(formatter.format(warning))["task_id"] == task_id


def test_event_without_task_id_returns_normally(aws: Aws, handlers: Handlers) -> None:
    assert handlers.execute.lambda_handler({"detail": {}}, context())["outcome"] == "invalid_event"


@pytest.mark.slow  # waits for real time: started first (tests/conftest.py)
def test_recurring_task_returns_to_scheduled_after_a_run(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    task_id = _schedule(handlers, receiver, "cron(* * * * ? *)")
    task = _task(handlers, task_id)
    due = parse_stored_utc(task["next_run_at"])
    assert (due - datetime.now(UTC)).total_seconds() <= 60

    assert handlers.run(task_id)["outcome"] == "rescheduled"

    after = _task(handlers, task_id)
    assert after["status"] == "scheduled"
    assert after["runs"] == 1
    assert parse_stored_utc(after["next_run_at"]) > due
    assert len(after["attempts"]) == 1
    # Its occurrences are a minute apart, within the queue's reach: each is a queued message.
    assert aws.rule_names() == []
    (message,) = aws.queue_messages(aws.retry_queue_url)
    assert message["body"] == {"task_id": task_id, "due": after["next_run_at"]}
    assert len(receiver.requests) == 1
    assert receiver.requests[0].received_at >= due
