"""Cron tasks read in a time zone, through the handlers under moto (contract sections 1 and 3).

Occurrences are armed one at a time, whatever the zone: the next one is computed in the task's
zone (daylight saving included), then queued when it is within 15 minutes, or given a one-shot
rule two minutes before it, moved on by the execute function after each run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from task_scheduler.timing import one_shot_rule_expression, parse_stored_utc, trigger_minute
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


# Every year on 1 January at 09:00: never within the queue's 15 minutes of a test run (but on
# New Year's morning), so its first occurrence gets a rule.
YEARLY = "cron(0 9 1 1 ? *)"


def test_zoned_cron_task_gets_a_one_shot_rule_for_its_first_occurrence(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    before = datetime.now(UTC)
    response = _post(handlers, receiver, YEARLY, timezone="Europe/Paris")

    assert response["statusCode"] == 201, response["body"]
    answer = body_of(response)
    task_id = answer["task_id"]
    expected = ZonedCron.parse(YEARLY, "Europe/Paris").next_after(before)
    assert answer["timezone"] == "Europe/Paris"
    assert parse_stored_utc(answer["next_run_at"]) == expected
    assert answer["next_run_at"].endswith("Z")
    assert answer["run_at"] == YEARLY
    assert expected.hour == 8  # 09:00 in Paris in winter is 08:00 UTC

    rule = _rule(aws, task_id)
    assert rule["ScheduleExpression"] == one_shot_rule_expression(trigger_minute(expected))
    assert rule["State"] == "ENABLED"
    (target,) = aws.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert json.loads(target["Input"]) == {"task_id": task_id, "due": answer["next_run_at"]}

    task = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    assert task["timezone"] == "Europe/Paris"
    assert task["next_run_at"] == answer["next_run_at"]
    assert task["status"] == "scheduled"


def test_a_utc_cron_task_also_gets_a_one_shot_rule_for_its_first_occurrence(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    # A rule carrying the cron itself would fire anywhere in each occurrence's minute: too late.
    response = _post(handlers, receiver, YEARLY)
    assert response["statusCode"] == 201, response["body"]
    answer = body_of(response)
    assert answer["timezone"] == "UTC"
    first = parse_stored_utc(answer["next_run_at"])
    assert (first.month, first.day, first.hour) == (1, 1, 9)
    rule = _rule(aws, answer["task_id"])
    assert rule["ScheduleExpression"] == one_shot_rule_expression(trigger_minute(first))


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


@pytest.mark.slow  # waits for real time: started first (tests/conftest.py)
def test_after_a_run_the_next_zoned_occurrence_is_armed_queued_or_by_its_rule(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    # Read in Kolkata (+05:30): the coming minute, and 20 minutes after it, every hour. The
    # first occurrence is near (queued); the one after it is not (a rule, two minutes early).
    local = datetime.now(ZoneInfo("Asia/Kolkata")) + timedelta(minutes=1)
    minutes = sorted({local.minute, (local.minute + 20) % 60})
    cron = f"cron({','.join(map(str, minutes))} * * * ? *)"
    response = _post(handlers, receiver, cron, timezone="Asia/Kolkata")
    assert response["statusCode"] == 201, response["body"]
    answer = body_of(response)
    task_id = answer["task_id"]
    due = parse_stored_utc(answer["next_run_at"])
    assert aws.rule_names() == []
    assert aws.queue_messages(aws.retry_queue_url)[0]["body"] == {
        "task_id": task_id,
        "due": answer["next_run_at"],
    }

    assert handlers.run(task_id)["outcome"] == "rescheduled"

    after = body_of(handlers.api("GET", f"/tasks/{task_id}"))
    next_run = parse_stored_utc(after["next_run_at"])
    assert next_run == due + timedelta(minutes=20)
    assert after["status"] == "scheduled"
    assert after["runs"] == 1
    assert after["timezone"] == "Asia/Kolkata"
    rule = _rule(aws, task_id)
    assert rule["ScheduleExpression"] == one_shot_rule_expression(trigger_minute(next_run))
    (target,) = aws.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert json.loads(target["Input"]) == {"task_id": task_id, "due": after["next_run_at"]}
    assert aws.item(task_id)["trigger"]["S"] == "rule"
    assert len(receiver.requests) == 1
    assert receiver.requests[0].received_at >= due
