"""openapi.yaml (issue 10, point 5): a valid OpenAPI 3.1 description of every route the template
serves and no other, and local mode (`python -m local`) answering as it says. schemathesis sends
requests generated from it, valid and invalid: never a server error, every answer documented
(status, content type, headers, body schema), and no request leaves a task behind unless it was
answered 201. A bounded number of examples per operation keeps it to well under a minute."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.template import api_routes, load_template
from tests.support.local_process import ROOT, LocalProcess, local_mode

OPENAPI = ROOT / "openapi.yaml"
EXAMPLES_PER_OPERATION = 25
_MOTO = re.compile(r"AWS is emulated by moto at (http://127\.0\.0\.1:\d+)")


def _description() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def test_the_description_is_openapi_3_1_and_valid() -> None:
    description = _description()
    assert description["openapi"].startswith("3.1.")
    schemathesis.openapi.from_path(OPENAPI).validate()


def test_the_description_has_exactly_the_templates_routes() -> None:
    described = {
        (path, method.upper())
        for path, item in _description()["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = {(route.path, route.method) for route in api_routes(load_template())}
    assert described == served


def test_every_route_needs_the_api_key_and_every_error_is_the_error_shape() -> None:
    description = _description()
    assert description["security"] == [{"api_key": []}]
    assert description["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    responses = description["components"]["responses"]
    for item in description["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert "security" not in operation  # none opts out
            assert "403" in operation["responses"]
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    shared = responses[response["$ref"].rsplit("/", 1)[1]]
                    schema = shared["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalProcess]:
    with local_mode() as running:
        yield running


@pytest.fixture(scope="module")
def tasks_table(local: LocalProcess) -> Any:
    """Local mode's tasks table, read through the moto server it runs."""
    (endpoint,) = {match.group(1) for match in _MOTO.finditer(local.output)}
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    return client


@pytest.fixture(scope="module")
def created() -> set[str]:
    """The task ids answered with a 201 so far."""
    return set()


# Loaded once at collection: one test per operation and generation mode (valid requests, and
# requests that break the description on purpose).
OPERATIONS = [
    result.ok() for result in schemathesis.openapi.from_path(OPENAPI).get_all_operations()
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_local_mode_answers_as_described(
    operation: Any, mode: GenerationMode, local: LocalProcess, tasks_table: Any, created: set[str]
) -> None:
    @given(case=_cases(operation, mode, local, created))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_described(case: Any) -> None:
        response = case.call(base_url=local.url, headers={"x-api-key": local.api_key}, timeout=30)
        case.validate_response(response, checks=CHECKS)
        if response.status_code == 201:
            created.add(response.json()["task_id"])
        left = _rows(tasks_table)
        assert {row["task_id"] for row in left} <= created, (
            f"{case.method} {case.path} answered {response.status_code} and left a task behind"
        )
        assert all(row["status"] != "pending" for row in left)

    answers_as_described()


# Where schedulable requests point: local mode allows loopback targets, and their far-future
# run_at never comes during the test.
TARGET = "http://127.0.0.1:9/never-called"
RUN_AT = st.sampled_from(
    ["2099-05-19T17:56:00Z", "2099-05-19T19:56:00+02:00", "cron(0 9 ? * MON-FRI *)"]
)


def _cases(operation: Any, mode: GenerationMode, local: LocalProcess, created: set[str]) -> Any:
    """schemathesis' cases, and as many again made to reach past the first check: a schedule
    with a target and time it accepts (fuzzed otherwise), or a task route on a task that
    exists (scheduled, paused or cancelled by earlier cases), so the 201s, 200s and 409s are
    checked too, not only the 400s and 404s."""
    cases = operation.as_strategy(generation_mode=mode)
    if operation.path == "/schedule-task" and mode is GenerationMode.POSITIVE:
        return st.one_of(cases, st.tuples(cases, RUN_AT).map(_schedulable))
    if "{task_id}" in operation.path:
        ids = st.sampled_from(_some_tasks(local, created))
        return st.one_of(cases, st.tuples(cases, ids).map(_on_task))
    return cases


def _schedulable(drawn: tuple[Any, str]) -> Any:
    case, run_at = drawn
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("payload"), dict):
        body["payload"]["url"] = TARGET
        body["payload"].pop("headers", None)  # fuzzed header names are mostly refused
        body["run_at"] = run_at
        if not run_at.startswith("cron("):
            body.pop("timezone", None)
        else:
            body["timezone"] = "Europe/Paris"
    return case


def _on_task(drawn: tuple[Any, str]) -> Any:
    case, task_id = drawn
    case.path_parameters = {**(case.path_parameters or {}), "task_id": task_id}
    return case


def _some_tasks(local: LocalProcess, created: set[str]) -> list[str]:
    ids = []
    for run_at in ("2099-01-01T00:00:00Z", "cron(0 9 * * ? *)", "cron(30 8 * * ? *)"):
        response = requests.post(
            f"{local.url}/schedule-task",
            json={"action": "webhook", "payload": {"url": TARGET}, "run_at": run_at},
            headers={"x-api-key": local.api_key},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["task_id"])
    created.update(ids)
    return ids


def _rows(client: Any) -> list[dict[str, str]]:
    """Every task row (idempotency keys and the page token key are not tasks)."""
    rows, start = [], None
    while True:
        arguments: dict[str, Any] = {"TableName": "local-TasksTable", "ConsistentRead": True}
        if start:
            arguments["ExclusiveStartKey"] = start
        page = client.scan(**arguments)
        rows += [
            {"task_id": item["task_id"]["S"], "status": item["status"]["S"]}
            for item in page["Items"]
            if "status" in item
        ]
        start = page.get("LastEvaluatedKey")
        if not start:
            return rows
