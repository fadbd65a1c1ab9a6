"""Cron tasks read in a time zone, through the handlers under moto (contract sections 1 and 3).

EventBridge rules read a cron in UTC, so a zoned task's rule is a one-shot for its next
occurrence, moved on by the execute function after each run; a UTC cron stays on its rule.
"""

from __future__ import annotations

from datetime import UTC, datetime

from task_scheduler.timing import one_shot_rule_expression, parse_stored_utc
from task_scheduler.zoned_cron import ZonedCron
from tests.integration.conftest import RULE_PREFIX, Aws, Handlers, body_of
from tests.support.receiver import Receiver


def _post(handlers: Handlers, receiver: Receiver, run_at: str, **fields: object) -> dict:
    body = {
        "action": "webhook",
        "payload": {"url": f"{receiver.url}/hooks/report"},
        "run_at": run_at,
        **fields,
    }
    return handlers.api("POST", "/schedule-task", body)


def _rule(aws: Aws, task_id: str) -> dict:
    return aws.events.describe_rule(Name=f"{RULE_PREFIX}-{task_id}")


def test_zoned_cron_task_gets_a_one_shot_rule_for_its_first_occurrence(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    before = datetime.now(UTC)
    response = _post(handlers, receiver, "cron(0 9 * * ? *)", timezone="Europe/Paris")

    assert response["statusCode"] == 201, response["body"]
    answer = body_of(response)
    task_id = answer["task_id"]
    expected = ZonedCron.parse("cron(0 9 * * ? *)", "Europe/Paris").next_after(before)
    assert answer["timezone"] == "Europe/Paris"
    assert parse_stored_utc(answer["next_run_at"]) == expected
    assert answer["next_run_at"].endswith("Z")
    assert answer["run_at"] == "cron(0 9 * * ? *)"
    # Paris is an hour or two ahead of UTC: 09:00 there is 07:00 or 08:00 UTC.
    assert expected.hour in (7, 8)

    rule = _rule(aws, task_id)
    assert rule["ScheduleExpression"] == one_shot_rule_expression(expected)
    assert rule["State"] == "ENABLED"
    (target,) = aws.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Input"] == f'{{"task_id": "{task_id}"}}'

    task = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert task["timezone"] == "Europe/Paris"
    assert task["next_run_at"] == answer["next_run_at"]
    assert task["status"] == "scheduled"


def test_utc_cron_task_keeps_its_cron_on_the_rule(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    response = _post(handlers, receiver, "cron(0 9 * * ? *)")
    assert response["statusCode"] == 201, response["body"]
    answer = body_of(response)
    assert answer["timezone"] == "UTC"
    assert _rule(aws, answer["task_id"])["ScheduleExpression"] == "cron(0 9 * * ? *)"


def test_unknown_zone_is_a_400_naming_timezone_and_leaves_nothing(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    response = _post(handlers, receiver, "cron(0 9 * * ? *)", timezone="Europe/Atlantis")
    assert response["statusCode"] == 400
    [error] = body_of(response)["errors"]
    assert error["field"] == "timezone"
    assert error["problem"].startswith("'Europe/Atlantis' is not an IANA time zone name")
    assert aws.rule_names() == []
    assert aws.table_is_empty()


def test_zone_with_an_iso_run_at_is_a_400_naming_timezone(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    response = _post(handlers, receiver, "2030-05-19T17:56:00Z", timezone="Europe/Paris")
    assert response["statusCode"] == 400
    assert [e["field"] for e in body_of(response)["errors"]] == ["timezone"]
    assert aws.table_is_empty()


def test_after_a_run_the_rule_is_rearmed_for_the_next_zoned_occurrence(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    # Every minute in Kolkata (+05:30): the first occurrence is within a minute.
    response = _post(handlers, receiver, "cron(* * * * ? *)", timezone="Asia/Kolkata")
    assert response["statusCode"] == 201, response["body"]
    answer = body_of(response)
    task_id = answer["task_id"]
    due = parse_stored_utc(answer["next_run_at"])
    assert _rule(aws, task_id)["ScheduleExpression"] == one_shot_rule_expression(due)

    assert handlers.run(task_id)["outcome"] == "rescheduled"  # waits until `due`

    after = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    next_run = parse_stored_utc(after["next_run_at"])
    assert next_run > due
    assert after["status"] == "scheduled"
    assert after["runs"] == 1
    assert after["timezone"] == "Asia/Kolkata"
    rule = _rule(aws, task_id)
    assert rule["ScheduleExpression"] == one_shot_rule_expression(next_run)
    (target,) = aws.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Input"] == f'{{"task_id": "{task_id}"}}'  # the target stays
    assert len(receiver.requests) == 1
    assert receiver.requests[0].received_at >= due
