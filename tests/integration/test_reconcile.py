"""The reconciler under moto: overdue and interrupted tasks are handed back to the execute
function; healthy ones are left alone; running it twice changes nothing more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from task_scheduler.model import TaskStatus, TriggerKind, new_task
from task_scheduler.storage import TaskStore
from tests.integration.conftest import TABLE_NAME, Aws, Handlers, body_of, context, on_both_backends
from tests.support.receiver import Receiver

pytestmark = on_both_backends


def _task(store: TaskStore, task_id: str, url: str, next_run_at: datetime, now: datetime) -> None:
    task = new_task(
        task_id,
        "webhook",
        {"url": url},
        next_run_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        next_run_at,
        recurring=False,
        now=now,
        trigger=TriggerKind.RULE,
    )
    store.create(task)


def _redispatched(aws: Aws) -> list[str]:
    return sorted(m["body"]["task_id"] for m in aws.queue_messages(aws.retry_queue_url))


LOST = "00000000-0000-4000-8000-000000000001"
STUCK = "00000000-0000-4000-8000-000000000002"
BUSY = "00000000-0000-4000-8000-000000000003"
FUTURE = "00000000-0000-4000-8000-000000000004"
JUST_DUE = "00000000-0000-4000-8000-000000000005"


def test_overdue_and_interrupted_tasks_are_redispatched_once_each(
    aws: Aws, handlers: Handlers, receiver: Receiver
) -> None:
    store = TaskStore(aws.dynamodb, TABLE_NAME)
    now = datetime.now(UTC).replace(microsecond=0)
    url = f"{receiver.url}/hook"
    # Lost its trigger 10 minutes ago.
    _task(store, LOST, url, now - timedelta(minutes=10), now - timedelta(hours=1))
    # Claimed 5 minutes ago by an execution that died.
    _task(store, STUCK, url, now - timedelta(minutes=6), now - timedelta(hours=1))
    assert store.claim(
        STUCK,
        (now - timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        now - timedelta(minutes=5),
    ).claimed
    # Claimed a moment ago: a long run still in progress.
    _task(store, BUSY, url, now - timedelta(minutes=4), now - timedelta(hours=1))
    assert store.claim(
        BUSY, (now - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ"), now
    ).claimed
    # Not due yet, and due a moment ago (its trigger is simply firing now).
    _task(store, FUTURE, url, now + timedelta(hours=1), now)
    _task(store, JUST_DUE, url, now - timedelta(seconds=30), now - timedelta(hours=1))

    assert handlers.reconcile() == {"redispatched": 2, "still_running": 1}
    assert _redispatched(aws) == [LOST, STUCK]

    # What the execute function does with them.
    for message in aws.sqs.receive_message(QueueUrl=aws.retry_queue_url, MaxNumberOfMessages=10)[
        "Messages"
    ]:
        result = handlers.execute.lambda_handler(
            {"Records": [{"messageId": message["MessageId"], "body": message["Body"]}]},
            context(),
        )
        assert result == {"batchItemFailures": []}
    assert body_of(handlers.api("GET", f"/tasks/{LOST}"))["status"] == "completed"
    stuck = body_of(handlers.api("GET", f"/tasks/{STUCK}"))
    assert stuck["status"] == "failed"
    assert stuck["last_error"].startswith("interrupted")
    assert [r.path for r in receiver.requests] == ["/hook"]  # only the lost task was delivered
    assert store.get(BUSY).status is TaskStatus.RUNNING


def test_reconciling_a_healthy_table_does_nothing(aws: Aws, handlers: Handlers) -> None:
    store = TaskStore(aws.dynamodb, TABLE_NAME)
    now = datetime.now(UTC).replace(microsecond=0)
    _task(store, FUTURE, "https://example.com/hook", now + timedelta(days=1), now)
    assert handlers.reconcile() == {"redispatched": 0, "still_running": 0}
    assert handlers.reconcile() == {"redispatched": 0, "still_running": 0}
    assert _redispatched(aws) == []


def test_finished_tasks_leave_the_index(aws: Aws, handlers: Handlers, receiver: Receiver) -> None:
    store = TaskStore(aws.dynamodb, TABLE_NAME)
    now = datetime.now(UTC).replace(microsecond=0)
    _task(
        store, LOST, f"{receiver.url}/hook", now - timedelta(minutes=10), now - timedelta(hours=1)
    )
    assert handlers.run(LOST)["outcome"] == "completed"
    assert handlers.reconcile() == {"redispatched": 0, "still_running": 0}
