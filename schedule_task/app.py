"""API function: `POST /schedule-task`, `GET /tasks`, `GET /tasks/{task_id}`,
`DELETE /tasks/{task_id}`, `POST /tasks/{task_id}/pause` and `POST /tasks/{task_id}/resume`.
Wiring only; the logic lives in the `task_scheduler` package (the SchedulerLayer)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from task_scheduler import wiring
from task_scheduler.errors import SchedulerError, TaskNotFound, quote
from task_scheduler.http_errors import error_body, status_for
from task_scheduler.idempotency import KEY_HEADER, REPLAYED_HEADER, Answer, parse_key
from task_scheduler.model import TaskStatus
from task_scheduler.responses import (
    cancelled_answer,
    listed_tasks,
    paused_answer,
    resumed_answer,
    scheduled_answer,
    task_view,
)
from task_scheduler.schedule_request import decode_event_body
from task_scheduler.scheduling import Scheduler, new_task_id
from task_scheduler.settings import ApiSettings

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()

settings = ApiSettings.from_env()
clients = wiring.ApiClients.create(settings.trigger_backend)


def logged(task_id: str) -> str:
    """`task_id`, added to every log line of the rest of this request."""
    logger.append_keys(task_id=task_id)
    return task_id


def new_task_id_logged() -> str:
    return logged(new_task_id())


api = wiring.api(settings, clients, new_id=new_task_id_logged)


@app.post("/schedule-task")
def schedule_task() -> Response:
    event = app.current_event
    key = parse_key(event.headers.get(KEY_HEADER))
    body = decode_event_body(event.body, event.is_base64_encoded)
    content_type = event.headers.get("content-type")

    def create(scheduler: Scheduler) -> Answer:
        task = scheduler.schedule(api.command(body, content_type))
        metrics.add_metric(name="TaskScheduled", unit=MetricUnit.Count, value=1)
        return Answer(201, scheduled_answer(task))

    if key is None:
        answer = create(api.scheduler)
    else:
        answer = api.idempotent_creates.handle(
            key,
            body,
            create=lambda task_id: create(api.scheduler_with_id(logged(task_id))),
            created=created_answer,
        )
    headers = {}
    if answer.replayed:
        metrics.add_metric(name="IdempotentReplay", unit=MetricUnit.Count, value=1)
        headers[REPLAYED_HEADER] = "true"
    return Response(answer.status, "application/json", answer.body, headers)


def created_answer(task_id: str) -> Answer | None:
    """The 201 a request that died after creating this task would have answered, if it did."""
    try:
        task = api.scheduler.get(task_id)
    except TaskNotFound:
        return None
    return Answer(201, scheduled_answer(task.with_changes(status=TaskStatus.SCHEDULED)))


@app.get("/tasks")
def list_tasks() -> dict:
    query = api.listing.query(app.current_event.query_string_parameters)
    page = api.listing.page(query)
    metrics.add_metric(name="TasksListed", unit=MetricUnit.Count, value=1)
    return listed_tasks(page)


@app.get("/tasks/<task_id>")
def get_task(task_id: str) -> dict:
    logger.append_keys(task_id=task_id)
    task = api.scheduler.get(task_id)
    metrics.add_metric(name="TaskRead", unit=MetricUnit.Count, value=1)
    return task_view(task)


@app.delete("/tasks/<task_id>")
def cancel_task(task_id: str) -> dict:
    logger.append_keys(task_id=task_id)
    task = api.scheduler.cancel(task_id)
    metrics.add_metric(name="TaskCancelled", unit=MetricUnit.Count, value=1)
    return cancelled_answer(task)


@app.post("/tasks/<task_id>/pause")
def pause_task(task_id: str) -> dict:
    logger.append_keys(task_id=task_id)
    task = api.scheduler.pause(task_id)
    metrics.add_metric(name="TaskPaused", unit=MetricUnit.Count, value=1)
    return paused_answer(task)


@app.post("/tasks/<task_id>/resume")
def resume_task(task_id: str) -> dict:
    logger.append_keys(task_id=task_id)
    task = api.scheduler.resume(task_id)
    metrics.add_metric(name="TaskResumed", unit=MetricUnit.Count, value=1)
    return resumed_answer(task)


@app.exception_handler(SchedulerError)
def handle_scheduler_error(error: SchedulerError) -> Response:
    status = status_for(error)
    if status >= 500:
        logger.error("request failed on a dependency", exc_info=error)
        metrics.add_metric(name="DependencyFailure", unit=MetricUnit.Count, value=1)
    else:
        logger.info("request rejected", extra={"status": status, "error": error_body(error)})
        metrics.add_metric(name="RequestRejected", unit=MetricUnit.Count, value=1)
    return Response(status_code=status, content_type="application/json", body=error_body(error))


@app.not_found
def handle_not_found(_: Exception) -> Response:
    event = app.current_event
    metrics.add_metric(name="RequestRejected", unit=MetricUnit.Count, value=1)
    return Response(
        status_code=404,
        content_type="application/json",
        body={"message": f"No route for {event.http_method} {quote(event.path)}."},
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
