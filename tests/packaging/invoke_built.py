"""Imports the `sam build` artifact (not the source tree) and runs it end to end under moto.

Run by test_sam_build.py in a fresh interpreter whose import path holds only the built function
and layer folders, then the venv (for moto and boto3, which Lambda's runtime provides).
Usage: python invoke_built.py BUILD_DIR REPO_ROOT; prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import datetime
from pathlib import Path


def main() -> None:
    build_dir, repo_root = Path(sys.argv[1]), Path(sys.argv[2])
    layer = build_dir / "SchedulerLayer" / "python"
    sys.path[:0] = [str(layer)]
    sys.path.append(str(repo_root))  # last: only for tests.support and local.template

    import boto3
    from moto import mock_aws

    import task_scheduler
    from local.functions import import_handler
    from local.template import create_queues, create_secrets, create_tables, load_template
    from tests.support.events import api_event
    from tests.support.lambda_runtime import FakeLambdaContext
    from tests.support.receiver import running_receiver
    from tests.support.timing import beyond_the_queue, seconds_from_now

    seen: dict = {"task_scheduler_file": task_scheduler.__file__}
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "built-tasks",
        "RULE_NAME_PREFIX": "built",
        "EXECUTE_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:built-execute",
        "FUNCTION_ARN_PREFIX": "arn:aws:lambda:us-east-1:123456789012:function:",
        "AWS_LAMBDA_FUNCTION_NAME": "built-execute",
        "POWERTOOLS_SERVICE_NAME": "task-scheduler",
        "POWERTOOLS_METRICS_NAMESPACE": "ServerlessTaskScheduler",
        "ALLOW_LOOPBACK_TARGETS": "true",  # the receiver is on 127.0.0.1
    }
    os.environ.update(env)
    with mock_aws(), running_receiver() as receiver:
        dynamodb = boto3.client("dynamodb")
        template = load_template(build_dir / "template.yaml")
        create_tables(dynamodb, template, {"TasksTable": "built-tasks"})
        queues = create_queues(boto3.client("sqs"), template, {})
        secrets = create_secrets(boto3.client("secretsmanager"), template, {}, {})
        os.environ.update(
            {
                "WEBHOOK_SECRET_ARN": secrets["WebhookSigningSecret"],
                "RETRY_QUEUE_URL": queues["RetryQueue"],
                "DEAD_LETTER_QUEUE_URL": queues["DeadLetterQueue"],
            }
        )
        schedule = import_handler(build_dir / "ScheduleTaskFunction" / "app.py")
        execute = import_handler(build_dir / "ExecuteTaskFunction" / "app.py")
        seen["handler_files"] = [schedule.__file__, execute.__file__]

        def schedule_at(run_at: str) -> str:
            body = {
                "action": "webhook",
                "payload": {
                    "url": f"{receiver.url}/hooks/report",
                    "data": {"msg": "Hello from Lambda"},
                },
                "run_at": run_at,
            }
            response = schedule.lambda_handler(
                api_event("POST", "/schedule-task", body), FakeLambdaContext()
            )
            seen.setdefault("schedule_status", []).append(response["statusCode"])
            return json.loads(response["body"])

        # A far task: a rule two minutes before it, carrying the occurrence.
        far = schedule_at(beyond_the_queue().strftime("%Y-%m-%dT%H:%M:%SZ"))
        events = boto3.client("events")
        rule_name = f"built-{far['task_id']}"
        seen["far"] = far
        seen["rule_expression"] = events.describe_rule(Name=rule_name)["ScheduleExpression"]
        (target,) = events.list_targets_by_rule(Rule=rule_name)["Targets"]
        seen["target_input"] = target["Input"]

        # A near task: a message of the retry queue, delivered as Lambda's SQS source does.
        run_at = seconds_from_now(2)
        answer = schedule_at(run_at)
        task_id = answer["task_id"]
        seen["answer"] = answer
        sqs = boto3.client("sqs")
        messages: list = []
        while not messages:
            messages = sqs.receive_message(
                QueueUrl=queues["RetryQueue"], WaitTimeSeconds=1, MaxNumberOfMessages=1
            ).get("Messages", [])
        (message,) = messages
        seen["message_body"] = message["Body"]
        record = {"messageId": message["MessageId"], "body": message["Body"]}
        seen["execute_outcome"] = execute.lambda_handler({"Records": [record]}, FakeLambdaContext())
        run_at_time = datetime.fromisoformat(run_at)
        seen["deliveries"] = [
            {
                "path": r.path,
                "body": r.body.decode(),
                "early": r.received_at < run_at_time,
                "signed": r.headers.get("webhook-signature", "").startswith("v1,"),
            }
            for r in receiver.wait_for(1, timeout=5)
        ]
        task = json.loads(
            schedule.lambda_handler(api_event("GET", f"/tasks/{task_id}"), FakeLambdaContext())[
                "body"
            ]
        )
        seen["task_status"] = task["status"]
        seen["rules_left"] = [r["Name"] for r in events.list_rules(NamePrefix="built")["Rules"]]
        seen["far_task_id"] = far["task_id"]
        unknown = schedule.lambda_handler(
            api_event("GET", f"/tasks/{uuid.uuid4()}"), FakeLambdaContext()
        )
        seen["unknown_status"] = unknown["statusCode"]
    sys.stdout.write(json.dumps(seen) + "\n")


if __name__ == "__main__":
    main()
