"""POST /schedule-task and GET /tasks/{task_id} through the API handler, under moto."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler.timing import QUEUE_HORIZON, parse_stored_utc
from tests.integration.conftest import RULE_PREFIX, Aws, Handlers, body_of
from tests.support.events import api_event, load_event
from tests.support.lambda_runtime import ROOT, FakeLambdaContext, load_handler_module

README_BODY = {
    "action": "webhook",
    "payload": {
        "url": "https://example.com/hooks/report",
        "data": {"msg": "Hello from Lambda"},
        "method": "POST",
        "headers": {"X-Tenant": "acme"},
        "timeout_seconds": 10,
    },
    "run_at": "2099-05-19T17:56:00Z",
}


def test_schedule_answers_the_exact_201_and_arms_one_rule(aws: Aws, handlers: Handlers) -> None:
    response = handlers.api("POST", "/schedule-task", README_BODY)

    assert response["statusCode"] == 201
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    body = body_of(response)
    assert set(body) == {"message", "task_id", "status", "run_at"}
    assert body["message"] == "Task scheduled successfully"
    assert body["status"] == "scheduled"
    assert body["run_at"] == "2099-05-19T17:56:00Z"
    task_id = body["task_id"]
    assert uuid.UUID(task_id).version == 4

    item = aws.item(task_id)
    assert item is not None
    assert item["status"]["S"] == "scheduled"
    assert item["next_run_at"]["S"] == "2099-05-19T17:56:00Z"
    assert item["trigger"]["S"] == "rule"
    assert "expires_at" not in item  # a scheduled task does not expire
    assert json.loads(item["payload"]["S"]) == README_BODY["payload"]

    rule_name = f"{RULE_PREFIX}-{task_id}"
    assert aws.rule_names() == [rule_name]
    assert len(rule_name) <= 64
    rule = aws.events.describe_rule(Name=rule_name)
    # Two minutes before the task's own minute: it fires early, the queue carries the rest.
    assert rule["ScheduleExpression"] == "cron(54 17 19 5 ? 2099)"
    assert rule["State"] == "ENABLED"
    targets = aws.events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert len(targets) == 1
    assert targets[0]["Arn"] == aws.execute_function_arn
    assert json.loads(targets[0]["Input"]) == {"task_id": task_id, "due": "2099-05-19T17:56:00Z"}


def test_offsets_are_normalised_to_utc(aws: Aws, handlers: Handlers) -> None:
    body = {**README_BODY, "run_at": "2099-05-19T19:56:00.250+02:00"}
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 201
    # Rounded up, never down: the task must not run before the time asked for.
    assert body_of(response)["run_at"] == "2099-05-19T17:56:01Z"


def test_recurring_cron_arms_its_first_occurrence_and_answers_next_run_at(
    aws: Aws, handlers: Handlers
) -> None:
    body = {**README_BODY, "run_at": "cron(0 9 ? * MON-FRI *)"}
    response = handlers.api("POST", "/schedule-task", body)

    assert response["statusCode"] == 201
    answer = body_of(response)
    assert answer["run_at"] == "cron(0 9 ? * MON-FRI *)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT09:00:00Z", answer["next_run_at"])
    first = parse_stored_utc(answer["next_run_at"])
    # One occurrence at a time: a one-shot rule two minutes before it, or, when it is within
    # the queue's 15 minutes, a queued message (the execute function arms the next one).
    if first - datetime.now(UTC) > QUEUE_HORIZON:
        rule = aws.events.describe_rule(Name=f"{RULE_PREFIX}-{answer['task_id']}")
        fires = first - timedelta(minutes=2)
        assert rule["ScheduleExpression"] == (
            f"cron({fires.minute} {fires.hour} {fires.day} {fires.month} ? {fires.year})"
        )
    else:
        (message,) = aws.queue_messages(aws.retry_queue_url)
        assert message["body"] == {"task_id": answer["task_id"], "due": answer["next_run_at"]}

    task = body_of(handlers.api("GET", f"/tasks/{answer['task_id']}"))
    assert task["recurring"] is True
    assert task["next_run_at"] == answer["next_run_at"]


def test_single_moment_cron_is_a_one_shot_task(aws: Aws, handlers: Handlers) -> None:
    body = {**README_BODY, "run_at": "cron(30 6 1 3 ? 2099)"}
    answer = body_of(handlers.api("POST", "/schedule-task", body))
    assert answer["next_run_at"] == "2099-03-01T06:30:00Z"
    task = body_of(handlers.api("GET", f"/tasks/{answer['task_id']}"))
    assert task["recurring"] is False


def test_get_task_shows_the_task(aws: Aws, handlers: Handlers) -> None:
    task_id = body_of(handlers.api("POST", "/schedule-task", README_BODY))["task_id"]
    response = handlers.api("GET", f"/tasks/{task_id}")
    assert response["statusCode"] == 200
    task = body_of(response)
    assert task["task_id"] == task_id
    assert task["action"] == "webhook"
    assert task["payload"] == README_BODY["payload"]
    assert task["run_at"] == "2099-05-19T17:56:00Z"
    assert task["status"] == "scheduled"
    assert task["attempts"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", task["created_at"])
    assert task["updated_at"] >= task["created_at"]
    assert "next_run_at" not in task  # only cron tasks carry it


@pytest.mark.parametrize(
    "task_id",
    [
        # A stable test id: parallel workers (pytest-xdist) must collect the same tests.
        pytest.param(str(uuid.uuid4()), id="random-uuid4"),
        "not-a-uuid",
        "123E4567-E89B-42D3-A456-426614174000",
    ],
)
def test_unknown_task_is_404_with_json(aws: Aws, handlers: Handlers, task_id: str) -> None:
    response = handlers.api("GET", f"/tasks/{task_id}")
    assert response["statusCode"] == 404
    assert task_id in body_of(response)["message"]


def test_unknown_route_is_json_404(aws: Aws, handlers: Handlers) -> None:
    response = handlers.api("GET", "/nowhere")
    assert response["statusCode"] == 404
    assert "message" in body_of(response)


def _future(text: str = "2099-01-01T00:00:00Z") -> str:
    return text


BAD_INPUTS = [
    ({"payload": README_BODY["payload"], "run_at": _future()}, "action"),
    ({**README_BODY, "action": "email"}, "action"),
    ({**README_BODY, "payload": {"data": {}}}, "payload.url"),
    ({**README_BODY, "payload": {"url": "ftp://example.com/x"}}, "payload.url"),
    ({**README_BODY, "payload": None}, "payload"),
    ({**README_BODY, "run_at": "2020-01-01T00:00:00Z"}, "run_at"),
    ({**README_BODY, "run_at": "2099-05-19T17:56:00"}, "run_at"),
    ({**README_BODY, "run_at": "next tuesday"}, "run_at"),
    ({**README_BODY, "run_at": "2200-01-01T00:00:00Z"}, "run_at"),
    ({**README_BODY, "run_at": "cron(0 18 * * * *)"}, "run_at"),
    ({**README_BODY, "run_at": "cron(99 99 * * ? *)"}, "run_at"),
    ({**README_BODY, "run_at": "cron(0 18 * * ?)"}, "run_at"),
    ({**README_BODY, "run_at": "rate(1 minutes)"}, "run_at"),
    ({**README_BODY, "run_at": "cron(0 0 1 1 ? 2020)"}, "run_at"),
    ({k: v for k, v in README_BODY.items() if k != "run_at"}, "run_at"),
    ({**README_BODY, "runAt": "2099-01-01T00:00:00Z"}, "runAt"),
]


@pytest.mark.parametrize(("body", "field"), BAD_INPUTS)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(
    aws: Aws, handlers: Handlers, body: dict, field: str
) -> None:
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 400
    answer = body_of(response)
    assert answer["message"]
    assert field in [error["field"] for error in answer["errors"]]
    assert all(error["problem"] for error in answer["errors"])
    assert aws.table_is_empty()
    assert aws.rule_names() == []


def test_invalid_json_is_400(aws: Aws, handlers: Handlers) -> None:
    response = handlers.api("POST", "/schedule-task", raw_body='{"action": "webhook",')
    assert response["statusCode"] == 400
    assert body_of(response)["errors"][0]["field"] == "body"
    assert aws.table_is_empty()


def test_non_json_content_type_is_415(aws: Aws, handlers: Handlers) -> None:
    response = handlers.api(
        "POST",
        "/schedule-task",
        raw_body="action=webhook",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response["statusCode"] == 415
    assert "application/json" in body_of(response)["message"]


def test_body_over_256_kib_is_413(aws: Aws, handlers: Handlers) -> None:
    body = {**README_BODY, "payload": {**README_BODY["payload"], "data": "x" * 262_144}}
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 413
    assert aws.table_is_empty()


def test_base64_body_as_api_gateway_sends_it(aws: Aws, handlers: Handlers) -> None:
    response = handlers.api_event(load_event("schedule_task_base64.json"))
    assert response["statusCode"] == 201
    assert body_of(response)["run_at"] == "2099-05-19T17:56:00Z"


def test_table_failure_is_503_and_arms_nothing(aws: Aws, handlers: Handlers) -> None:
    aws.dynamodb.delete_table(TableName="test-tasks")
    response = handlers.api("POST", "/schedule-task", README_BODY)
    assert response["statusCode"] == 503
    assert "DynamoDB" in body_of(response)["message"]
    assert aws.rule_names() == []


def test_failing_rule_target_is_503_and_undoes_the_rule_and_the_row(
    aws: Aws, function_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EventBridge refuses a target that is not an ARN: PutRule succeeds, PutTargets fails.
    monkeypatch.setenv("EXECUTE_FUNCTION_ARN", "not-an-arn")
    schedule = load_handler_module(ROOT / "schedule_task")

    response = schedule.lambda_handler(
        api_event("POST", "/schedule-task", README_BODY), FakeLambdaContext()
    )

    assert response["statusCode"] == 503
    assert "rule target" in body_of(response)["message"]
    assert aws.rule_names() == []
    assert aws.table_is_empty()


def test_every_error_is_json_with_a_message(aws: Aws, handlers: Handlers) -> None:
    event = api_event("POST", "/schedule-task", raw_body="[1, 2]")
    response = handlers.api_event(event)
    assert response["statusCode"] == 400
    assert body_of(response) == {
        "message": "Invalid request: body must be a JSON object.",
        "errors": [{"field": "body", "problem": "must be a JSON object"}],
    }


# --- the edge: undecodable bodies, lone surrogates, bounded quotes (issue 11) ------------------

MAX_QUOTED = 200


def _longest_run(text: str, char: str) -> int:
    """The longest stretch of `char` in `text`: how much of a repeated input an answer quotes."""
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)


@pytest.mark.parametrize("encoded", ["abc", "not base64!", "é"])
def test_body_marked_base64_that_does_not_decode_is_400_naming_body(
    aws: Aws, handlers: Handlers, encoded: str
) -> None:
    event = api_event("POST", "/schedule-task", raw_body=encoded)
    event["isBase64Encoded"] = True
    response = handlers.api_event(event)
    assert response["statusCode"] == 400
    assert [error["field"] for error in body_of(response)["errors"]] == ["body"]
    assert aws.table_is_empty()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**README_BODY["payload"], "data": "\ud800"}, "payload.data"),
        ({**README_BODY["payload"], "data": {"msg": ["ok", "a\udc00b"]}}, "payload.data.msg[1]"),
        ({**README_BODY["payload"], "data": {"\ud800": 1}}, "payload.data.\\ud800"),
        ({**README_BODY["payload"], "headers": {"X-A": "\ud800"}}, "payload.headers.X-A"),
        ({**README_BODY["payload"], "url": "https://example.com/\ud800"}, "payload.url"),
    ],
    ids=["data", "nested-data", "data-key", "header-value", "url"],
)
def test_lone_surrogate_is_400_naming_the_field_and_writes_nothing(
    aws: Aws, handlers: Handlers, payload: dict, field: str
) -> None:
    # json.dumps writes the lone surrogate as the JSON escape "\ud800", as a client would.
    response = handlers.api("POST", "/schedule-task", {**README_BODY, "payload": payload})
    assert response["statusCode"] == 400
    [error] = body_of(response)["errors"]
    assert error["field"] == field
    assert "surrogate" in error["problem"]
    assert aws.table_is_empty()
    assert aws.rule_names() == []


def test_huge_run_at_is_quoted_at_most_200_characters(aws: Aws, handlers: Handlers) -> None:
    run_at = "2099-05-19T17:56:00." + "0" * 250_000  # a valid time without an offset
    response = handlers.api("POST", "/schedule-task", {**README_BODY, "run_at": run_at})
    assert response["statusCode"] == 400
    assert len(response["body"]) < 2048
    assert [error["field"] for error in body_of(response)["errors"]] == ["run_at"]
    assert 0 < _longest_run(response["body"], "0") <= MAX_QUOTED
    assert aws.table_is_empty()


def test_huge_integer_is_400_without_python_hints(aws: Aws, handlers: Handlers) -> None:
    body = json.dumps({**README_BODY, "payload": {**README_BODY["payload"], "data": 0}})
    raw = body.replace('"data": 0', '"data": ' + "7" * 5000)
    response = handlers.api("POST", "/schedule-task", raw_body=raw)
    assert response["statusCode"] == 400
    answer = body_of(response)
    assert [error["field"] for error in answer["errors"]] == ["body"]
    assert "set_int_max_str_digits" not in response["body"]
    assert "sys." not in response["body"]
    assert aws.table_is_empty()


def test_many_unknown_fields_give_a_bounded_answer(aws: Aws, handlers: Handlers) -> None:
    body = {**README_BODY, **{f"k{n}": 0 for n in range(20_000)}}
    response = handlers.api("POST", "/schedule-task", body)
    assert response["statusCode"] == 400
    assert "20000 fields" in body_of(response)["message"]
    assert len(response["body"]) < 16_384


def test_huge_content_type_is_quoted_at_most_200_characters(aws: Aws, handlers: Handlers) -> None:
    content_type = "text/" + "p" * 5000
    response = handlers.api(
        "POST", "/schedule-task", README_BODY, headers={"Content-Type": content_type}
    )
    assert response["statusCode"] == 415
    assert 0 < _longest_run(response["body"], "p") <= MAX_QUOTED


def test_huge_unknown_task_id_is_quoted_at_most_200_characters(
    aws: Aws, handlers: Handlers
) -> None:
    response = handlers.api("GET", "/tasks/" + "t" * 5000)
    assert response["statusCode"] == 404
    assert 0 < _longest_run(response["body"], "t") <= MAX_QUOTED


def test_huge_unknown_route_is_quoted_at_most_200_characters(aws: Aws, handlers: Handlers) -> None:
    response = handlers.api("GET", "/" + "r" * 5000)
    assert response["statusCode"] == 404
    assert 0 < _longest_run(response["body"], "r") <= MAX_QUOTED


def test_rejected_request_is_logged_bounded(
    aws: Aws, handlers: Handlers, caplog: pytest.LogCaptureFixture
) -> None:
    run_at = "2099-05-19T17:56:00." + "0" * 250_000
    with caplog.at_level(logging.INFO):
        response = handlers.api("POST", "/schedule-task", {**README_BODY, "run_at": run_at})
    assert response["statusCode"] == 400
    [rejection] = [r for r in caplog.records if r.getMessage() == "request rejected"]
    logged = json.dumps(rejection.__dict__["error"])
    assert 0 < _longest_run(logged, "0") <= MAX_QUOTED
