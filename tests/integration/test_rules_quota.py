"""EventBridge's quota of rules per event bus, as local mode and these tests emulate it: a task
that cannot get its rule is a 503 naming the quota and the way out, and leaves nothing behind
(contract sections 2 and 7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.moto_fidelity import limit_default_bus_rules
from tests.integration.conftest import TABLE_NAME, Aws, Handlers, body_of
from tests.support.timing import seconds_from_now

QUOTA = 3


@pytest.fixture
def quota(aws: Aws) -> Iterator[int]:
    limit_default_bus_rules(QUOTA)
    yield QUOTA
    limit_default_bus_rules(None)


def _schedule(handlers: Handlers, run_at: str) -> dict:
    body = {"action": "webhook", "payload": {"url": "http://127.0.0.1:9/hook"}, "run_at": run_at}
    return handlers.api("POST", "/schedule-task", body)


def test_a_task_beyond_the_rules_quota_is_a_503_that_leaves_nothing_behind(
    aws: Aws, handlers: Handlers, quota: int
) -> None:
    accepted = [_schedule(handlers, seconds_from_now(3600 + i)) for i in range(quota)]
    assert [r["statusCode"] for r in accepted] == [201] * quota

    refused = _schedule(handlers, seconds_from_now(7200))

    assert refused["statusCode"] == 503
    message = body_of(refused)["message"]
    assert "quota of rules per event bus" in message
    assert "Service Quotas" in message
    assert "TriggerBackend=scheduler" in message
    assert len(aws.rule_names()) == quota
    items = aws.dynamodb.scan(TableName=TABLE_NAME)["Items"]
    assert sorted(item["task_id"]["S"] for item in items) == sorted(
        body_of(r)["task_id"] for r in accepted
    )


def test_an_imminent_one_shot_needs_no_rule_and_is_scheduled_past_the_quota(
    aws: Aws, handlers: Handlers, quota: int
) -> None:
    for i in range(quota):
        assert _schedule(handlers, seconds_from_now(3600 + i))["statusCode"] == 201
    assert _schedule(handlers, seconds_from_now(2))["statusCode"] == 201
