"""Every file in events/ (what `sam local invoke -e` is given) is fed to its handler here."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Aws, Handlers, body_of, context
from tests.support.events import all_event_files, load_event

# What each events file must produce when invoked against an empty deployment.
EXPECTED = {
    "schedule_task_iso.json": ("schedule", 201),
    "schedule_task_cron.json": ("schedule", 201),
    "schedule_task_base64.json": ("schedule", 201),
    "schedule_task_invalid.json": ("schedule", 400),
    "get_task.json": ("schedule", 404),
    "execute_task.json": ("execute", "unknown_task"),  # a rule's or schedule's event
    "execute_task_sqs.json": ("execute", {"batchItemFailures": []}),  # the queue's
}


def test_every_events_file_is_covered() -> None:
    assert sorted(EXPECTED) == all_event_files()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_events_file_through_its_handler(aws: Aws, handlers: Handlers, name: str) -> None:
    function, expected = EXPECTED[name]
    event = load_event(name)
    if function == "execute":
        answer = handlers.execute.lambda_handler(event, context())
        assert (answer if "Records" in event else answer["outcome"]) == expected
        return
    response = handlers.schedule.lambda_handler(event, context())
    assert response["statusCode"] == expected
    body = body_of(response)
    if expected == 201:
        assert body["status"] == "scheduled"
    else:
        assert body["message"]


def test_invalid_event_names_each_bad_field(aws: Aws, handlers: Handlers) -> None:
    response = handlers.schedule.lambda_handler(load_event("schedule_task_invalid.json"), context())
    fields = {error["field"] for error in body_of(response)["errors"]}
    assert fields == {"payload.url", "payload.method", "run_at"}
