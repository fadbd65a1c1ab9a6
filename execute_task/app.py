"""Execute function: invoked by a task's EventBridge rule (or a direct dispatch) with
`{"task_id": "..."}`; runs the task once. Wiring only; the logic lives in `task_scheduler`."""

from __future__ import annotations

from datetime import timedelta

import requests
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from task_scheduler.actions import build_registry
from task_scheduler.aws import client
from task_scheduler.clock import SystemClock
from task_scheduler.delivery import HttpWebhookDeliverer
from task_scheduler.service import Executor, RunOutcome
from task_scheduler.settings import ExecutorSettings
from task_scheduler.storage import TaskStore
from task_scheduler.triggers import EventBridgeTriggers

logger = Logger()
metrics = Metrics()

settings = ExecutorSettings.from_env()
executor = Executor(
    store=TaskStore(client("dynamodb"), settings.table_name),
    triggers=EventBridgeTriggers(client("events"), None, settings.rule_name_prefix, None),
    actions=build_registry(webhook_deliverer=HttpWebhookDeliverer(requests.Session())),
    clock=SystemClock(),
    retention=timedelta(days=settings.finished_task_retention_days),
)

_METRIC_FOR_OUTCOME = {
    RunOutcome.COMPLETED: "TaskCompleted",
    RunOutcome.FAILED: "TaskFailed",
    RunOutcome.RESCHEDULED: "RecurringTaskRan",
    RunOutcome.UNKNOWN_TASK: "UnknownTaskEvent",
    RunOutcome.LOST_CLAIM: "DuplicateDelivery",
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    task_id = event.get("task_id") if isinstance(event, dict) else None
    if not isinstance(task_id, str) or not task_id:
        # Retrying would not make the event any better: log it and return.
        logger.warning("execute event without a task_id; ignoring it", extra={"event": event})
        return {"task_id": None, "outcome": "invalid_event"}
    logger.append_keys(task_id=task_id)
    report = executor.run(task_id)
    metric = _METRIC_FOR_OUTCOME.get(report.outcome)
    if metric:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    if report.lateness_ms is not None:
        metrics.add_metric(
            name="StartLateness", unit=MetricUnit.Milliseconds, value=report.lateness_ms
        )
    return {"task_id": task_id, "outcome": report.outcome.value}
