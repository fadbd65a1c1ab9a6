"""Both handlers under moto's mock_aws, with the table built from template.yaml."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.moto_fidelity import limit_default_bus_rules, make_dynamodb_writes_atomic
from local.template import create_queues, create_secrets, create_tables, load_template
from tests.support.events import api_event
from tests.support.lambda_runtime import ROOT, FakeLambdaContext, load_handler_module
from tests.support.receiver import Receiver, running_receiver

REGION = "us-east-1"
RULE_PREFIX = "test-sched"
TABLE_NAME = "test-tasks"
EXECUTE_FUNCTION = "execute-task"


_TAKING = threading.Lock()
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Aws:
    dynamodb: Any
    events: Any
    lambda_: Any
    sqs: Any
    execute_function_arn: str
    queues: dict[str, str]
    secret_arn: str

    @property
    def retry_queue_url(self) -> str:
        return self.queues["RetryQueue"]

    @property
    def dead_letter_queue_url(self) -> str:
        return self.queues["DeadLetterQueue"]

    def take_queued(
        self, task_id: str, timeout: float = 70.0, *, required: bool = True
    ) -> dict[str, Any] | None:
        """Plays SQS and Lambda's event source for the task's next message in the retry queue:
        waits until its delay has passed, removes it, and returns its body (the event the
        execute function gets). The soonest one first, when there are several."""
        from moto.sqs.models import sqs_backends

        name = self.retry_queue_url.rsplit("/", 1)[1]
        queue = sqs_backends["123456789012"][REGION].queues[name]
        with _TAKING:  # one message goes to one taker, as SQS's visibility does
            mine = [m for m in queue._messages if json.loads(m.body).get("task_id") == task_id]
            if not mine and not required:
                return None
            assert mine, f"no message for {task_id} in the retry queue"
            message = min(mine, key=lambda m: m.delayed_until or 0)
            queue._messages.remove(message)
        visible_at = (message.delayed_until or 0) / 1000
        assert visible_at - time.time() <= timeout, "its delay is longer than the test waits"
        while time.time() < visible_at:
            time.sleep(min(0.05, max(0.001, visible_at - time.time())))
        return json.loads(message.body)

    def queue_messages(self, url: str) -> list[dict[str, Any]]:
        """Every message in the queue now, delay or no delay (read through moto's backend)."""
        from moto.sqs.models import sqs_backends

        name = url.rsplit("/", 1)[1]
        queue = sqs_backends["123456789012"][REGION].queues[name]
        return [
            {
                "body": json.loads(m.body),
                "delay_seconds": round((m.delayed_until - m.sent_timestamp) / 1000)
                if m.delayed_until
                else 0,
            }
            for m in queue._messages
        ]

    def item(self, task_id: str) -> dict[str, Any] | None:
        return self.dynamodb.get_item(TableName=TABLE_NAME, Key={"task_id": {"S": task_id}}).get(
            "Item"
        )

    def rule_names(self) -> list[str]:
        return [r["Name"] for r in self.events.list_rules(NamePrefix=RULE_PREFIX)["Rules"]]

    def schedules(self) -> dict[str, dict[str, Any]]:
        """The schedules of the test group, by name, as GetSchedule answers."""
        client = boto3.client("scheduler", region_name=REGION)
        names = [s["Name"] for s in client.list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"]]
        return {
            name: {
                key: value
                for key, value in client.get_schedule(Name=name, GroupName=SCHEDULE_GROUP).items()
                if key != "ResponseMetadata"
            }
            for name in names
        }

    def triggers(self) -> list[str]:
        """Every armed trigger, whichever the backend: rule names and schedule names."""
        client = boto3.client("scheduler", region_name=REGION)
        groups = [g["Name"] for g in client.list_schedule_groups()["ScheduleGroups"]]
        return self.rule_names() + (list(self.schedules()) if SCHEDULE_GROUP in groups else [])

    def table_is_empty(self) -> bool:
        return self.dynamodb.scan(TableName=TABLE_NAME)["Count"] == 0


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[Aws]:
    # Lambda without Docker: a direct dispatch is accepted by moto but runs nothing, and the tests
    # play the part of Lambda by invoking the execute handler themselves.
    make_dynamodb_writes_atomic()
    limit_default_bus_rules(None)  # a test that needs EventBridge's quota sets its own
    with mock_aws(config={"lambda": {"use_docker": False}}):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        template = load_template()
        create_tables(dynamodb, template, {"TasksTable": TABLE_NAME})
        sqs = boto3.client("sqs", region_name=REGION)
        queues = create_queues(sqs, template, {})
        secret_arn = create_secrets(
            boto3.client("secretsmanager", region_name=REGION),
            template,
            {},
            {"WebhookSigningSecret": json.dumps({"key": SIGNING_SECRET.removeprefix("whsec_")})},
        )["WebhookSigningSecret"]
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="execute-task-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        lambda_ = boto3.client("lambda", region_name=REGION)
        arn = lambda_.create_function(
            FunctionName=EXECUTE_FUNCTION,
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": _empty_zip()},
        )["FunctionArn"]
        yield Aws(
            dynamodb,
            boto3.client("events", region_name=REGION),
            lambda_,
            sqs,
            arn,
            queues,
            secret_arn,
        )


def _empty_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    return buffer.getvalue()


@dataclass
class Handlers:
    schedule: ModuleType
    execute: ModuleType
    aws: Aws

    def reconcile(self) -> dict[str, Any]:
        module = load_handler_module(ROOT / "reconcile_task")
        return module.lambda_handler({"source": "aws.events"}, context())

    def api(self, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        return self.schedule.lambda_handler(api_event(method, path, body, **kwargs), context())

    def api_event(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.schedule.lambda_handler(event, context())

    def run(self, task_id: str, due: str | None = None, *, follow: bool = True) -> dict[str, Any]:
        """What Lambda does with the task's next event: the message the queue holds for it (a
        near occurrence, a hop, a retry) once its delay has passed, or else the event of a rule
        or schedule (`due`: the occurrence it carries; without it the execute function reads the
        task's). `follow`: an early event is sent on through the queue ("waiting"); play SQS
        for it and run what arrives, until an outcome that is not waiting."""
        event = self.aws.take_queued(task_id, required=False) if due is None else None
        if event is None:
            event = {"task_id": task_id} if due is None else {"task_id": task_id, "due": due}
        outcome = self.execute.lambda_handler(event, context())
        while follow and outcome["outcome"] == "waiting":
            hop = self.aws.take_queued(task_id, required=False)
            if hop is None:  # another invocation took it, as SQS hands a message to one
                break
            outcome = self.execute.lambda_handler(hop, context())
        return outcome


def context() -> FakeLambdaContext:
    return FakeLambdaContext()


SCHEDULE_GROUP = "test-sched-group"
SCHEDULER_ROLE_ARN = "arn:aws:iam::123456789012:role/test-scheduler-invokes-execute"
BACKENDS = ("rules", "scheduler")


@pytest.fixture
def trigger_backend(request: pytest.FixtureRequest) -> str:
    """The functions' TriggerBackend: `rules` unless a test module runs on both, with
    `pytestmark = on_both_backends`."""
    return getattr(request, "param", "rules")


# `pytestmark = on_both_backends`: every test of the module that runs the functions runs once
# per trigger backend (contract section 7: same API, same guarantees).
on_both_backends = pytest.mark.both_backends


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marked = metafunc.definition.get_closest_marker("both_backends") is not None
    if marked and "trigger_backend" in metafunc.fixturenames:
        metafunc.parametrize("trigger_backend", BACKENDS, indirect=True)


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch, aws: Aws, trigger_backend: str) -> None:
    if trigger_backend == "scheduler":
        boto3.client("scheduler", region_name=REGION).create_schedule_group(Name=SCHEDULE_GROUP)
        monkeypatch.setenv("TRIGGER_BACKEND", "scheduler")
        monkeypatch.setenv("SCHEDULE_GROUP_NAME", SCHEDULE_GROUP)
        monkeypatch.setenv("SCHEDULER_ROLE_ARN", SCHEDULER_ROLE_ARN)
        dead_letters = aws.sqs.get_queue_attributes(
            QueueUrl=aws.dead_letter_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        monkeypatch.setenv("DEAD_LETTER_QUEUE_ARN", dead_letters)
    else:
        monkeypatch.delenv("TRIGGER_BACKEND", raising=False)
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    monkeypatch.setenv("RULE_NAME_PREFIX", RULE_PREFIX)
    monkeypatch.setenv("EXECUTE_FUNCTION_ARN", aws.execute_function_arn)
    # What Lambda and the template give the execute function to name itself.
    prefix, _, name = aws.execute_function_arn.rpartition(":")
    monkeypatch.setenv("FUNCTION_ARN_PREFIX", prefix + ":")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", name)
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", aws.secret_arn)
    monkeypatch.setenv("RETRY_QUEUE_URL", aws.retry_queue_url)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", aws.dead_letter_queue_url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "task-scheduler")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ServerlessTaskScheduler")
    monkeypatch.setenv("ALLOW_LOOPBACK_TARGETS", "true")


@pytest.fixture
def handlers(function_env: None, aws: Aws) -> Handlers:
    return Handlers(
        schedule=load_handler_module(ROOT / "schedule_task"),
        execute=load_handler_module(ROOT / "execute_task"),
        aws=aws,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def sqs_event(message: dict[str, Any]) -> dict[str, Any]:
    """The event Lambda's SQS event source builds from a message of the retry queue."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:RetryQueue",
                "awsRegion": REGION,
            }
        ]
    }


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])
