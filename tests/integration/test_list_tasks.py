"""`GET /tasks` through the API handler under moto, on both trigger backends (contract section 3):
one status at a time, waiting tasks soonest next run first, the others newest update first;
following `next_token` lists every task once, even while others are added; the listing reads the
status indexes only (never a scan); a bad `status`, `limit` or `next_token` is a 400 naming it."""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from task_scheduler.model import Task, TaskStatus
from task_scheduler.page_tokens import PageTokens, TableKey
from task_scheduler.task_items import LISTING_SHARDS, listing_shard, to_item
from task_scheduler.task_listing import TaskListing, parse_list_query
from task_scheduler.timing import format_utc
from tests.integration.conftest import TABLE_NAME, Aws, Handlers, body_of, on_both_backends
from tests.support.events import api_event

pytestmark = on_both_backends

BASE = datetime(2090, 1, 1, tzinfo=UTC)


def list_tasks(handlers: Handlers, **params: str) -> dict[str, Any]:
    event = api_event("GET", "/tasks")
    event.update(
        body=None,
        resource="/tasks",
        queryStringParameters=params or None,
        multiValueQueryStringParameters={k: [v] for k, v in params.items()} or None,
    )
    return handlers.api_event(event)


def _put(aws: Aws, status: TaskStatus, when: datetime, *, task_id: str | None = None) -> str:
    """A task written straight into the table: `when` is its next run if it waits, else its last
    update."""
    task_id = task_id or str(uuid.uuid4())
    waiting = status in (TaskStatus.SCHEDULED, TaskStatus.PAUSED)
    task = Task(
        task_id=task_id,
        action="webhook",
        payload={"url": "https://example.com/hook"},
        run_at=format_utc(when) if waiting else "2089-01-01T00:00:00Z",
        status=status,
        created_at="2089-01-01T00:00:00Z",
        updated_at="2089-06-01T00:00:00Z" if waiting else format_utc(when),
        next_run_at=format_utc(when) if waiting else None,
    )
    aws.dynamodb.put_item(TableName=TABLE_NAME, Item=to_item(task))
    return task_id


def _follow(handlers: Handlers, between_pages: Any = None, **params: str) -> list[list[dict]]:
    pages, token = [], None
    while True:
        query = dict(params, **({"next_token": token} if token else {}))
        response = list_tasks(handlers, **query)
        assert response["statusCode"] == 200, response["body"]
        body = body_of(response)
        pages.append(body["tasks"])
        token = body["next_token"]
        if token is None:
            return pages
        if between_pages:
            between_pages(len(pages))
        assert len(pages) < 100, "the listing does not end"


def test_scheduled_tasks_are_listed_soonest_first_with_their_fields(
    aws: Aws, handlers: Handlers
) -> None:
    created = []
    for run_at in ("2099-03-01T00:00:00Z", "2099-01-01T00:00:00Z", "2099-02-01T00:00:00Z"):
        body = {"action": "webhook", "payload": {"url": "https://example.com/h"}, "run_at": run_at}
        response = handlers.api("POST", "/schedule-task", body)
        assert response["statusCode"] == 201, response["body"]
        created.append(body_of(response)["task_id"])
    cron = handlers.api(
        "POST",
        "/schedule-task",
        {
            "action": "webhook",
            "payload": {"url": "https://example.com/h"},
            "run_at": "cron(0 9 1 1 ? 2098)",
            "timezone": "Europe/Paris",
        },
    )
    assert cron["statusCode"] == 201, cron["body"]

    response = list_tasks(handlers)

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["next_token"] is None
    assert [task["run_at"] for task in body["tasks"]] == [
        "cron(0 9 1 1 ? 2098)",
        "2099-01-01T00:00:00Z",
        "2099-02-01T00:00:00Z",
        "2099-03-01T00:00:00Z",
    ]
    first = body["tasks"][1]
    assert first["task_id"] == created[1]
    assert first["action"] == "webhook"
    assert first["status"] == "scheduled"
    assert first["next_run_at"] == "2099-01-01T00:00:00Z"
    assert {"created_at", "updated_at"} <= set(first)
    assert body["tasks"][0]["next_run_at"] == "2098-01-01T08:00:00Z"
    assert body["tasks"][0]["timezone"] == "Europe/Paris"
    assert body_of(list_tasks(handlers, status="completed")) == {"tasks": [], "next_token": None}


def test_paging_lists_every_task_once_while_others_are_added(aws: Aws, handlers: Handlers) -> None:
    rng = random.Random(7)
    original = {
        _put(aws, TaskStatus.SCHEDULED, BASE + timedelta(minutes=rng.randrange(0, 600)))
        for _ in range(23)
    }
    added: set[str] = set()

    def add_some(pages_so_far: int) -> None:
        # Before, among and after what has been listed: only the later ones may show up.
        for offset in (-10_000, 1, 300, 10_000):
            when = BASE + timedelta(minutes=offset + rng.randrange(0, 5))
            added.add(_put(aws, TaskStatus.SCHEDULED, when))

    pages = _follow(handlers, add_some, limit="4")

    listed = [task["task_id"] for page in pages for task in page]
    assert all(len(page) <= 4 for page in pages)
    assert len(listed) == len(set(listed)), "a task was listed twice"
    assert original <= set(listed), "a task present all along was missed"
    assert set(listed) <= original | added
    times = [(task["next_run_at"], task["task_id"]) for page in pages for task in page]
    assert [t for t, _ in times] == sorted(t for t, _ in times)


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "running"])
def test_running_and_finished_tasks_are_listed_newest_update_first(
    aws: Aws, handlers: Handlers, status: str
) -> None:
    ids = [_put(aws, TaskStatus(status), BASE + timedelta(seconds=n * 7 % 61)) for n in range(13)]
    _put(aws, TaskStatus.SCHEDULED, BASE)  # another status: not listed

    pages = _follow(handlers, status=status, limit="5")

    listed = [task for page in pages for task in page]
    assert sorted(task["task_id"] for task in listed) == sorted(ids)
    assert {task["status"] for task in listed} == {status}
    updates = [task["updated_at"] for task in listed]
    assert updates == sorted(updates, reverse=True)


def test_paused_tasks_are_listed_in_their_place_without_a_next_run(
    aws: Aws, handlers: Handlers
) -> None:
    later = _put(aws, TaskStatus.PAUSED, BASE + timedelta(days=2))
    sooner = _put(aws, TaskStatus.PAUSED, BASE + timedelta(days=1))

    body = body_of(list_tasks(handlers, status="paused"))

    assert [task["task_id"] for task in body["tasks"]] == [sooner, later]
    assert all("next_run_at" not in task for task in body["tasks"])


def test_the_listing_reads_the_status_indexes_only(aws: Aws) -> None:
    for n in range(30):
        _put(aws, TaskStatus.COMPLETED, BASE + timedelta(seconds=n))
    calls: list[tuple[str, dict[str, Any]]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            method = getattr(aws.dynamodb, name)

            def call(**kwargs: Any) -> Any:
                calls.append((name, kwargs))
                return method(**kwargs)

            return call

    tokens = PageTokens(TableKey(Recording(), TABLE_NAME))
    listing = TaskListing(Recording(), TABLE_NAME, tokens)
    query = parse_list_query({"status": "completed", "limit": "10"}, tokens)
    calls.clear()

    page = listing.page(query)

    assert len(page.tasks) == 10
    queries = [kwargs for name, kwargs in calls if name == "query"]
    assert len(queries) == LISTING_SHARDS
    assert {q["IndexName"] for q in queries} == {"by_status_updated"}
    assert all(q["Limit"] == 10 for q in queries)
    assert {name for name, _ in calls} <= {"query", "get_item", "put_item"}


def test_tasks_spread_over_every_listing_shard() -> None:
    shards = {listing_shard(str(uuid.UUID(int=n << 96, version=4))) for n in range(64)}
    assert shards == {str(shard) for shard in range(LISTING_SHARDS)}


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"status": "pending"}, ["status"]),
        ({"status": "SCHEDULED"}, ["status"]),
        ({"limit": "0"}, ["limit"]),
        ({"limit": "101"}, ["limit"]),
        ({"limit": "ten"}, ["limit"]),
        ({"limit": "-1"}, ["limit"]),
        ({"next_token": "garbage"}, ["next_token"]),
        ({"next_token": ""}, ["next_token"]),
        ({"next_token": "a.b.c"}, ["next_token"]),
        ({"status": "nope", "limit": "0", "next_token": "x"}, ["status", "limit", "next_token"]),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(
    aws: Aws, handlers: Handlers, params: dict[str, str], fields: list[str]
) -> None:
    response = list_tasks(handlers, **params)

    assert response["statusCode"] == 400, response["body"]
    assert [error["field"] for error in body_of(response)["errors"]] == fields


def _a_token(aws: Aws, handlers: Handlers, status: str = "completed") -> str:
    for n in range(3):
        _put(aws, TaskStatus(status), BASE + timedelta(seconds=n))
    token = body_of(list_tasks(handlers, status=status, limit="1"))["next_token"]
    assert token
    return token


def test_a_forged_or_garbled_token_is_a_400_never_another_read(
    aws: Aws, handlers: Handlers
) -> None:
    token = _a_token(aws, handlers)
    payload, mac = token.split(".")
    position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    # Moved to another place, signature kept: a forgery.
    position["after"] = ["2000-01-01T00:00:00Z", str(uuid.uuid4())]
    forged_payload = base64.urlsafe_b64encode(json.dumps(position).encode()).rstrip(b"=").decode()
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (
        f"{forged_payload}.{mac}",
        f"{payload}.{flipped}",
        token[:-3],
        token + "x",
        token.replace(".", "!"),
        "é" + token,
        "x" * 5000,
    ):
        response = list_tasks(handlers, status="completed", next_token=bad)
        assert response["statusCode"] == 400, (bad, response["body"])
        assert [e["field"] for e in body_of(response)["errors"]] == ["next_token"]


def test_a_token_is_only_good_for_its_own_status(aws: Aws, handlers: Handlers) -> None:
    token = _a_token(aws, handlers, "completed")

    response = list_tasks(handlers, status="failed", next_token=token)

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["errors"] == [
        {"field": "next_token", "problem": "belongs to a listing of another status"}
    ]
    assert list_tasks(handlers, status="completed", next_token=token)["statusCode"] == 200
