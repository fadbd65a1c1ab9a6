"""The `by_due` index of the tasks table: what the reconciler reads. A task is in it from
`scheduled` until it finishes (when `next_run_at` goes), spread over a few partitions so that no
single one is hot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from task_scheduler import aws
from task_scheduler.model import TaskStatus
from task_scheduler.ports import DueEntry
from task_scheduler.task_items import attributes, plain, shard_of

DUE_INDEX = "by_due"
DUE_SHARDS = 4
_PAGE_SIZE = 100


def due_shard(task_id: str) -> str:
    return shard_of(task_id, DUE_SHARDS)


class DueIndex:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def overdue(self, before: str) -> Iterator[DueEntry]:
        """Tasks whose `next_run_at` is earlier than `before`: shard by shard, oldest first."""
        for shard in range(DUE_SHARDS):
            yield from self._overdue_in(str(shard), before)

    def _overdue_in(self, shard: str, before: str) -> Iterator[DueEntry]:
        start_key = None
        while True:
            arguments: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "due_shard = :shard AND next_run_at < :before",
                "ExpressionAttributeValues": attributes({":shard": shard, ":before": before}),
                "Limit": _PAGE_SIZE,
            }
            if start_key:
                arguments["ExclusiveStartKey"] = start_key
            page = aws.call("DynamoDB", "list overdue tasks", self._client.query, **arguments)
            for item in map(plain, page.get("Items", [])):
                yield DueEntry(
                    task_id=item["task_id"],
                    status=TaskStatus(item["status"]),
                    next_run_at=item["next_run_at"],
                    updated_at=item["updated_at"],
                )
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                return
