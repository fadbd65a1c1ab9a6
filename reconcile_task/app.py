"""Reconcile function: every few minutes, hands overdue and interrupted tasks back to the execute
function (see task_scheduler.reconcile). Wiring only."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from task_scheduler import wiring
from task_scheduler.settings import ReconcilerSettings

logger = Logger()
metrics = Metrics()

settings = ReconcilerSettings.from_env()
clients = wiring.ReconcileClients.create()
reconciler = wiring.reconciler(settings, clients)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    report = reconciler.run()
    metrics.add_metric(name="TasksRedispatched", unit=MetricUnit.Count, value=report.redispatched)
    return {"redispatched": report.redispatched, "still_running": report.still_running}
