"""Reads template.yaml so that local mode and the tests build exactly what the template declares,
instead of a second hand-written definition that could drift."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation's short-form tags (`!Ref X` → {"Ref": "X"})."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == kind
    }


def parameter_defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }


NO_VALUE = {"Ref": "AWS::NoValue"}


def condition_values(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, bool]:
    """Every condition of the template, evaluated from parameter values (conditions here depend
    on parameters only, which is what lets AWS::LanguageExtensions resolve them)."""
    conditions = template.get("Conditions", {})
    values: dict[str, bool] = {}

    def condition(name: str) -> bool:
        if name not in values:
            values[name] = evaluate(conditions[name])
        return values[name]

    def operand(value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"Ref"}:
            return str(parameters[value["Ref"]])
        if isinstance(value, dict):
            raise ValueError(f"unsupported Fn::Equals operand {value!r}")
        return str(value)

    def evaluate(expression: dict[str, Any]) -> bool:
        ((function, args),) = expression.items()
        if function == "Condition":
            return condition(args)
        if function == "Fn::Equals":
            left, right = (operand(arg) for arg in args)
            return left == right
        if function == "Fn::Not":
            return not evaluate(args[0])
        if function == "Fn::And":
            return all(evaluate(arg) for arg in args)
        if function == "Fn::Or":
            return any(evaluate(arg) for arg in args)
        raise ValueError(f"unsupported condition function {function!r}")

    for name in conditions:
        condition(name)
    return values


def resolve_conditionals(value: Any, conditions: dict[str, bool]) -> Any:
    """`value` with every `Fn::If` replaced by its chosen branch and `AWS::NoValue` removed."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        name, when_true, when_false = value["Fn::If"]
        return resolve_conditionals(when_true if conditions[name] else when_false, conditions)
    if isinstance(value, dict):
        resolved = {key: resolve_conditionals(item, conditions) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item != NO_VALUE}
    if isinstance(value, list):
        resolved_items = [resolve_conditionals(item, conditions) for item in value]
        return [item for item in resolved_items if item != NO_VALUE]
    return value


def with_language_extensions(
    template: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What AWS::LanguageExtensions hands to the SAM transform for these parameter values
    (defaults unless overridden): every `Fn::If` resolved, the transform dropped from the list."""
    parameters = {**parameter_defaults(template), **(overrides or {})}
    conditions = condition_values(template, parameters)
    resolved = {
        section: resolve_conditionals(body, conditions) if section != "Conditions" else body
        for section, body in template.items()
    }
    transforms = template.get("Transform", [])
    if isinstance(transforms, list):
        remaining = [name for name in transforms if name != "AWS::LanguageExtensions"]
        resolved["Transform"] = remaining[0] if len(remaining) == 1 else remaining
    return resolved


@dataclass(frozen=True)
class ApiRoute:
    function: str  # logical id of the function
    method: str  # upper case
    path: str  # API Gateway resource path, e.g. /tasks/{task_id}


def api_routes(template: dict[str, Any]) -> list[ApiRoute]:
    """Every `Api` event of every function: the routes API Gateway would serve."""
    routes = []
    for name, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "Api":
                props = event["Properties"]
                routes.append(ApiRoute(name, props["Method"].upper(), props["Path"]))
    return routes


def function_environment(
    template: dict[str, Any], function: str, resolve: dict[str, str]
) -> dict[str, str]:
    """The function's environment (Globals merged with its own), intrinsics resolved via
    `resolve`, a map from `Ref` names and `GetAtt` "Name.Attr" strings to values."""
    merged: dict[str, Any] = {}
    merged.update(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    own = template["Resources"][function].get("Properties", {})
    merged.update(own.get("Environment", {}).get("Variables", {}))
    return {key: str(resolve_value(value, resolve)) for key, value in merged.items()}


def resolve_value(value: Any, resolve: dict[str, str]) -> Any:
    """Resolves `Ref`, `Fn::GetAtt` and `Fn::Sub` against `resolve` (pseudo names included)."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _lookup(resolve, arg)
        if key == "Fn::GetAtt":
            return _lookup(resolve, ".".join(arg))
        if key == "Fn::Sub":
            return _substitute(arg, resolve)
    if isinstance(value, dict):
        return {k: resolve_value(v, resolve) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_value(v, resolve) for v in value]
    return value


def _lookup(resolve: dict[str, str], name: str) -> str:
    if name not in resolve:
        raise KeyError(f"local mode cannot resolve {name!r} from template.yaml")
    return resolve[name]


def _substitute(text: str, resolve: dict[str, str]) -> str:
    out, rest = [], text
    while "${" in rest:
        before, _, after = rest.partition("${")
        name, _, rest = after.partition("}")
        out.append(before)
        out.append(_lookup(resolve, name))
    out.append(rest)
    return "".join(out)


def create_tables(
    dynamodb: Any, template: dict[str, Any], name_for: dict[str, str]
) -> dict[str, str]:
    """Creates every DynamoDB table of the template; returns logical id → table name."""
    created = {}
    for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        table_name = name_for.get(logical_id, logical_id)
        args: dict[str, Any] = {
            "TableName": table_name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        dynamodb.create_table(**args)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        created[logical_id] = table_name
    return created


def create_queues(sqs: Any, template: dict[str, Any], name_for: dict[str, str]) -> dict[str, str]:
    """Creates every SQS queue of the template (dead-letter targets first, so redrive policies
    can point at them); returns what `Ref`/`Fn::GetAtt` give for each: URL, .Arn, .QueueName."""
    queues = resources_of_type(template, "AWS::SQS::Queue")
    resolved: dict[str, str] = {}
    ordered = sorted(queues, key=lambda name: "RedrivePolicy" in queues[name].get("Properties", {}))
    for logical_id in ordered:
        props = dict(queues[logical_id].get("Properties", {}))
        queue_name = name_for.get(logical_id, logical_id)
        attributes = {
            key: str(props[key])
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if key in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(
                resolve_value(props["RedrivePolicy"], resolved)
            )
        url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        resolved.update(
            {logical_id: url, f"{logical_id}.Arn": arn, f"{logical_id}.QueueName": queue_name}
        )
    return resolved


def create_secrets(
    secretsmanager: Any,
    template: dict[str, Any],
    name_for: dict[str, str],
    given: dict[str, str],
) -> dict[str, str]:
    """Creates every Secrets Manager secret of the template, generating its value as
    `GenerateSecretString` says unless `given` has one for it; returns logical id → ARN."""
    created = {}
    for logical_id, resource in resources_of_type(template, "AWS::SecretsManager::Secret").items():
        props = resource.get("Properties", {})
        value = given.get(logical_id)
        if value is None:
            value = _generated_secret(props.get("GenerateSecretString", {}))
        arn = secretsmanager.create_secret(
            Name=name_for.get(logical_id, logical_id), SecretString=value
        )["ARN"]
        created[logical_id] = arn
    return created


def create_schedule_groups(
    scheduler: Any,
    template: dict[str, Any],
    name_for: dict[str, str],
    resolve: dict[str, str] | None = None,
) -> dict[str, str]:
    """Creates every EventBridge Scheduler schedule group of the template (named by its `Name`
    when it has one, resolved against `resolve`); returns what `Ref` (the group's name) and
    `Fn::GetAtt .Arn` give for each."""
    resolved = {}
    groups = resources_of_type(template, "AWS::Scheduler::ScheduleGroup")
    for logical_id, resource in groups.items():
        props = resource.get("Properties", {})
        name = (
            str(resolve_value(props["Name"], resolve or {}))
            if "Name" in props
            else name_for.get(logical_id, logical_id)
        )
        arn = scheduler.create_schedule_group(Name=name)["ScheduleGroupArn"]
        resolved.update({logical_id: name, f"{logical_id}.Arn": arn})
    return resolved


def role_references(
    template: dict[str, Any],
    account: str,
    name_for: dict[str, str],
    resolve: dict[str, str] | None = None,
) -> dict[str, str]:
    """What `Ref` (the role's name) and `Fn::GetAtt .Arn` give for every IAM role of the template.
    Local mode enforces no IAM, so the roles are named, never created."""
    resolved = {}
    for logical_id, resource in resources_of_type(template, "AWS::IAM::Role").items():
        props = resource.get("Properties", {})
        name = (
            str(resolve_value(props["RoleName"], resolve or {}))
            if "RoleName" in props
            else name_for.get(logical_id, logical_id)
        )
        path = str(props.get("Path", "/"))
        resolved.update(
            {logical_id: name, f"{logical_id}.Arn": f"arn:aws:iam::{account}:role{path}{name}"}
        )
    return resolved


def _generated_secret(spec: dict[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    password = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "GenerateStringKey" in spec:
        document = json.loads(spec.get("SecretStringTemplate", "{}"))
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)
    return password
