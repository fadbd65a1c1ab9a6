"""Local mode's EventBridge Scheduler wiring: TRIGGER_BACKEND reaches the template as the
TriggerBackend parameter, the template's schedule groups exist in moto and its roles resolve,
and a running local stack's schedule clock learns the schedules written to moto."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.stack import LocalConfig, LocalStack, template_parameters
from local.template import (
    create_schedule_groups,
    function_environment,
    load_template,
    role_references,
    with_language_extensions,
)

ACCOUNT = "123456789012"

TEMPLATE = """\
Parameters:
  TriggerBackend:
    Type: String
    Default: rules
    AllowedValues: [rules, scheduler]
Conditions:
  UsesScheduler: !Equals [!Ref TriggerBackend, scheduler]
Resources:
  TaskSchedules:
    Type: AWS::Scheduler::ScheduleGroup
  NamedSchedules:
    Type: AWS::Scheduler::ScheduleGroup
    Properties:
      Name: !Sub ${AWS::StackName}-named
  SchedulerRole:
    Type: AWS::IAM::Role
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          TRIGGER_BACKEND: !Ref TriggerBackend
          GROUP: !If [UsesScheduler, !Ref TaskSchedules, none]
          GROUP_ARN: !GetAtt TaskSchedules.Arn
          NAMED: !Ref NamedSchedules
          ROLE_ARN: !GetAtt SchedulerRole.Arn
"""


@pytest.fixture
def template(tmp_path: Path) -> dict:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return load_template(path)


def test_trigger_backend_is_read_from_the_environment() -> None:
    assert LocalConfig.from_env({}).trigger_backend == "rules"
    assert LocalConfig.from_env({"TRIGGER_BACKEND": "scheduler"}).trigger_backend == "scheduler"


def test_trigger_backend_becomes_the_template_parameter(template: dict) -> None:
    config = LocalConfig(trigger_backend="scheduler")
    assert template_parameters(template, config) == {"TriggerBackend": "scheduler"}
    with pytest.raises(ValueError, match="must be one of rules, scheduler"):
        template_parameters(template, LocalConfig(trigger_backend="cron-jobs"))


def test_a_template_without_the_parameter_runs_rules_only() -> None:
    declared = {"Parameters": {"StageName": {"Type": "String", "Default": "v1"}}}
    assert template_parameters(declared, LocalConfig()) == {}
    with pytest.raises(ValueError, match="no TriggerBackend parameter"):
        template_parameters(declared, LocalConfig(trigger_backend="scheduler"))


def test_schedule_groups_are_created_and_groups_and_roles_resolve(
    template: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    resolved = with_language_extensions(template, {"TriggerBackend": "scheduler"})
    pseudo = {"AWS::StackName": "local", "TriggerBackend": "scheduler"}
    with mock_aws():
        scheduler = boto3.client("scheduler", region_name="us-east-1")
        groups = create_schedule_groups(
            scheduler, resolved, {"TaskSchedules": "local-TaskSchedules"}, pseudo
        )
        listed = {g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]}
    assert {"local-TaskSchedules", "local-named"} <= listed
    roles = role_references(resolved, ACCOUNT, {"SchedulerRole": "local-SchedulerRole"})
    assert function_environment(resolved, "Fn", {**pseudo, **groups, **roles}) == {
        "TRIGGER_BACKEND": "scheduler",
        "GROUP": "local-TaskSchedules",
        "GROUP_ARN": "arn:aws:scheduler:us-east-1:123456789012:schedule-group/local-TaskSchedules",
        "NAMED": "local-named",
        "ROLE_ARN": "arn:aws:iam::123456789012:role/local-SchedulerRole",
    }


@pytest.fixture
def local_stack() -> Iterator[LocalStack]:
    saved = dict(os.environ)  # the stack sets what Lambda's runtime would: put it all back
    stack = LocalStack(LocalConfig(port=0))  # any free port, chosen as the API binds it
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def test_the_local_stack_learns_schedules_written_to_moto(local_stack: LocalStack) -> None:
    scheduler: Any = boto3.client("scheduler", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    execute = local_stack.functions["ExecuteTaskFunction"].arn
    before = local_stack.pending_triggers
    scheduler.create_schedule(
        Name="t-1",
        ScheduleExpression="at(2099-01-01T09:00:00)",
        ScheduleExpressionTimezone="Europe/Paris",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": execute, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r", "Input": "{}"},
        ActionAfterCompletion="DELETE",
    )
    # moto tells the clock before it answers: no waiting.
    assert local_stack.pending_triggers == {
        "rules": before["rules"],
        "schedules": before["schedules"] + 1,
    }
