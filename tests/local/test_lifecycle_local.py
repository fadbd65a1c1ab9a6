"""The lifecycle routes in local mode (`python -m local`), over HTTP, on both trigger backends
(issue 10, point 6): three concurrent clients sending one Idempotency-Key get one task; listing,
pausing, resuming and cancelling work; every route needs the API key."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from tests.support.local_process import LocalProcess, local_mode

TARGET = "http://127.0.0.1:9/never-called"
BODY = {"action": "webhook", "payload": {"url": TARGET}, "run_at": "cron(0 9 * * ? *)"}


@pytest.fixture(scope="module", params=["rules", "scheduler"])
def local(request: pytest.FixtureRequest) -> Iterator[LocalProcess]:
    with local_mode(TRIGGER_BACKEND=request.param) as running:
        yield running


def _call(local: LocalProcess, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"x-api-key": local.api_key, **kwargs.pop("headers", {})}
    return requests.request(method, f"{local.url}{path}", headers=headers, timeout=30, **kwargs)


def _task_rows(local: LocalProcess) -> list[str]:
    (endpoint,) = set(re.findall(r"AWS is emulated by moto at (\S+)", local.output))
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    items = client.scan(TableName="local-TasksTable", ConsistentRead=True)["Items"]
    return [item["task_id"]["S"] for item in items if "status" in item]


def test_three_concurrent_clients_with_one_key_get_one_task(local: LocalProcess) -> None:
    before = set(_task_rows(local))
    start = threading.Barrier(3)
    answers: list[requests.Response] = []

    def client() -> None:
        start.wait()
        for _ in range(200):  # a 409 while the first is handled: send it again
            response = _call(
                local, "POST", "/schedule-task", json=BODY, headers={"Idempotency-Key": "once"}
            )
            if response.status_code != 409:
                answers.append(response)
                return
        raise AssertionError("still 409 after 200 tries")

    threads = [threading.Thread(target=client) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert len({answer.text for answer in answers}) == 1
    replayed = sorted(answer.headers.get("Idempotent-Replayed", "") for answer in answers)
    assert replayed == ["", "true", "true"]
    new = set(_task_rows(local)) - before
    assert new == {answers[0].json()["task_id"]}


def test_list_pause_resume_and_cancel(local: LocalProcess) -> None:
    task_id = _call(local, "POST", "/schedule-task", json=BODY).json()["task_id"]

    listed = _call(local, "GET", "/tasks", params={"limit": "100"}).json()
    assert task_id in [task["task_id"] for task in listed["tasks"]]

    paused = _call(local, "POST", f"/tasks/{task_id}/pause")
    assert (paused.status_code, paused.json()) == (200, {"task_id": task_id, "status": "paused"})
    listed = _call(local, "GET", "/tasks", params={"status": "paused"}).json()
    assert [task["task_id"] for task in listed["tasks"]] == [task_id]

    resumed = _call(local, "POST", f"/tasks/{task_id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "scheduled"
    assert resumed.json()["next_run_at"].endswith("T09:00:00Z")

    cancelled = _call(local, "DELETE", f"/tasks/{task_id}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert _call(local, "POST", f"/tasks/{task_id}/resume").status_code == 409


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks"),
        ("POST", "/tasks/123e4567-e89b-42d3-a456-426614174000/pause"),
        ("POST", "/tasks/123e4567-e89b-42d3-a456-426614174000/resume"),
    ],
)
def test_the_new_routes_need_the_api_key(local: LocalProcess, method: str, path: str) -> None:
    for headers in ({}, {"x-api-key": "wrong"}):
        response = requests.request(method, f"{local.url}{path}", headers=headers, timeout=30)
        assert response.status_code == 403, response.text
