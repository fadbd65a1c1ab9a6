"""`GET /tasks` (contract section 3): one status's tasks, a page at a time, read from an index,
never a scan, so a page costs the same whatever the table holds.

Two indexes, both keyed by (status, listing_shard) and sorted by (time, task_id): in
`by_status_next_run` the time is `next_run_at` (waiting tasks, listed soonest first), in
`by_status_updated` it is `updated_at` (running and finished ones, newest first). The shard
spreads each status over LISTING_SHARDS partitions (task_items): every change of state writes at
one end of its status's range, so with one partition per status the busiest status would take
every write in one place (and a throttled index throttles the table's writes). A page queries
each shard for up to `limit` entries after the position and merges them.

The position between pages is the (time, task_id) of the last entry handed out; (time, task_id)
is unique, so following `next_token` hands out every entry once and in order: an entry is handed
out only when no shard can still hold one before it. A task added meanwhile is listed if it sorts
after the position; one whose time changes (a recurring task that runs) may move past it."""

from __future__ import annotations

import heapq
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from task_scheduler import aws
from task_scheduler.errors import FieldProblem, InvalidRequest, quote
from task_scheduler.model import TaskStatus
from task_scheduler.page_tokens import PageTokens, bad_token
from task_scheduler.task_items import LISTING_SHARDS, attributes, plain

NEXT_RUN_INDEX = "by_status_next_run"
UPDATED_INDEX = "by_status_updated"
DEFAULT_STATUS = TaskStatus.SCHEDULED
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Tasks that wait are listed by next run, soonest first; the others by last update, newest first.
WAITING = (TaskStatus.SCHEDULED, TaskStatus.PAUSED)
LISTABLE = (
    TaskStatus.SCHEDULED,
    TaskStatus.PAUSED,
    TaskStatus.RUNNING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)
_LIMIT = re.compile(r"^[0-9]{1,3}$")
_STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass(frozen=True)
class ListQuery:
    status: TaskStatus
    limit: int
    after: tuple[str, str] | None = None  # the (time, task_id) of the last entry handed out

    @property
    def waiting(self) -> bool:
        return self.status in WAITING

    @property
    def sort_attribute(self) -> str:
        return "next_run_at" if self.waiting else "updated_at"


@dataclass(frozen=True)
class TaskSummary:
    """What a listing shows of a task (the index's projection)."""

    task_id: str
    action: str
    status: TaskStatus
    run_at: str
    created_at: str
    updated_at: str
    next_run_at: str | None
    timezone: str | None  # cron tasks only


@dataclass(frozen=True)
class TaskPage:
    tasks: list[TaskSummary]
    next_token: str | None


def parse_list_query(params: Mapping[str, str] | None, tokens: PageTokens) -> ListQuery:
    """The query string as a ListQuery; one InvalidRequest names every bad parameter."""
    params = params or {}
    problems: list[FieldProblem] = []
    status = _status(params.get("status"), problems)
    limit = _limit(params.get("limit"), problems)
    after = None
    token = params.get("next_token")
    if token is not None:
        try:
            after = _position(tokens.read(token), status)
        except InvalidRequest as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidRequest(problems)
    assert status is not None
    assert limit is not None
    return ListQuery(status, limit, after)


def _status(raw: str | None, problems: list[FieldProblem]) -> TaskStatus | None:
    if raw is None:
        return DEFAULT_STATUS
    for status in LISTABLE:
        if raw == status.value:
            return status
    names = ", ".join(status.value for status in LISTABLE)
    problems.append(FieldProblem("status", f"must be one of {names}, not {quote(raw)!r}"))
    return None


def _limit(raw: str | None, problems: list[FieldProblem]) -> int | None:
    if raw is None:
        return DEFAULT_LIMIT
    if _LIMIT.match(raw) and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    problems.append(FieldProblem("limit", f"must be a whole number from 1 to {MAX_LIMIT}"))
    return None


def _position(token: dict[str, Any], status: TaskStatus | None) -> tuple[str, str]:
    """The position a verified token holds, which must be one of this listing."""
    after = token.get("after")
    if not (
        token.get("v") == 1
        and isinstance(after, list)
        and len(after) == 2
        and isinstance(after[0], str)
        and _STORED_TIME.match(after[0])
        and isinstance(after[1], str)
        and _is_uuid(after[1])
    ):
        raise bad_token()
    if status is not None and token.get("status") != status.value:
        raise InvalidRequest([FieldProblem("next_token", "belongs to a listing of another status")])
    return (after[0], after[1])


class TaskListing:
    def __init__(self, client: Any, table_name: str, tokens: PageTokens) -> None:
        self._client = client
        self._table = table_name
        self._tokens = tokens

    def query(self, params: Mapping[str, str] | None) -> ListQuery:
        return parse_list_query(params, self._tokens)

    def page(self, query: ListQuery) -> TaskPage:
        fetched = [self._fetch(query, shard) for shard in range(LISTING_SHARDS)]
        horizon = _horizon([stopped for _, stopped in fetched], query.waiting)
        merged = heapq.merge(
            *(entries for entries, _ in fetched),
            key=lambda entry: _key(entry, query),
            reverse=not query.waiting,
        )
        taken: list[dict[str, Any]] = []
        for entry in merged:
            if len(taken) == query.limit or _beyond(_key(entry, query), horizon, query.waiting):
                break
            taken.append(entry)
        more = horizon is not None or len(taken) < sum(len(entries) for entries, _ in fetched)
        if not more:
            return TaskPage([_summary(entry) for entry in taken], None)
        # Nothing handed out only when a shard stopped before reading anything: go on from there.
        after = _key(taken[-1], query) if taken else horizon
        token = self._tokens.issue({"v": 1, "status": query.status.value, "after": after})
        return TaskPage([_summary(entry) for entry in taken], token)

    def _fetch(
        self, query: ListQuery, shard: int
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """Up to `limit` entries of one shard after the position, in order, and where the read
        stopped when more may follow."""
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": NEXT_RUN_INDEX if query.waiting else UPDATED_INDEX,
            "KeyConditionExpression": "#status = :status AND listing_shard = :shard",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": attributes(
                {":status": query.status.value, ":shard": str(shard)}
            ),
            "ScanIndexForward": query.waiting,
            "Limit": query.limit,
        }
        if query.after is not None:
            # The position as a key of this shard: the query goes on from there, whichever
            # shard the entry it came from is in.
            time, task_id = query.after
            arguments["ExclusiveStartKey"] = attributes(
                {
                    "task_id": task_id,
                    "status": query.status.value,
                    "listing_shard": str(shard),
                    query.sort_attribute: time,
                }
            )
        answer = aws.call("DynamoDB", "list the tasks", self._client.query, **arguments)
        entries = [plain(item) for item in answer.get("Items", [])]
        stopped_at = answer.get("LastEvaluatedKey")
        return entries, (_key(plain(stopped_at), query) if stopped_at else None)


def _key(entry: dict[str, Any], query: ListQuery) -> tuple[str, str]:
    return (entry[query.sort_attribute], entry["task_id"])


def _horizon(stops: list[tuple[str, str] | None], waiting: bool) -> tuple[str, str] | None:
    """How far every shard has been read: beyond it, a shard that stopped early may hold
    entries not read yet. None when every shard was read to its end."""
    bounds = [stop for stop in stops if stop is not None]
    if not bounds:
        return None
    return min(bounds) if waiting else max(bounds)


def _beyond(key: tuple[str, str], horizon: tuple[str, str] | None, waiting: bool) -> bool:
    if horizon is None:
        return False
    return key > horizon if waiting else key < horizon


def _summary(entry: dict[str, Any]) -> TaskSummary:
    status = TaskStatus(entry["status"])
    return TaskSummary(
        task_id=entry["task_id"],
        action=entry["action"],
        status=status,
        run_at=entry["run_at"],
        created_at=entry["created_at"],
        updated_at=entry["updated_at"],
        # A paused task has no next run until it is resumed (it keeps the one it was paused
        # before only to keep its place in the listing).
        next_run_at=None if status is TaskStatus.PAUSED else entry.get("next_run_at"),
        timezone=entry.get("timezone"),
    )


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
