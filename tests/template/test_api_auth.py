"""The API's authentication as CloudFormation deploys it, for each value of the ApiAuth
parameter: AWS::LanguageExtensions resolves the template's Fn::If, then the SAM transform
expands the API. Both steps run here offline (the SAM translator is the library the hosted
transform runs), so what each mode deploys is asserted on the resources themselves."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from local.template import load_template, parameter_defaults, with_language_extensions
from tests.template.linters import assert_lints_clean
from tests.template.transform import sam_transform

MODES = ("API_KEY", "AWS_IAM")
ROUTES = {
    ("/schedule-task", "post"),
    ("/tasks", "get"),
    ("/tasks/{task_id}", "get"),
    ("/tasks/{task_id}", "delete"),
    ("/tasks/{task_id}/pause", "post"),
    ("/tasks/{task_id}/resume", "post"),
}


@pytest.fixture(scope="module")
def sam_input() -> dict[str, dict[str, Any]]:
    """Per mode: the template as AWS::LanguageExtensions hands it to the SAM transform."""
    return {mode: with_language_extensions(load_template(), {"ApiAuth": mode}) for mode in MODES}


@pytest.fixture(scope="module")
def deployed(sam_input: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per mode: the CloudFormation template the SAM transform produces."""
    out = {}
    for mode, template in sam_input.items():
        parameters = {**parameter_defaults(template), "ApiAuth": mode}
        out[mode] = sam_transform(template, parameters)
    return out


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _body(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["SchedulerApi"]["Properties"]["Body"]


def _operations(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in _body(template)["paths"].items()
        for method, operation in item.items()
    }


def test_the_parameter_offers_exactly_the_modes_tested_here_api_key_by_default() -> None:
    spec = load_template()["Parameters"]["ApiAuth"]
    assert tuple(spec["AllowedValues"]) == MODES
    assert spec["Default"] == "API_KEY"


def test_language_extensions_runs_before_the_sam_transform() -> None:
    # The hosted transforms run in list order; SAM must see Auth already resolved.
    assert load_template()["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def test_no_fn_if_is_left_for_sam_in_either_mode(sam_input: dict[str, dict[str, Any]]) -> None:
    for template in sam_input.values():
        assert "Fn::If" not in str(template["Resources"])


def test_api_key_mode_requires_the_key_on_every_route(deployed: dict[str, dict[str, Any]]) -> None:
    template = deployed["API_KEY"]
    operations = _operations(template)
    assert set(operations) == ROUTES
    for operation in operations.values():
        assert operation["security"] == [{"api_key": []}]
        assert "credentials" not in operation["x-amazon-apigateway-integration"]
    scheme = _body(template)["components"]["securitySchemes"]["api_key"]
    assert scheme == {"type": "apiKey", "name": "x-api-key", "in": "header"}


def test_api_key_mode_creates_the_key_and_its_usage_plan_from_the_parameters(
    deployed: dict[str, dict[str, Any]],
) -> None:
    template = deployed["API_KEY"]
    defaults = parameter_defaults(load_template())
    (plan,) = _resources(template, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {
        "RateLimit": defaults["ApiThrottleRateLimit"],
        "BurstLimit": defaults["ApiThrottleBurstLimit"],
    }
    assert plan["Properties"]["Quota"] == {"Limit": defaults["ApiQuotaPerDay"], "Period": "DAY"}
    assert list(_resources(template, "AWS::ApiGateway::ApiKey")) == ["SchedulerApiApiKey"]
    (plan_key,) = _resources(template, "AWS::ApiGateway::UsagePlanKey").values()
    assert plan_key["Properties"]["KeyId"] == {"Ref": "SchedulerApiApiKey"}
    output = template["Outputs"]["ApiKeyId"]
    assert output["Value"] == {"Ref": "SchedulerApiApiKey"}
    assert template["Conditions"]["UsesApiKey"] == {"Fn::Equals": [{"Ref": "ApiAuth"}, "API_KEY"]}
    assert output["Condition"] == "UsesApiKey"


def test_iam_mode_requires_a_sigv4_signature_on_every_route(
    deployed: dict[str, dict[str, Any]],
) -> None:
    template = deployed["AWS_IAM"]
    operations = _operations(template)
    assert set(operations) == ROUTES
    for operation in operations.values():
        assert operation["security"] == [{"AWS_IAM": []}]
        # API Gateway calls the function with the function's resource permission; caller
        # credentials there would make every caller need lambda:InvokeFunction as well.
        assert "credentials" not in operation["x-amazon-apigateway-integration"]
    scheme = _body(template)["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert scheme["name"] == "Authorization"


def test_iam_mode_has_no_api_key_and_no_key_output(deployed: dict[str, dict[str, Any]]) -> None:
    template = deployed["AWS_IAM"]
    for kind in ("ApiKey", "UsagePlan", "UsagePlanKey"):
        assert not _resources(template, f"AWS::ApiGateway::{kind}")
    # CloudFormation drops the output: its condition is false in this mode.
    assert template["Outputs"]["ApiKeyId"]["Condition"] == "UsesApiKey"


@pytest.mark.parametrize("mode", MODES)
def test_the_stage_throttles_with_the_parameters_in_either_mode(
    deployed: dict[str, dict[str, Any]], mode: str
) -> None:
    (stage,) = _resources(deployed[mode], "AWS::ApiGateway::Stage").values()
    (setting,) = stage["Properties"]["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}


def test_switching_the_mode_deploys_the_api_again(deployed: dict[str, dict[str, Any]]) -> None:
    # A stage keeps serving its deployment until a new one replaces it; the two modes must
    # produce different deployment resources or an update would change nothing callers see.
    deployments = {
        mode: set(_resources(template, "AWS::ApiGateway::Deployment"))
        for mode, template in deployed.items()
    }
    assert all(len(ids) == 1 for ids in deployments.values())
    assert deployments["API_KEY"] != deployments["AWS_IAM"]


def test_unknown_routes_are_a_json_404_with_api_keys(deployed: dict[str, dict[str, Any]]) -> None:
    response = _body(deployed["API_KEY"])["x-amazon-apigateway-gateway-responses"][
        "MISSING_AUTHENTICATION_TOKEN"
    ]
    assert response["statusCode"] == "404"
    assert response["responseTemplates"]["application/json"].startswith('{"message": "No route')


def test_unsigned_requests_stay_a_json_403_under_iam(deployed: dict[str, dict[str, Any]]) -> None:
    # Under IAM, API Gateway answers an unsigned request with this same response type.
    response = _body(deployed["AWS_IAM"])["x-amazon-apigateway-gateway-responses"][
        "MISSING_AUTHENTICATION_TOKEN"
    ]
    assert response["statusCode"] == "403"
    assert "SigV4" in response["responseTemplates"]["application/json"]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_passes_cfn_lint_and_sam_validate(
    sam_input: dict[str, dict[str, Any]], mode: str, tmp_path: Path
) -> None:
    # Linting template.yaml itself does not look inside the Fn::If branches (a misspelt
    # authorizer there passes), so each mode is linted as SAM will receive it - less the
    # conditions only an Fn::If used, which would be reported unused (W8001).
    assert_lints_clean(copy.deepcopy(sam_input[mode]), tmp_path)
