"""What template.yaml promises: least privilege, one static invoke permission, the table's
safety settings, outputs, and settings that agree with the code."""

from __future__ import annotations

import fnmatch
import uuid
from pathlib import Path

import pytest

from local.template import ROOT, load_template, resources_of_type, with_language_extensions
from task_scheduler.actions.webhook import MAX_TIMEOUT_SECONDS
from task_scheduler.settings import MAX_RULE_PREFIX_LENGTH
from task_scheduler.timing import MAX_IN_PLACE_WAIT
from task_scheduler.triggers import rule_name
from tests.template.linters import cfn_lint, sam_validate_lint

# A rule is "<prefix>-<uuid4>": the pattern matches exactly 36 characters after the prefix, so a
# stack cannot reach the rules of another whose prefix starts with its own (contract section 7).
RULE_ARN = (
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/"
    "${RuleNamePrefix}-????????-????-????-????-????????????"
)
# With TriggerBackend=scheduler: the schedules of the stack's own group (its name has no `/`).
SCHEDULE_ARN = (
    "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/"
    "${TaskScheduleGroup}/*"
)


@pytest.fixture(scope="module")
def template() -> dict:
    """The template as SAM receives it with the default parameters (TriggerBackend=rules)."""
    return with_language_extensions(load_template())


def _function(template: dict, name: str) -> dict:
    return template["Resources"][name]["Properties"]


def _statements(template: dict, name: str) -> list[dict]:
    return [s for policy in _function(template, name)["Policies"] for s in policy["Statement"]]


def test_runtime_is_python_3_13_for_every_function(template: dict) -> None:
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    for props in resources_of_type(template, "AWS::Serverless::Function").values():
        assert props["Properties"].get("Runtime", "python3.13") == "python3.13"


def test_one_static_invoke_permission_scoped_to_the_rule_prefix(template: dict) -> None:
    permissions = resources_of_type(template, "AWS::Lambda::Permission")
    assert len(permissions) == 1
    (permission,) = permissions.values()
    props = permission["Properties"]
    assert props["Principal"] == "events.amazonaws.com"
    assert props["FunctionName"] == {"Fn::GetAtt": ["ExecuteTaskFunction", "Arn"]}
    assert props["SourceArn"] == {"Fn::Sub": RULE_ARN}
    assert "rule/*" not in str(props["SourceArn"])


def _rule_arn_patterns(template: dict) -> list[str]:
    """Every rule ARN pattern the template grants or lets invoke, for the default prefix."""
    subs = [
        statement["Resource"]["Fn::Sub"]
        for function in ("ScheduleTaskFunction", "ExecuteTaskFunction")
        for statement in _statements(template, function)
        if str(statement["Action"]).count("events:")
    ]
    (permission,) = resources_of_type(template, "AWS::Lambda::Permission").values()
    subs.append(permission["Properties"]["SourceArn"]["Fn::Sub"])
    return [
        sub.replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${RuleNamePrefix}", "task-scheduler")
        for sub in subs
    ]


def test_a_stack_cannot_touch_the_rules_of_a_stack_whose_prefix_extends_its_own(
    template: dict,
) -> None:
    def arn(prefix: str) -> str:
        task_id = str(uuid.uuid4())
        return f"arn:aws:events:us-east-1:123456789012:rule/{rule_name(prefix, task_id)}"

    patterns = _rule_arn_patterns(template)
    assert len(patterns) == 3  # the API's and the execute side's rights, the invoke permission
    for pattern in patterns:
        # IAM's and ArnLike's wildcards: `*` any run of characters, `?` any one character.
        assert fnmatch.fnmatchcase(arn("task-scheduler"), pattern)
        for other in ("task-scheduler-staging", "task-scheduler-x", "task-scheduler-1"):
            assert not fnmatch.fnmatchcase(arn(other), pattern), (other, pattern)


@pytest.mark.parametrize("backend", ["rules", "scheduler"])
@pytest.mark.parametrize("function", ["ScheduleTaskFunction", "ExecuteTaskFunction"])
def test_iam_is_least_privilege(function: str, backend: str) -> None:
    template = with_language_extensions(load_template(), {"TriggerBackend": backend})
    for statement in _statements(template, function):
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert "*" not in str(actions)
        if any(a.startswith("events:") for a in actions):
            assert statement["Resource"] == {"Fn::Sub": RULE_ARN}
            assert set(actions) <= {
                "events:PutRule",
                "events:PutTargets",
                "events:RemoveTargets",
                "events:DeleteRule",
                "events:DescribeRule",
            }
        elif any(a.startswith("scheduler:") for a in actions):
            assert statement["Resource"] == {"Fn::Sub": SCHEDULE_ARN}
            assert set(actions) <= {
                "scheduler:CreateSchedule",
                "scheduler:UpdateSchedule",
                "scheduler:DeleteSchedule",
            }
        elif any(a.startswith("iam:") for a in actions):
            assert actions == ["iam:PassRole"]
            assert statement["Resource"] == {"Fn::GetAtt": ["TaskScheduleRole", "Arn"]}
        elif actions == ["dynamodb:Query"]:  # GET /tasks: the listing indexes only
            assert function == "ScheduleTaskFunction"
            assert statement["Resource"] == [
                {"Fn::Sub": "${TasksTable.Arn}/index/by_status_next_run"},
                {"Fn::Sub": "${TasksTable.Arn}/index/by_status_updated"},
            ]
        elif any(a.startswith("dynamodb:") for a in actions):
            assert statement["Resource"] == {"Fn::GetAtt": ["TasksTable", "Arn"]}
            assert not {"dynamodb:Scan", "dynamodb:DeleteTable"} & set(actions)
        elif any(a.startswith("secretsmanager:") for a in actions):
            assert actions == ["secretsmanager:GetSecretValue"]
            assert statement["Resource"] == {"Ref": "WebhookSigningSecret"}
        elif any(a.startswith("sqs:") for a in actions):
            assert actions == ["sqs:SendMessage"]
            retry = {"Fn::GetAtt": ["RetryQueue", "Arn"]}
            dead_letters = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
            # The API function queues near occurrences; only the execute side dead-letters.
            expected = retry if function == "ScheduleTaskFunction" else [retry, dead_letters]
            assert statement["Resource"] == expected
        else:
            raise AssertionError(f"an unexpected statement: {statement}")


def test_the_execute_side_arms_and_removes_only_its_own_rules_and_invokes_nothing(
    template: dict,
) -> None:
    # It arms a recurring task's next occurrence (rule and target, on the stack's own rule
    # names only) and removes a finished task's rule; no function invokes another directly.
    statements = _statements(template, "ExecuteTaskFunction")
    events = [s for s in statements if any(a.startswith("events:") for a in s["Action"])]
    assert len(events) == 1
    assert events[0]["Resource"] == {"Fn::Sub": RULE_ARN}
    assert set(events[0]["Action"]) == {
        "events:PutRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:DeleteRule",
        "events:DescribeRule",
    }
    for function in ("ScheduleTaskFunction", "ExecuteTaskFunction"):
        actions = {a for s in _statements(template, function) for a in s["Action"]}
        assert not {a for a in actions if a.startswith("lambda:")}


def test_tasks_table_is_safe_by_default(template: dict) -> None:
    props = template["Resources"]["TasksTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_powertools_service_and_namespace_are_set(template: dict) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"]


def test_loopback_targets_are_never_allowed_by_the_template() -> None:
    assert "ALLOW_LOOPBACK_TARGETS" not in (ROOT / "template.yaml").read_text()


def test_outputs(template: dict) -> None:
    outputs = template["Outputs"]
    assert outputs["ScheduleTaskEndpoint"]["Value"]["Fn::Sub"].endswith("/schedule-task")
    assert outputs["TasksTableName"]["Value"] == {"Ref": "TasksTable"}
    assert outputs["ScheduleTaskFunctionArn"]["Value"] == {
        "Fn::GetAtt": ["ScheduleTaskFunction", "Arn"]
    }
    assert outputs["ExecuteTaskFunctionArn"]["Value"] == {
        "Fn::GetAtt": ["ExecuteTaskFunction", "Arn"]
    }


def test_rule_prefix_parameter_fits_the_rule_name_limit(template: dict) -> None:
    pattern = template["Parameters"]["RuleNamePrefix"]["AllowedPattern"]
    assert pattern.endswith(f"{{1,{MAX_RULE_PREFIX_LENGTH}}}$")
    assert len(template["Parameters"]["RuleNamePrefix"]["Default"]) <= MAX_RULE_PREFIX_LENGTH


def test_execute_timeout_covers_the_in_place_wait_and_the_slowest_webhook(template: dict) -> None:
    timeout = _function(template, "ExecuteTaskFunction")["Timeout"]
    needed = MAX_IN_PLACE_WAIT.total_seconds() + MAX_TIMEOUT_SECONDS
    assert timeout >= needed + 5


def test_api_routes(template: dict) -> None:
    events = _function(template, "ScheduleTaskFunction")["Events"]
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()}
    assert routes == {
        ("post", "/schedule-task"),
        ("get", "/tasks"),
        ("get", "/tasks/{task_id}"),
        ("delete", "/tasks/{task_id}"),
        ("post", "/tasks/{task_id}/pause"),
        ("post", "/tasks/{task_id}/resume"),
    }


def test_layer_requirements_match_runtime_requirements() -> None:
    def pins(path: Path) -> set[str]:
        lines = path.read_text().splitlines()
        return {line.strip() for line in lines if line.strip() and not line.startswith("#")}

    assert pins(ROOT / "scheduler_layer" / "requirements.txt") == pins(
        ROOT / "requirements" / "runtime.txt"
    )


def test_cfn_lint_is_clean() -> None:
    result = cfn_lint(ROOT / "template.yaml")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_sam_validate_lint_is_clean() -> None:
    result = sam_validate_lint(ROOT / "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_execute_timeout_is_below_the_interrupted_threshold(template: dict) -> None:
    from task_scheduler.model import INTERRUPTED_AFTER

    timeout = _function(template, "ExecuteTaskFunction")["Timeout"]
    assert timeout < INTERRUPTED_AFTER.total_seconds()


def test_the_signing_secret_is_generated_never_written_in_the_template(template: dict) -> None:
    secret = template["Resources"]["WebhookSigningSecret"]["Properties"]
    assert "SecretString" not in secret
    generate = secret["GenerateSecretString"]
    assert generate["GenerateStringKey"] == "key"
    assert generate["ExcludePunctuation"] is True
    assert generate["PasswordLength"] % 4 == 0  # alphanumerics of this length are valid base64
    assert "whsec_" not in (ROOT / "template.yaml").read_text().split("WebhookSigningSecret")[0]


def test_failed_executions_and_tasks_reach_the_dead_letter_queue(template: dict) -> None:
    execute = _function(template, "ExecuteTaskFunction")
    config = execute["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    }
    retry = template["Resources"]["RetryQueue"]["Properties"]
    assert retry["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    assert retry["VisibilityTimeout"] >= 6 * execute["Timeout"]
    alarm = template["Resources"]["DeadLetterAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}


def test_the_retry_queue_feeds_the_execute_function_one_message_at_a_time(template: dict) -> None:
    event = _function(template, "ExecuteTaskFunction")["Events"]["RetryQueue"]
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_reconciler_runs_every_five_minutes_with_narrow_rights(template: dict) -> None:
    reconcile = _function(template, "ReconcileFunction")
    (event,) = reconcile["Events"].values()
    assert event == {
        "Type": "Schedule",
        "Properties": {"Schedule": "rate(5 minutes)", "Description": "The scheduler's reconciler."},
    }
    statements = _statements(template, "ReconcileFunction")
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        ("dynamodb:Query", {"Fn::Sub": "${TasksTable.Arn}/index/by_due"}),
        ("sqs:SendMessage", {"Fn::GetAtt": ["RetryQueue", "Arn"]}),
    ]
    index = template["Resources"]["TasksTable"]["Properties"]["GlobalSecondaryIndexes"][0]
    assert index["IndexName"] == "by_due"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["due_shard", "next_run_at"]
