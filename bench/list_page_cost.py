"""What one `GET /tasks` page reads, as the table grows: DynamoDB queries made and index entries
they read (the `ScannedCount` each query answers), counted on the real listing code under moto.

Run: `.venv/bin/python bench/list_page_cost.py`. The table gets N completed tasks, N scheduled
tasks and N cancelled ones for each N; a page of `completed` and one of `scheduled` are read with
limit 50: the first page and one in the middle. Prints one line per N and listing. A scan would
read every item; a page here reads at most 4 shards x limit entries whatever N is.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_setup import use_fake_aws, use_this_checkout

use_this_checkout()
use_fake_aws()

import boto3  # noqa: E402 - after the environment above
from moto import mock_aws  # noqa: E402

from local.template import create_tables, load_template  # noqa: E402
from task_scheduler.model import Task, TaskStatus  # noqa: E402
from task_scheduler.page_tokens import PageTokens, TableKey  # noqa: E402
from task_scheduler.task_items import to_item  # noqa: E402
from task_scheduler.task_listing import TaskListing, parse_list_query  # noqa: E402
from task_scheduler.timing import format_utc  # noqa: E402

TABLE = "bench-tasks"
SIZES = (200, 2_000)
LIMIT = "50"
BASE = datetime(2090, 1, 1, tzinfo=UTC)


class Counting:
    """The DynamoDB client, counting queries and the entries they read."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.queries = 0
        self.read = 0

    def query(self, **kwargs: Any) -> Any:
        answer = self._client.query(**kwargs)
        self.queries += 1
        self.read += answer["ScannedCount"]
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _fill(client: Any, count: int) -> None:
    for n in range(count):
        for status in (TaskStatus.COMPLETED, TaskStatus.SCHEDULED, TaskStatus.CANCELLED):
            when = format_utc(BASE + timedelta(seconds=n))
            waiting = status is TaskStatus.SCHEDULED
            task = Task(
                task_id=str(uuid.uuid4()),
                action="webhook",
                payload={"url": "https://example.com/hook"},
                run_at=when,
                status=status,
                created_at=when,
                updated_at=when,
                next_run_at=when if waiting else None,
            )
            client.put_item(TableName=TABLE, Item=to_item(task))


def main() -> None:
    sys.stdout.write(f"GET /tasks page cost (limit {LIMIT}), under moto:\n")
    for size in SIZES:
        with mock_aws():
            client = boto3.client("dynamodb")
            create_tables(client, load_template(), {"TasksTable": TABLE})
            _fill(client, size)
            counting = Counting(client)
            tokens = PageTokens(TableKey(client, TABLE))
            listing = TaskListing(counting, TABLE, tokens)
            for status in ("completed", "scheduled"):
                params = {"status": status, "limit": LIMIT}
                counting.queries = counting.read = 0
                page = listing.page(parse_list_query(params, tokens))
                _print(size, status, "first page", page, counting)
                for _ in range(size // 100 - 1):  # on to the middle of the listing
                    assert page.next_token
                    query = parse_list_query({**params, "next_token": page.next_token}, tokens)
                    counting.queries = counting.read = 0
                    page = listing.page(query)
                _print(size, status, "middle page", page, counting)


def _print(size: int, status: str, which: str, page: Any, counting: Counting) -> None:
    sys.stdout.write(
        f"  {3 * size:>6} items, status={status:<9} {which:<11}: {len(page.tasks)} listed, "
        f"{counting.queries} queries, {counting.read} index entries read\n"
    )


if __name__ == "__main__":
    main()
