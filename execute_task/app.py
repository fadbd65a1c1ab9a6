"""Execute function: runs a task once per occurrence. Invoked with `{"task_id": "...", "due":
"..."}` by the task's EventBridge rule or schedule, shortly before the occurrence, and with SQS
records carrying the same from the queue (near occurrences, the last seconds before one, the
waits between attempts). Wiring only; the logic lives in `task_scheduler`."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from task_scheduler import wiring
from task_scheduler.errors import DependencyFailure
from task_scheduler.execute_events import ExecuteEvent, parse_execute_event
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
    RunOutcome.NOT_DUE: "StaleEvent",
    RunOutcome.WAITING: "QueuedUntilDue",
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        return _queue_batch(event["Records"])
    execute_event = parse_execute_event(event)
    if execute_event is None:
        # Retrying would not make the event any better: log it and return.
        logger.warning("execute event without a task_id; ignoring it", extra={"event": event})
        metrics.add_metric(name="InvalidEvent", unit=MetricUnit.Count, value=1)
        return {"task_id": None, "outcome": "invalid_event"}
    return {"task_id": execute_event.task_id, "outcome": _run(execute_event).outcome.value}


def _queue_batch(records: list[dict[str, Any]]) -> dict:
    """SQS records from the retry queue; a failed one is reported so SQS delivers it again."""
    failures = []
    for record in records:
        try:
            body = json.loads(record.get("body") or "null")
        except ValueError:
            body = None
        execute_event = parse_execute_event(body)
        if execute_event is None:
            logger.warning("queue message without a task_id; dropping it", extra={"body": body})
            metrics.add_metric(name="InvalidEvent", unit=MetricUnit.Count, value=1)
            continue
        try:
            _run(execute_event)
        except DependencyFailure:
            logger.exception("could not run the task; SQS will deliver it again")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _run(event: ExecuteEvent) -> RunReport:
    logger.append_keys(task_id=event.task_id)
    report = executor.run(event)
    metric = _METRIC_FOR_OUTCOME.get(report.outcome)
    if metric:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    if report.lateness_ms is not None:
        metrics.add_metric(
            name="StartLateness", unit=MetricUnit.Milliseconds, value=report.lateness_ms
        )
    return report
