"""Execute function: runs a task once per occurrence. Invoked with `{"task_id": "..."}` by the
task's EventBridge rule or a direct dispatch, and with SQS records from the retry queue (the
durable waits between attempts). Wiring only; the logic lives in `task_scheduler`."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from task_scheduler import wiring
from task_scheduler.errors import DependencyFailure
from task_scheduler.execution import RunOutcome, RunReport
from task_scheduler.settings import ExecutorSettings

logger = Logger()
metrics = Metrics()

settings = ExecutorSettings.from_env()
clients = wiring.ExecuteClients.create(settings.trigger_backend)
executor = wiring.executor(settings, clients)

_METRIC_FOR_OUTCOME = {
    RunOutcome.COMPLETED: "TaskCompleted",
    RunOutcome.FAILED: "TaskFailed",
    RunOutcome.RESCHEDULED: "RecurringTaskRan",
    RunOutcome.RETRYING: "AttemptRetried",
    RunOutcome.UNKNOWN_TASK: "UnknownTaskEvent",
    RunOutcome.LOST_CLAIM: "DuplicateDelivery",
    RunOutcome.NOT_SCHEDULED: "SkippedEvent",
    RunOutcome.NOT_DUE: "EarlyEvent",
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        return _queue_batch(event["Records"])
    task_id = _task_id(event)
    if task_id is None:
        # Retrying would not make the event any better: log it and return.
        logger.warning("execute event without a task_id; ignoring it", extra={"event": event})
        metrics.add_metric(name="InvalidEvent", unit=MetricUnit.Count, value=1)
        return {"task_id": None, "outcome": "invalid_event"}
    return {"task_id": task_id, "outcome": _run(task_id, requeue_early=False).outcome.value}


def _queue_batch(records: list[dict[str, Any]]) -> dict:
    """SQS records from the retry queue; a failed one is reported so SQS delivers it again."""
    failures = []
    for record in records:
        try:
            body = json.loads(record.get("body") or "null")
        except ValueError:
            body = None
        task_id = _task_id(body)
        if task_id is None:
            logger.warning("queue message without a task_id; dropping it", extra={"body": body})
            metrics.add_metric(name="InvalidEvent", unit=MetricUnit.Count, value=1)
            continue
        try:
            _run(task_id, requeue_early=True)
        except DependencyFailure:
            logger.exception("could not run the task; SQS will deliver it again")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _task_id(event: Any) -> str | None:
    task_id = event.get("task_id") if isinstance(event, dict) else None
    return task_id if isinstance(task_id, str) and task_id else None


def _run(task_id: str, requeue_early: bool) -> RunReport:
    logger.append_keys(task_id=task_id)
    report = executor.run(task_id, requeue_early=requeue_early)
    metric = _METRIC_FOR_OUTCOME.get(report.outcome)
    if metric:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    if report.lateness_ms is not None:
        metrics.add_metric(
            name="StartLateness", unit=MetricUnit.Milliseconds, value=report.lateness_ms
        )
    return report
