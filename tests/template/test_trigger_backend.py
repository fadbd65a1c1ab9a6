"""The trigger backend (TriggerBackend) as deployed, for each value: AWS::LanguageExtensions
resolves the template's Fn::If, the SAM transform expands the functions (both run here offline)
and CloudFormation leaves out the resources whose condition is false. `rules` arms one
EventBridge rule per task (the original design), `scheduler` one EventBridge Scheduler schedule
per task in the stack's own schedule group (contract section 7)."""

from __future__ import annotations

import fnmatch
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.template import load_template, parameter_defaults, with_language_extensions
from task_scheduler.settings import ApiSettings, ExecutorSettings
from tests.template.linters import assert_lints_clean
from tests.template.test_template import RULE_ARN, SCHEDULE_ARN
from tests.template.transform import as_deployed, sam_transform

BACKENDS = ("rules", "scheduler")
FUNCTIONS = ("ScheduleTaskFunction", "ExecuteTaskFunction")
EXECUTE_FUNCTION_ARN = {"Fn::GetAtt": ["ExecuteTaskFunction", "Arn"]}
DEAD_LETTER_QUEUE_ARN = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
SCHEDULER_VARIABLES = {"SCHEDULE_GROUP_NAME", "SCHEDULER_ROLE_ARN", "DEAD_LETTER_QUEUE_ARN"}


@pytest.fixture(scope="module")
def sam_input() -> dict[str, dict[str, Any]]:
    """Per backend: the template as AWS::LanguageExtensions hands it to the SAM transform."""
    return {
        backend: with_language_extensions(load_template(), {"TriggerBackend": backend})
        for backend in BACKENDS
    }


@pytest.fixture(scope="module")
def deployed(sam_input: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per backend: what CloudFormation creates from the SAM transform's output."""
    out = {}
    for backend, template in sam_input.items():
        parameters = {**parameter_defaults(template), "TriggerBackend": backend}
        out[backend] = as_deployed(sam_transform(template, parameters), parameters)
    return out


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _role_statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    props = template["Resources"][role]["Properties"]
    return [s for policy in props["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def _function_statements(template: dict[str, Any], function: str) -> dict[str, dict[str, Any]]:
    """The statements of the function's `Policies` (in its SAM-generated role), by Sid."""
    props = template["Resources"][f"{function}Role"]["Properties"]
    (policy,) = [p for p in props["Policies"] if p["PolicyName"] == f"{function}RolePolicy0"]
    statements = policy["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert len(by_sid) == len(statements)
    return by_sid


def _function_actions(template: dict[str, Any], function: str) -> set[str]:
    """Every action of the function's role's inline policies, SAM's own included."""
    return {a for s in _role_statements(template, f"{function}Role") for a in _actions(s)}


def _variables(template: dict[str, Any], function: str) -> dict[str, Any]:
    return template["Resources"][function]["Properties"]["Environment"]["Variables"]


def test_the_parameter_offers_exactly_the_backends_tested_here_rules_by_default() -> None:
    spec = load_template()["Parameters"]["TriggerBackend"]
    assert tuple(spec["AllowedValues"]) == BACKENDS
    assert spec["Default"] == "rules"


def test_no_fn_if_is_left_for_sam_with_either_backend(
    sam_input: dict[str, dict[str, Any]],
) -> None:
    for template in sam_input.values():
        assert "Fn::If" not in str(template["Resources"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_both_functions_read_the_backend_from_the_parameter(
    deployed: dict[str, dict[str, Any]], backend: str, function: str
) -> None:
    assert _variables(deployed[backend], function)["TRIGGER_BACKEND"] == {"Ref": "TriggerBackend"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_functions_settings_load_from_what_the_template_gives_them(
    deployed: dict[str, dict[str, Any]], backend: str
) -> None:
    # Every variable a backend requires is set: the functions would refuse to start otherwise.
    parameters = {**parameter_defaults(load_template()), "TriggerBackend": backend}

    def as_lambda_sees(variables: dict[str, Any]) -> dict[str, str]:
        def value(raw: Any) -> str:
            if isinstance(raw, dict) and raw.get("Ref") in parameters:
                return str(parameters[raw["Ref"]])
            return raw if isinstance(raw, str) else "resolved-by-cloudformation"

        return {name: value(raw) for name, raw in variables.items()}

    template = deployed[backend]
    api = ApiSettings.from_env(as_lambda_sees(_variables(template, "ScheduleTaskFunction")))
    # Lambda's own variables come on top of the template's.
    lambda_sets = {"AWS_LAMBDA_FUNCTION_NAME": "task-scheduler-ExecuteTaskFunction-AbC123"}
    executor = ExecutorSettings.from_env(
        {**as_lambda_sees(_variables(template, "ExecuteTaskFunction")), **lambda_sets}
    )
    assert api.trigger_backend == executor.trigger_backend == backend


def test_rules_creates_no_schedule_group_role_or_scheduler_variables(
    deployed: dict[str, dict[str, Any]],
) -> None:
    template = deployed["rules"]
    assert not _of_type(template, "AWS::Scheduler::ScheduleGroup")
    assert set(_of_type(template, "AWS::IAM::Role")) == {
        "ScheduleTaskFunctionRole",
        "ExecuteTaskFunctionRole",
        "ReconcileFunctionRole",
    }
    for function in FUNCTIONS:
        assert not SCHEDULER_VARIABLES & set(_variables(template, function))
        assert not {a for a in _function_actions(template, function) if "scheduler:" in a}
        assert "iam:PassRole" not in _function_actions(template, function)
    assert "ScheduleGroupName" not in template["Outputs"]


def test_rules_keeps_the_rule_rights_and_the_invoke_permission_of_the_original_design(
    deployed: dict[str, dict[str, Any]],
) -> None:
    template = deployed["rules"]
    rule_arn = {"Fn::Sub": RULE_ARN}
    assert _function_statements(template, "ScheduleTaskFunction")["TaskRules"] == {
        "Sid": "TaskRules",
        "Effect": "Allow",
        "Action": [
            "events:PutRule",
            "events:PutTargets",
            "events:RemoveTargets",
            "events:DeleteRule",
            "events:DescribeRule",
        ],
        "Resource": rule_arn,
    }
    assert _function_statements(template, "ExecuteTaskFunction")["TaskRules"] == {
        "Sid": "TaskRules",
        "Effect": "Allow",
        "Action": [
            "events:PutRule",
            "events:PutTargets",
            "events:RemoveTargets",
            "events:DeleteRule",
            "events:DescribeRule",
        ],
        "Resource": rule_arn,
    }
    permission = template["Resources"]["ExecuteTaskInvokePermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["FunctionName"] == EXECUTE_FUNCTION_ARN
    assert permission["SourceArn"] == rule_arn


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("rules", {"ExecuteTaskInvokePermission", "ReconcileFunctionEveryFiveMinutesPermission"}),
        # Schedules invoke with their execution role; only the reconciler's own rule is left.
        ("scheduler", {"ReconcileFunctionEveryFiveMinutesPermission"}),
    ],
)
def test_eventbridge_may_invoke_the_execute_function_only_with_rules(
    deployed: dict[str, dict[str, Any]], backend: str, expected: set[str]
) -> None:
    template = deployed[backend]
    from_eventbridge = {
        name
        for name, permission in _of_type(template, "AWS::Lambda::Permission").items()
        if permission["Properties"]["Principal"] == "events.amazonaws.com"
    }
    assert from_eventbridge == expected
    assert "ReconcileFunctionEveryFiveMinutes" in _of_type(template, "AWS::Events::Rule")


def test_scheduler_creates_a_schedule_group_named_after_the_stack(
    deployed: dict[str, dict[str, Any]],
) -> None:
    template = deployed["scheduler"]
    groups = _of_type(template, "AWS::Scheduler::ScheduleGroup")
    assert list(groups) == ["TaskScheduleGroup"]
    assert groups["TaskScheduleGroup"]["Properties"] == {"Name": {"Ref": "AWS::StackName"}}
    assert template["Outputs"]["ScheduleGroupName"]["Value"] == {"Ref": "TaskScheduleGroup"}


def test_only_eventbridge_scheduler_for_the_stacks_group_can_assume_the_schedules_role(
    deployed: dict[str, dict[str, Any]],
) -> None:
    role = deployed["scheduler"]["Resources"]["TaskScheduleRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "scheduler.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": {
                "aws:SourceAccount": {"Ref": "AWS::AccountId"},
                # Scheduler's documented source: the schedule group, never one schedule.
                "aws:SourceArn": {"Fn::GetAtt": ["TaskScheduleGroup", "Arn"]},
            }
        },
    }


def test_the_schedules_role_only_invokes_the_execute_function_and_dead_letters(
    deployed: dict[str, dict[str, Any]],
) -> None:
    template = deployed["scheduler"]
    role = template["Resources"]["TaskScheduleRole"]["Properties"]
    assert not {"ManagedPolicyArns", "PermissionsBoundary"} & set(role)
    rights = [
        (_actions(s), s["Resource"], s["Effect"])
        for s in _role_statements(template, "TaskScheduleRole")
    ]
    assert rights == [
        (["lambda:InvokeFunction"], EXECUTE_FUNCTION_ARN, "Allow"),
        # Scheduler sends what it could not deliver to the target's dead-letter queue with it.
        (["sqs:SendMessage"], DEAD_LETTER_QUEUE_ARN, "Allow"),
    ]


@pytest.mark.parametrize("function", ["ScheduleTaskFunction", "ExecuteTaskFunction"])
def test_with_scheduler_both_functions_arm_schedules_and_pass_only_their_role(
    deployed: dict[str, dict[str, Any]], function: str
) -> None:
    # The API function arms a task's first occurrence, the execute function a recurring task's
    # next ones (a fired schedule not deleted yet is moved on: UpdateSchedule).
    template = deployed["scheduler"]
    statements = _function_statements(template, function)
    schedules = statements["TaskSchedules"]
    assert set(_actions(schedules)) == {
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
    }
    assert schedules["Resource"] == {"Fn::Sub": SCHEDULE_ARN}
    assert statements["PassScheduleRole"] == {
        "Sid": "PassScheduleRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": {"Fn::GetAtt": ["TaskScheduleRole", "Arn"]},
        "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
    }
    actions = _function_actions(template, function)
    assert not {a for a in actions if a.split(":")[0] in ("events", "lambda")}
    assert {a for a in actions if a.startswith("iam:")} == {"iam:PassRole"}


def test_with_scheduler_the_functions_are_told_the_group_role_and_dead_letter_queue(
    deployed: dict[str, dict[str, Any]],
) -> None:
    template = deployed["scheduler"]
    api = _variables(template, "ScheduleTaskFunction")
    assert {name: api[name] for name in SCHEDULER_VARIABLES} == {
        "SCHEDULE_GROUP_NAME": {"Ref": "TaskScheduleGroup"},
        "SCHEDULER_ROLE_ARN": {"Fn::GetAtt": ["TaskScheduleRole", "Arn"]},
        "DEAD_LETTER_QUEUE_ARN": DEAD_LETTER_QUEUE_ARN,
    }
    assert api["EXECUTE_FUNCTION_ARN"] == EXECUTE_FUNCTION_ARN
    execute = _variables(template, "ExecuteTaskFunction")
    assert {name: execute[name] for name in SCHEDULER_VARIABLES} == {
        name: api[name] for name in SCHEDULER_VARIABLES
    }
    # It names itself as the schedules' target: the stack's ARN prefix and Lambda's name for it.
    assert execute["FUNCTION_ARN_PREFIX"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
    }


def test_a_stack_cannot_touch_the_schedules_of_any_other_group(
    deployed: dict[str, dict[str, Any]],
) -> None:
    # The group is named after the stack; group names have no `/`, so `schedule/<group>/*`
    # reaches no other group's schedules, even one whose name extends this one's.
    template = deployed["scheduler"]
    patterns = [
        statement["Resource"]["Fn::Sub"]
        .replace("${AWS::Partition}", "aws")
        .replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::AccountId}", "123456789012")
        .replace("${TaskScheduleGroup}", "task-scheduler")
        for function in FUNCTIONS
        for statement in _function_statements(template, function).values()
        if any(a.startswith("scheduler:") for a in _actions(statement))
    ]
    assert len(patterns) == 2  # the API's and the execute side's rights

    def arn(group: str, account: str = "123456789012", region: str = "us-east-1") -> str:
        return f"arn:aws:scheduler:{region}:{account}:schedule/{group}/{uuid.uuid4()}"

    others = [
        arn(group)
        for group in ("task-scheduler-staging", "task-scheduler.1", "task-scheduler_x", "task")
    ]
    others += [arn("default"), arn("task-scheduler", account="210987654321")]
    others.append(arn("task-scheduler", region="eu-west-1"))
    for pattern in patterns:
        # IAM's wildcards: `*` any run of characters, `?` any one character.
        assert fnmatch.fnmatchcase(arn("task-scheduler"), pattern)
        for other in others:
            assert not fnmatch.fnmatchcase(other, pattern), (other, pattern)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_passes_cfn_lint_and_sam_validate(
    sam_input: dict[str, dict[str, Any]], backend: str, tmp_path: Path
) -> None:
    # Linting template.yaml itself does not look inside the Fn::If branches, so each backend is
    # linted as CloudFormation deploys it: Fn::If resolved, the other backend's resources left
    # out and this one's unconditional (the Fn::If that refer to them chose the same branch),
    # and no condition left unused (W8001).
    parameters = {**parameter_defaults(sam_input[backend]), "TriggerBackend": backend}
    template = as_deployed(sam_input[backend], parameters)
    for body in (*template["Resources"].values(), *template["Outputs"].values()):
        body.pop("Condition", None)
    assert_lints_clean(template, tmp_path)
